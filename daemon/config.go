package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/quorumd/quorumd/internal/agekey"
)

// Config is quorumd's configuration: a YAML file, then QUORUMD_* environment
// overrides (see LoadConfig). It holds paths to secrets (PIN file, Vault
// token and AppRole files, TLS keys) and the name of a PIN environment
// variable, never a secret value, so printing it is safe.
type Config struct {
	Server   ServerConfig   `yaml:"server"`
	Limits   LimitsConfig   `yaml:"limits"`
	StateDir string         `yaml:"state_dir"`
	Store    string         `yaml:"store"`
	Postgres PostgresConfig `yaml:"postgres"`
	HSM      HSMConfig      `yaml:"hsm"`
	Policy   PolicyConfig   `yaml:"policy"`
	Relay    RelayConfig    `yaml:"relay"`
	Ceremony CeremonyConfig `yaml:"ceremony"`
	Log      LogConfig      `yaml:"log"`
	Backup   BackupConfig   `yaml:"backup"`
	Runtime  RuntimeConfig  `yaml:"runtime"`
}

// ServerConfig is the REST listener.
type ServerConfig struct {
	Listen                string        `yaml:"listen"`
	MaxBodyBytes          int           `yaml:"max_body_bytes"`
	MaxConcurrentRequests int           `yaml:"max_concurrent_requests"`
	MaxConnections        int           `yaml:"max_connections"`
	ReadTimeout           time.Duration `yaml:"read_timeout"`
	WriteTimeout          time.Duration `yaml:"write_timeout"`
	IdleTimeout           time.Duration `yaml:"idle_timeout"`
	RequestTimeout        time.Duration `yaml:"request_timeout"`
	ReadyTimeout          time.Duration `yaml:"ready_timeout"`
	ShutdownTimeout       time.Duration `yaml:"shutdown_timeout"`
	// LockedSecretSlots sizes the locked-memory arena (64 bytes a slot)
	// holding the secrets of calls in flight; 0 disables locking.
	LockedSecretSlots int `yaml:"locked_secret_slots"`
	// Fair sharing (DESIGN §2, §9): MaxConcurrentRequests bounds short
	// requests, MaxConcurrentCeremonies those waiting on a room (import,
	// sign); each user gets at most UserMax* of each, and admins have
	// AdminReservedRequests more seats nobody else can take. 0 derives a
	// default from the global limits (see the getters below).
	MaxConcurrentCeremonies int       `yaml:"max_concurrent_ceremonies"`
	UserMaxRequests         int       `yaml:"user_max_requests"`
	UserMaxCeremonies       int       `yaml:"user_max_ceremonies"`
	AdminReservedRequests   int       `yaml:"admin_reserved_requests"`
	TLS                     TLSConfig `yaml:"tls"`
}

// DefaultMaxCeremonies is the ceremony budget unless locked memory is
// smaller (each ceremony holds two locked secret slots).
const DefaultMaxCeremonies = 128

// Ceremonies is the effective ceremony budget: as set, else
// DefaultMaxCeremonies capped by what locked_secret_slots can hold.
func (s ServerConfig) Ceremonies() int {
	if s.MaxConcurrentCeremonies > 0 {
		return s.MaxConcurrentCeremonies
	}
	if s.LockedSecretSlots > 0 {
		return max(1, min(DefaultMaxCeremonies, s.LockedSecretSlots/2))
	}
	return DefaultMaxCeremonies
}

// UserRequests is one user's share of the short-request budget: as set,
// else half of it, so no single user can take it all.
func (s ServerConfig) UserRequests() int {
	if s.UserMaxRequests > 0 {
		return s.UserMaxRequests
	}
	return max(1, s.MaxConcurrentRequests/2)
}

// UserCeremonies is one user's share of the ceremony budget: as set, else
// half of it.
func (s ServerConfig) UserCeremonies() int {
	if s.UserMaxCeremonies > 0 {
		return s.UserMaxCeremonies
	}
	return max(1, s.Ceremonies()/2)
}

// TLSConfig enables TLS when CertFile is set. ClientAuth is none, request
// (verify a client certificate if one is sent) or require.
type TLSConfig struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
	ClientAuth   string `yaml:"client_auth"`
}

// Enabled reports whether the listener serves TLS.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" }

// Batch sizes: the default of limits.max_batch_size, and its ceiling (a
// batch's round-1 message must fit one envelope, see ceremony.MaxBatchItems).
const (
	DefaultMaxBatchSize = 64
	MaxBatchSizeLimit   = 1024
)

