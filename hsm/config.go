package hsm

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Defaults applied by Open when the corresponding Config field is zero.
const (
	DefaultMaxSessions     = 32
	DefaultPoolWaitTimeout = 5 * time.Second
	// DefaultModulePath is Debian's SoftHSM2 module.
	DefaultModulePath = "/usr/lib/softhsm/libsofthsm2.so"
)

// maxPINFileSize bounds what is read from a PIN file; PKCS#11 PINs are short.
const maxPINFileSize = 1024

// maxKeyLabelLen is the longest wrapping-key label a blob header can name.
const maxKeyLabelLen = 255

// Config selects the PKCS#11 module, token, credentials and wrapping keys.
// Its String/GoString/LogValue methods never print the PIN.
type Config struct {
	// ModulePath is the absolute path of the PKCS#11 module (.so).
	ModulePath string
	// TokenLabel selects the token by label; exactly one of TokenLabel and
	// SlotNumber must be set.
	TokenLabel string
	// SlotNumber selects the token by slot id.
	SlotNumber *int

	// PIN is the user PIN given inline (discouraged outside tests); exactly
	// one of PIN, PINFile and PINEnv must be set.
	PIN string
	// PINFile names a file holding the PIN (trailing newline ignored); it
	// must not be readable or writable by others (e.g. a systemd credential).
	PINFile string
	// PINEnv names an environment variable holding the PIN.
	PINEnv string

	// KeyLabel is the label of the AES-256 wrapping key that seals new blobs.
	KeyLabel string
	// ReadKeyLabels are older wrapping keys still accepted by Open, so blobs
	// sealed before a rotation remain readable until they are re-sealed.
	ReadKeyLabels []string
	// CreateKey allows Open to generate the KeyLabel key when it is absent.
	CreateKey bool

	// MaxSessions bounds the PKCS#11 sessions opened (one is kept for the
	// login); 0 means DefaultMaxSessions. Must be at least 2.
	MaxSessions int
	// PoolWaitTimeout bounds the wait for a free session; 0 means
	// DefaultPoolWaitTimeout. Negative values are rejected: an unbounded wait
	// would let a stuck token hang every request.
	PoolWaitTimeout time.Duration
}

// String describes the configuration with the PIN redacted.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hsm.Config{ModulePath:%q", c.ModulePath)
	if c.TokenLabel != "" {
		fmt.Fprintf(&b, " TokenLabel:%q", c.TokenLabel)
	}
	if c.SlotNumber != nil {
		fmt.Fprintf(&b, " SlotNumber:%d", *c.SlotNumber)
	}
	b.WriteString(" PIN:" + c.pinSourceDescription())
	fmt.Fprintf(&b, " KeyLabel:%q ReadKeyLabels:%q CreateKey:%t MaxSessions:%d PoolWaitTimeout:%s}",
		c.KeyLabel, c.ReadKeyLabels, c.CreateKey, c.MaxSessions, c.PoolWaitTimeout)
	return b.String()
}

// GoString keeps %#v from printing the PIN.
func (c Config) GoString() string { return c.String() }

// LogValue keeps log/slog from printing the PIN.
func (c Config) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("module", c.ModulePath),
		slog.String("pin", c.pinSourceDescription()),
		slog.String("key_label", c.KeyLabel),
		slog.Any("read_key_labels", c.ReadKeyLabels),
		slog.Bool("create_key", c.CreateKey),
	}
	if c.TokenLabel != "" {
		attrs = append(attrs, slog.String("token_label", c.TokenLabel))
	}
	if c.SlotNumber != nil {
		attrs = append(attrs, slog.Int("slot", *c.SlotNumber))
	}
	return slog.GroupValue(attrs...)
}

func (c Config) pinSourceDescription() string {
	switch {
	case c.PINFile != "":
		return "file:" + strconv.Quote(c.PINFile)
	case c.PINEnv != "":
		return "env:" + c.PINEnv
	case c.PIN != "":
		return "[redacted]"
	}
	return "[none]"
}

