// Package hsmtest makes throwaway SoftHSM2 tokens for tests: a token store in
// a directory, one token per label with random PINs, and SOFTHSM2_CONF set
// for the process. It imports nothing of quorumd, so any package's tests
// can use it.
package hsmtest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Module is the PKCS#11 module of Debian's softhsm2 package; the
// SOFTHSM2_MODULE environment variable overrides it.
func Module() string {
	if m := os.Getenv("SOFTHSM2_MODULE"); m != "" {
		return m
	}
	return "/usr/lib/softhsm/libsofthsm2.so"
}

const installHint = "install Debian's softhsm2 package: apt-get install softhsm2"

// ErrMissing is wrapped by Available when softhsm2-util or the PKCS#11
// module is not installed.
var ErrMissing = errors.New("SoftHSM2 is not installed (" + installHint + ")")

// Available reports whether softhsm2-util and the SoftHSM2 PKCS#11 module
// are installed; the error wraps ErrMissing and names what is absent.
func Available() error {
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		return fmt.Errorf("%w: softhsm2-util: %v", ErrMissing, err)
	}
	if _, err := os.Stat(Module()); err != nil {
		return fmt.Errorf("%w: module: %v", ErrMissing, err)
	}
	return nil
}

// SkipIfMissing skips t, naming the package to install, when SoftHSM2 is
// not installed; any other problem is left to fail the test later.
func SkipIfMissing(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("skipped: %v", err)
	}
}

// Token describes a freshly initialized SoftHSM2 token.
type Token struct {
	Module   string // PKCS#11 module path
	Label    string // token label
	PIN      string // user PIN
	SOPIN    string // security officer PIN
	Slot     int    // slot id SoftHSM assigned to the token
	ConfPath string // the softhsm2.conf SOFTHSM2_CONF points at
	TokenDir string // this token's own directory inside the token store
}

// softhsmMu serializes token creation: softhsm2-util picks the first free
// slot, and SOFTHSM2_CONF is process-wide.
var softhsmMu sync.Mutex

var softhsmSlotRE = regexp.MustCompile(`reassigned to slot (\d+)`)

// NewTokens creates a SoftHSM2 token store in dir (which must exist),
// initializes one token per label with random PINs, and points SOFTHSM2_CONF
// at it for this process (it is left set; the store lives as long as dir).
//
// SoftHSM reads its configuration and lists its tokens when the module is
// initialized, i.e. at the first crypto11 Configure (hsm.Open) in the process,
// and again only after every context using the module has been closed. Create
// every token a test binary needs up front, typically in TestMain, before any
// hsm.Open. Calling it again on the same dir adds tokens to the store; they
// become visible once every context has been closed and the module
// re-initializes. It fails (it never skips) when softhsm2-util is missing.
func NewTokens(dir string, labels ...string) ([]Token, error) {
	softhsmMu.Lock()
	defer softhsmMu.Unlock()
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		return nil, fmt.Errorf("softhsm2-util not found (%s): %w", installHint, err)
	}
	module := Module()
	if _, err := os.Stat(module); err != nil {
		return nil, fmt.Errorf("SoftHSM2 module (%s, or set SOFTHSM2_MODULE): %w", installHint, err)
	}
	if len(labels) == 0 {
		return nil, errors.New("NewTokens: no token labels given")
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	content := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(content), 0o600); err != nil {
		return nil, err
	}
	out := make([]Token, 0, len(labels))
	for _, label := range labels {
		before, err := softhsmListDirs(tokens)
		if err != nil {
			return nil, err
		}
		tok := Token{Module: module, Label: label, PIN: softhsmRandomPIN(), SOPIN: softhsmRandomPIN(), ConfPath: conf}
		cmd := exec.Command(util, "--init-token", "--free", "--label", label, "--so-pin", tok.SOPIN, "--pin", tok.PIN)
		cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
		msg, err := cmd.CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("softhsm2-util --init-token %q: %w: %s", label, err, strings.TrimSpace(string(msg)))
		}
		m := softhsmSlotRE.FindSubmatch(msg)
		if m == nil {
			return nil, fmt.Errorf("softhsm2-util --init-token %q: no slot in output %q", label, msg)
		}
		slot, err := strconv.ParseUint(string(m[1]), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("softhsm2-util --init-token %q: slot %q: %w", label, m[1], err)
		}
		tok.Slot = int(slot)
		after, err := softhsmListDirs(tokens)
		if err != nil {
			return nil, err
		}
		for d := range after {
			if !before[d] {
				tok.TokenDir = filepath.Join(tokens, d)
			}
		}
		if tok.TokenDir == "" {
			return nil, fmt.Errorf("softhsm2-util --init-token %q created no token directory", label)
		}
		out = append(out, tok)
	}
	if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
		return nil, err
	}
	return out, nil
}

// NewToken creates a single token in a fresh temporary directory for t and
// sets SOFTHSM2_CONF until t ends. It only works when no crypto11 context is
// open in the process (see NewTokens); close every HSM before t ends.
func NewToken(t testing.TB, label string) Token {
	t.Helper()
	prev, had := os.LookupEnv("SOFTHSM2_CONF")
	toks, err := NewTokens(t.TempDir(), label)
	if err != nil {
		t.Fatalf("SoftHSM token: %v", err)
	}
	t.Cleanup(func() {
		if had {
			_ = os.Setenv("SOFTHSM2_CONF", prev)
		} else {
			_ = os.Unsetenv("SOFTHSM2_CONF")
		}
	})
	return toks[0]
}

// WritePINFile writes the token's PIN to a 0600 file in dir and returns its
// path, as an operator would provide it to the daemon.
func (tok Token) WritePINFile(dir string) (string, error) {
	p := filepath.Join(dir, tok.Label+".pin")
	return p, os.WriteFile(p, []byte(tok.PIN+"\n"), 0o600)
}

func softhsmListDirs(dir string) (map[string]bool, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	m := make(map[string]bool, len(ents))
	for _, e := range ents {
		if e.IsDir() {
			m[e.Name()] = true
		}
	}
	return m, nil
}

func softhsmRandomPIN() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