// LimitsConfig bounds requests.
type LimitsConfig struct {
	MaxParties int `yaml:"max_parties"`
	// MaxBatchSize is the most sign_requests one /bip340/batch-sign takes
	// (batch_too_large above it); server.max_body_bytes bounds it too.
	MaxBatchSize int `yaml:"max_batch_size"`
	// Room creation per user (/create-room): at most UserRooms rooms in any
	// RoomWindow (the relay's default room TTL, so roughly the rooms still
	// alive), and a token bucket of UserRoomBurst refilled at UserRoomRate
	// a second.
	UserRooms     int           `yaml:"user_rooms"`
	RoomWindow    time.Duration `yaml:"room_window"`
	UserRoomRate  int           `yaml:"user_room_rate"`
	UserRoomBurst int           `yaml:"user_room_burst"`
}

// HSMConfig locates the PKCS#11 token and its wrapping key. The PIN comes
// from PINFile or from the environment variable named by PINEnv.
type HSMConfig struct {
	Module     string `yaml:"module"`
	TokenLabel string `yaml:"token_label"`
	// SlotNumber selects the slot when token labels are ambiguous.
	SlotNumber *int   `yaml:"slot_number,omitempty"`
	PINFile    string `yaml:"pin_file"`
	PINEnv     string `yaml:"pin_env"`
	KeyLabel   string `yaml:"key_label"`
	// ReadKeyLabels are older wrapping keys still accepted for opening
	// blobs during a rotation.
	ReadKeyLabels []string `yaml:"read_key_labels,omitempty"`
	CreateKey     bool     `yaml:"create_key"`
	MaxSessions   int      `yaml:"max_sessions"`
	// DataKeyPool is how many per-key data keys are made ahead, off the path
	// of /bip340/create (hsm.DataKeyPool); 0 makes each on demand.
	DataKeyPool int `yaml:"data_key_pool"`
}

// PolicyConfig selects the source of users, API keys and policies.
type PolicyConfig struct {
	Source string `yaml:"source"` // vault or embedded
	// DefaultUserPolicy is the policy given to users made by
	// /admin/create-user (whose only parameter is the name).
	DefaultUserPolicy string `yaml:"default_user_policy"`
	// RuleServerTimeout bounds each call to an external rule server before
	// a signature; no answer within it refuses the signature.
	RuleServerTimeout time.Duration  `yaml:"rule_server_timeout"`
	Vault             VaultConfig    `yaml:"vault"`
	Embedded          EmbeddedConfig `yaml:"embedded"`
}

// VaultConfig is the Vault (KV v2) policy source. Authentication is a token
// file or AppRole role_id/secret_id files.
type VaultConfig struct {
	Address          string        `yaml:"address"`
	Namespace        string        `yaml:"namespace"`
	CACertFile       string        `yaml:"ca_cert_file"`
	TLSServerName    string        `yaml:"tls_server_name"`
	MaxRetries       int           `yaml:"max_retries"`
	Mount            string        `yaml:"mount"`
	Prefix           string        `yaml:"prefix"`
	TokenFile        string        `yaml:"token_file"`
	AppRoleMount     string        `yaml:"approle_mount"`
	RoleIDFile       string        `yaml:"role_id_file"`
	SecretIDFile     string        `yaml:"secret_id_file"`
	Timeout          time.Duration `yaml:"timeout"`
	CacheTTL         time.Duration `yaml:"cache_ttl"`
	NegativeCacheTTL time.Duration `yaml:"negative_cache_ttl"`
	StaleWindow      time.Duration `yaml:"stale_window"`
}

// EmbeddedConfig is the file-backed policy source for development and
// Vault-less deployments.
type EmbeddedConfig struct {
	File string `yaml:"file"`
}

// RelayConfig is the default relay used by /create-room and by ceremonies
// without a relay_address.
type RelayConfig struct {
	DefaultAddress string         `yaml:"default_address"`
	TLS            RelayTLSConfig `yaml:"tls"`
}