// validate checks the configuration and returns a copy with defaults applied.
func (c Config) validate() (Config, error) {
	if c.ModulePath == "" {
		return c, fmt.Errorf("%w: module path is required", ErrConfig)
	}
	// A relative name would be resolved through the loader's search path,
	// letting the environment choose which code runs with the PIN.
	if !filepath.IsAbs(c.ModulePath) {
		return c, fmt.Errorf("%w: module path %q must be absolute", ErrConfig, c.ModulePath)
	}
	if (c.TokenLabel == "") == (c.SlotNumber == nil) {
		return c, fmt.Errorf("%w: set exactly one of token label and slot number", ErrConfig)
	}
	if c.SlotNumber != nil && *c.SlotNumber < 0 {
		return c, fmt.Errorf("%w: slot number %d is negative", ErrConfig, *c.SlotNumber)
	}
	n := 0
	for _, s := range []string{c.PIN, c.PINFile, c.PINEnv} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return c, fmt.Errorf("%w: set exactly one of PIN, PIN file and PIN environment variable", ErrConfig)
	}
	if err := checkKeyLabel(c.KeyLabel); err != nil {
		return c, err
	}
	seen := map[string]bool{c.KeyLabel: true}
	for _, l := range c.ReadKeyLabels {
		if err := checkKeyLabel(l); err != nil {
			return c, err
		}
		if seen[l] {
			return c, fmt.Errorf("%w: key label %q listed twice", ErrConfig, l)
		}
		seen[l] = true
	}
	switch {
	case c.MaxSessions == 0:
		c.MaxSessions = DefaultMaxSessions
	case c.MaxSessions < 2:
		return c, fmt.Errorf("%w: max sessions must be at least 2", ErrConfig)
	}
	switch {
	case c.PoolWaitTimeout == 0:
		c.PoolWaitTimeout = DefaultPoolWaitTimeout
	case c.PoolWaitTimeout < 0:
		return c, fmt.Errorf("%w: pool wait timeout must be positive", ErrConfig)
	}
	c.ReadKeyLabels = append([]string(nil), c.ReadKeyLabels...)
	return c, nil
}

func checkKeyLabel(l string) error {
	if l == "" || len(l) > maxKeyLabelLen {
		return fmt.Errorf("%w: key label must be 1..%d bytes", ErrConfig, maxKeyLabelLen)
	}
	for _, r := range l {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: key label %q contains control characters", ErrConfig, l)
		}
	}
	return nil
}

// resolvePIN returns the PIN from the configured source. The PIN ends up in a
// Go string (crypto11 takes one), which cannot be wiped; it lives as long as
// the HSM because reconnecting after a token failure needs it again.
func (c Config) resolvePIN() (string, error) {
	switch {
	case c.PIN != "":
		return c.PIN, nil
	case c.PINEnv != "":
		v, ok := os.LookupEnv(c.PINEnv)
		if !ok || v == "" {
			return "", fmt.Errorf("%w: environment variable %s is unset or empty", ErrPINSource, c.PINEnv)
		}
		return v, nil
	default:
		return readPINFile(c.PINFile)
	}
}

// readPINFile reads a PIN file after checking its type and permissions. It
// inspects the PIN only to strip a trailing newline (a branch on its last
// bytes, not a comparison) and zeroes its read buffer.
func readPINFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		// The *PathError names only the path and the errno.
		return "", fmt.Errorf("%w: %w", ErrPINSource, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrPINSource, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%w: %s is not a regular file", ErrPINSource, path)
	}
	if st.Mode().Perm()&0o007 != 0 {
		return "", fmt.Errorf("%w: %s is accessible to other users (mode %04o); chmod o-rwx it",
			ErrPINSource, path, st.Mode().Perm())
	}
	buf := make([]byte, maxPINFileSize+1)
	defer clear(buf)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", fmt.Errorf("%w: reading %s: %w", ErrPINSource, path, err)
	}
	if n > maxPINFileSize {
		return "", fmt.Errorf("%w: %s is larger than %d bytes", ErrPINSource, path, maxPINFileSize)
	}
	pin := bytes.TrimRight(buf[:n], "\r\n")
	if len(pin) == 0 {
		return "", fmt.Errorf("%w: %s is empty", ErrPINSource, path)
	}
	return string(pin), nil
}