// RelayTLSConfig is the client side of TLS to relays.
type RelayTLSConfig struct {
	Enabled    bool   `yaml:"enabled"`
	CAFile     string `yaml:"ca_file"`
	ServerName string `yaml:"server_name"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
}

// CeremonyConfig bounds multi-party ceremonies; a request blocks until its
// ceremony ends or Timeout passes.
type CeremonyConfig struct {
	Timeout time.Duration `yaml:"timeout"`
}

// BackupConfig is the backup export setting (DESIGN §4a), for every user
// of this daemon until policies carry it: Export is "disabled" (default),
// "encrypted" (to Recipient, an age X25519 recipient "age1…") or
// "plaintext".
type BackupConfig struct {
	Export    string `yaml:"export"`
	Recipient string `yaml:"recipient"`
}

// LogConfig sets the JSON log level: debug, info, warn or error.
type LogConfig struct {
	Level string `yaml:"level"`
}

// RuntimeConfig tunes the Go garbage collector (daemon/boot applies it at
// start). Secrets never depend on it: they are zeroed explicitly, not left
// to the collector.
type RuntimeConfig struct {
	// GCPercent is debug.SetGCPercent's value: 0 keeps Go's default (100,
	// or $GOGC); higher trades heap for less collection CPU.
	GCPercent int `yaml:"gc_percent"`
	// MemoryLimitMiB is a soft heap limit (debug.SetMemoryLimit) the
	// collector honours whatever gc_percent says; 0 = none (or $GOMEMLIMIT).
	MemoryLimitMiB int `yaml:"memory_limit_mib"`
}

// DefaultConfig returns the built-in defaults the file and environment
// override.
func DefaultConfig() *Config {
	return &Config{
		Server: ServerConfig{
			Listen:                "127.0.0.1:8080",
			MaxBodyBytes:          64 << 10,
			MaxConcurrentRequests: 256,
			MaxConnections:        4096,
			ReadTimeout:           10 * time.Second,
			WriteTimeout:          10 * time.Second,
			IdleTimeout:           60 * time.Second,
			RequestTimeout:        15 * time.Second,
			ReadyTimeout:          3 * time.Second,
			ShutdownTimeout:       75 * time.Second,
			LockedSecretSlots:     DefaultLockedSecretSlots,
			AdminReservedRequests: 4,
			TLS:                   TLSConfig{ClientAuth: "none"},
		},
		Limits: LimitsConfig{MaxParties: 16, MaxBatchSize: DefaultMaxBatchSize, UserRooms: 2000, RoomWindow: 10 * time.Minute,
			UserRoomRate: 20, UserRoomBurst: 100},
		StateDir: "/var/lib/quorumd",
		Store:    StoreBolt,
		HSM: HSMConfig{
			TokenLabel:  "quorumd",
			KeyLabel:    "quorumd-wrap",
			MaxSessions: 8,
			DataKeyPool: 32,
		},
		Policy: PolicyConfig{
			Source:            "vault",
			DefaultUserPolicy: "default",
			RuleServerTimeout: 5 * time.Second,
			Vault: VaultConfig{
				Mount:            "secret",
				Prefix:           "quorumd",
				AppRoleMount:     "approle",
				MaxRetries:       2,
				Timeout:          5 * time.Second,
				CacheTTL:         30 * time.Second,
				NegativeCacheTTL: 5 * time.Second,
				StaleWindow:      5 * time.Minute,
			},
		},
		Ceremony: CeremonyConfig{Timeout: 60 * time.Second},
		Log:      LogConfig{Level: "info"},
	}
}

// DefaultLockedSecretSlots is 32 KiB of locked memory: 256 signing or
// import ceremonies (two slots each) holding secrets at once.
const DefaultLockedSecretSlots = 512

// maxDataKeyPool bounds hsm.data_key_pool: every pooled key is a token
// object, and a token holds a bounded number.
const maxDataKeyPool = 1024

// MaxLockedSecretSlots bounds server.locked_secret_slots (64 MiB locked).
const MaxLockedSecretSlots = 1 << 20

// EnvPrefix starts every environment override: QUORUMD_<SECTION>_<FIELD>,
// e.g. QUORUMD_SERVER_LISTEN, QUORUMD_SERVER_TLS_CERT_FILE,
// QUORUMD_POLICY_VAULT_ADDRESS, QUORUMD_STATE_DIR.
const EnvPrefix = "QUORUMD_"

// LoadConfig reads the YAML file at path (unknown keys are errors; "" means
// defaults only), applies the QUORUMD_* variables of environ (os.Environ()
// form) and validates the result. Unknown QUORUMD_* variables are returned
// as warnings, not errors, since tools share the prefix.
func LoadConfig(path string, environ []string) (cfg *Config, warnings []string, err error) {
	cfg = DefaultConfig()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("config: %w", err)
		}
		if err := cfg.decodeYAML(data); err != nil {
			return nil, nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	warnings, err = cfg.applyEnv(environ)
	if err != nil {
		return nil, warnings, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, warnings, err
	}
	return cfg, warnings, nil
}

func (c *Config) decodeYAML(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// envFields maps every QUORUMD_* name to its settable field.
func (c *Config) envFields() map[string]reflect.Value {
	out := map[string]reflect.Value{}
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
			name := prefix + strings.ToUpper(tag)
			if f := v.Field(i); f.Kind() == reflect.Struct {
				walk(f, name+"_")
			} else {
				out[name] = f
			}
		}
	}
	walk(reflect.ValueOf(c).Elem(), EnvPrefix)
	return out
}

// EnvNames lists every environment override name (for documentation).
func EnvNames() []string {
	m := DefaultConfig().envFields()
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func (c *Config) applyEnv(environ []string) ([]string, error) {
	fields := c.envFields()
	var warnings []string
	var errs []error
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		f, known := fields[name]
		if !known && name == c.HSM.PINEnv {
			continue // the PIN variable may share the prefix
		}
		if !known {
			warnings = append(warnings, "ignoring unknown environment variable "+name)
			continue
		}
		if err := setFromString(f, val); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return warnings, errors.Join(errs...)
}

var durationType = reflect.TypeOf(time.Duration(0))

func setFromString(f reflect.Value, s string) error {
	switch {
	case f.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		f.SetString(s)
	case f.Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		f.SetInt(int64(n))
	case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		f.Set(reflect.ValueOf(&n))
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		f.Set(reflect.ValueOf(parts))
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		f.SetBool(b)
	default:
		return fmt.Errorf("unsupported field type %s", f.Type())
	}
	return nil
}

// Validate checks the configuration's internal consistency and returns
// every problem found, joined. It does not touch the file system (see
// CheckFiles).
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	s := c.Server
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		bad("server.listen %q: want host:port", s.Listen)
	}
	if s.MaxBodyBytes < 1<<10 || s.MaxBodyBytes > 16<<20 {
		bad("server.max_body_bytes %d: want 1024..16777216", s.MaxBodyBytes)
	}
	if s.MaxConcurrentRequests < 1 {
		bad("server.max_concurrent_requests must be at least 1")
	}
	if s.MaxConnections < s.MaxConcurrentRequests {
		bad("server.max_connections (%d) must be at least server.max_concurrent_requests (%d)", s.MaxConnections, s.MaxConcurrentRequests)
	}
	for name, d := range map[string]time.Duration{
		"server.read_timeout": s.ReadTimeout, "server.write_timeout": s.WriteTimeout,
		"server.idle_timeout": s.IdleTimeout, "server.request_timeout": s.RequestTimeout,
		"server.ready_timeout": s.ReadyTimeout, "server.shutdown_timeout": s.ShutdownTimeout,
		"ceremony.timeout": c.Ceremony.Timeout,
	} {
		if d <= 0 {
			bad("%s must be positive", name)
		}
	}
	if g := c.Runtime.GCPercent; g != 0 && (g < 25 || g > 10000) {
		bad("runtime.gc_percent %d: want 0 (Go's default) or 25..10000", g)
	}
	if m := c.Runtime.MemoryLimitMiB; m != 0 && (m < 64 || m > 1<<20) {
		bad("runtime.memory_limit_mib %d: want 0 (none) or 64..1048576", m)
	}
	if n := s.LockedSecretSlots; n != 0 && (n < 2 || n > MaxLockedSecretSlots) {
		bad("server.locked_secret_slots %d: want 0 (no locking) or 2..%d (a ceremony holds two at once)", n, MaxLockedSecretSlots)
	}
	if s.MaxConcurrentCeremonies < 0 || s.UserMaxRequests < 0 || s.UserMaxCeremonies < 0 || s.AdminReservedRequests < 0 {
		bad("server: max_concurrent_ceremonies, user_max_requests, user_max_ceremonies and admin_reserved_requests must not be negative (0 = derived default)")
	}
	if n := s.LockedSecretSlots; n != 0 && s.MaxConcurrentCeremonies > n/2 {
		bad("server.max_concurrent_ceremonies (%d) needs %d locked secret slots (two each), server.locked_secret_slots is %d", s.MaxConcurrentCeremonies, 2*s.MaxConcurrentCeremonies, n)
	}
	if s.UserMaxRequests > s.MaxConcurrentRequests || s.UserMaxCeremonies > s.Ceremonies() {
		bad("server.user_max_requests / user_max_ceremonies must not exceed their global budget")
	}
	if s.TLS.Enabled() != (s.TLS.KeyFile != "") {
		bad("server.tls: cert_file and key_file go together")
	}
	switch s.TLS.ClientAuth {
	case "", "none":
	case "request", "require":
		if !s.TLS.Enabled() {
			bad("server.tls.client_auth %q needs cert_file and key_file", s.TLS.ClientAuth)
		}
		if s.TLS.ClientCAFile == "" {
			bad("server.tls.client_auth %q needs client_ca_file", s.TLS.ClientAuth)
		}
	default:
		bad("server.tls.client_auth %q: want none, request or require", s.TLS.ClientAuth)
	}
	if c.Limits.MaxParties < 2 || c.Limits.MaxParties > 255 {
		bad("limits.max_parties %d: want 2..255", c.Limits.MaxParties)
	}
	if c.Limits.MaxBatchSize < 1 || c.Limits.MaxBatchSize > MaxBatchSizeLimit {
		bad("limits.max_batch_size %d: want 1..%d", c.Limits.MaxBatchSize, MaxBatchSizeLimit)
	}
	if l := c.Limits; l.UserRooms < 1 || l.RoomWindow <= 0 || l.UserRoomRate < 1 || l.UserRoomBurst < 1 {
		bad("limits: user_rooms, room_window, user_room_rate and user_room_burst must be positive")
	}
	if c.StateDir == "" || !filepath.IsAbs(c.StateDir) {
		bad("state_dir %q must be an absolute path", c.StateDir)
	}
	errs = append(errs, c.validateStore()...)
	h := c.HSM
	if h.Module == "" {
		bad("hsm.module (the PKCS#11 library path) is required")
	}
	if h.TokenLabel == "" && h.SlotNumber == nil {
		bad("hsm: set token_label or slot_number (slot_number wins when both are set)")
	}
	if h.KeyLabel == "" {
		bad("hsm.key_label is required")
	}
	if (h.PINFile == "") == (h.PINEnv == "") {
		bad("hsm: set exactly one of pin_file and pin_env")
	}
	if h.SlotNumber != nil && *h.SlotNumber < 0 {
		bad("hsm.slot_number must not be negative")
	}
	for _, l := range h.ReadKeyLabels {
		if l == "" || l == h.KeyLabel {
			bad("hsm.read_key_labels: empty or equal to key_label")
		}
	}
	if h.MaxSessions < 2 {
		bad("hsm.max_sessions must be at least 2 (one session holds the login)")
	}
	if h.DataKeyPool < 0 || h.DataKeyPool > maxDataKeyPool {
		bad("hsm.data_key_pool %d: want 0..%d", h.DataKeyPool, maxDataKeyPool)
	}
	if c.Policy.DefaultUserPolicy == "" {
		bad("policy.default_user_policy is required")
	}
	if t := c.Policy.RuleServerTimeout; t <= 0 || t > time.Minute {
		bad("policy.rule_server_timeout %s: want > 0 and <= 1m", t)
	}
	switch c.Policy.Source {
	case "vault":
		v := c.Policy.Vault
		if u, err := url.Parse(v.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("policy.vault.address %q: want an http(s) URL", v.Address)
		} else if u.User != nil {
			bad("policy.vault.address must not carry credentials")
		}
		if v.MaxRetries < 0 {
			bad("policy.vault.max_retries must not be negative")
		}
		if v.Mount == "" {
			bad("policy.vault.mount is required")
		}
		token := v.TokenFile != ""
		approle := v.RoleIDFile != "" || v.SecretIDFile != ""
		switch {
		case token == approle:
			bad("policy.vault: set either token_file or role_id_file + secret_id_file")
		case approle && (v.RoleIDFile == "" || v.SecretIDFile == ""):
			bad("policy.vault: AppRole needs both role_id_file and secret_id_file")
		case approle && v.AppRoleMount == "":
			bad("policy.vault.approle_mount is required for AppRole")
		}
		if v.Timeout <= 0 || v.CacheTTL <= 0 || v.NegativeCacheTTL <= 0 || v.StaleWindow < 0 {
			bad("policy.vault: timeout, cache_ttl and negative_cache_ttl must be positive, stale_window not negative")
		}
	case "embedded":
		if c.Policy.Embedded.File == "" {
			bad("policy.embedded.file is required")
		}
	default:
		bad("policy.source %q: want vault or embedded", c.Policy.Source)
	}
	// Several instances of one relay deployment (over NATS JetStream) are
	// listed comma-separated; the client fails over between them.
	for _, a := range strings.Split(c.Relay.DefaultAddress, ",") {
		if checkRelayAddress(a) != nil {
			bad("relay.default_address %q: want host:port[,host:port…]", c.Relay.DefaultAddress)
			break
		}
	}
	rt := c.Relay.TLS
	if (rt.CertFile == "") != (rt.KeyFile == "") {
		bad("relay.tls: cert_file and key_file go together")
	}
	if !rt.Enabled && (rt.CAFile != "" || rt.CertFile != "" || rt.ServerName != "") {
		bad("relay.tls: settings given but enabled is false")
	}
	if s.ShutdownTimeout > 0 && c.Ceremony.Timeout > 0 && s.ShutdownTimeout < c.Ceremony.Timeout {
		bad("server.shutdown_timeout (%s) should be at least ceremony.timeout (%s) so ceremonies in flight can finish", s.ShutdownTimeout, c.Ceremony.Timeout)
	}
	switch c.Backup.Export {
	case "", "disabled", "plaintext":
	case "encrypted":
		if _, err := agekey.Recipient(c.Backup.Recipient); err != nil {
			bad("backup.recipient must be an age X25519 recipient (age1…, or 64 hex) when backup.export is encrypted: %v", err)
		}
	default:
		bad("backup.export must be disabled, encrypted or plaintext, got %q", c.Backup.Export)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level %q: want debug, info, warn or error", c.Log.Level)
	}
	return errors.Join(errs...)
}

// CheckFiles verifies that every file the configuration names exists and is
// readable (it opens them, never prints their contents), and that the PIN
// environment variable is set.
func (c *Config) CheckFiles(lookupEnv func(string) (string, bool)) error {
	var errs []error
	files := []struct{ name, path string }{
		{"server.tls.cert_file", c.Server.TLS.CertFile},
		{"server.tls.key_file", c.Server.TLS.KeyFile},
		{"server.tls.client_ca_file", c.Server.TLS.ClientCAFile},
		{"hsm.module", c.HSM.Module},
		{"hsm.pin_file", c.HSM.PINFile},
		{"relay.tls.ca_file", c.Relay.TLS.CAFile},
		{"relay.tls.cert_file", c.Relay.TLS.CertFile},
		{"relay.tls.key_file", c.Relay.TLS.KeyFile},
	}
	switch c.Policy.Source {
	case "vault":
		files = append(files,
			struct{ name, path string }{"policy.vault.ca_cert_file", c.Policy.Vault.CACertFile},
			struct{ name, path string }{"policy.vault.token_file", c.Policy.Vault.TokenFile},
			struct{ name, path string }{"policy.vault.role_id_file", c.Policy.Vault.RoleIDFile},
			struct{ name, path string }{"policy.vault.secret_id_file", c.Policy.Vault.SecretIDFile})
	case "embedded":
		files = append(files, struct{ name, path string }{"policy.embedded.file", c.Policy.Embedded.File})
	}
	for _, f := range files {
		if f.path == "" {
			continue
		}
		fh, err := os.Open(f.path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.name, err))
			continue
		}
		fh.Close()
	}
	if c.Store == StorePostgres {
		if p, err := c.Postgres.DSNPath(lookupEnv); err != nil {
			errs = append(errs, err)
		} else if fh, err := os.Open(p); err != nil {
			errs = append(errs, fmt.Errorf("postgres DSN: %w", err))
		} else {
			fh.Close()
		}
	}
	if c.HSM.PINEnv != "" {
		if v, ok := lookupEnv(c.HSM.PINEnv); !ok || v == "" {
			errs = append(errs, fmt.Errorf("hsm.pin_env: environment variable %s is not set", c.HSM.PINEnv))
		}
	}
	if st, err := os.Stat(c.StateDir); err != nil {
		errs = append(errs, fmt.Errorf("state_dir: %w", err))
	} else if !st.IsDir() {
		errs = append(errs, fmt.Errorf("state_dir %s is not a directory", c.StateDir))
	}
	return errors.Join(errs...)
}

// YAML renders the effective configuration. It holds no secret values (see
// Config), so it may be printed.
func (c *Config) YAML() ([]byte, error) {
	return yaml.Marshal(c)
}
