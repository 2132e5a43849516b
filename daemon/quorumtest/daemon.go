package quorumtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quorumd/quorumd/daemon/quorumtest/hsmtest"
	"github.com/quorumd/quorumd/daemon/quorumtest/relaytest"
	"github.com/quorumd/quorumd/policy"
)

// KeyLabel is the HSM wrapping key's label in the configurations Configure
// writes (created on the token at the daemon's first start).
const KeyLabel = "quorumd-wrap"

// DefaultPolicy is the policy every user gets: every user operation, up to
// 16 parties, no relay_address but those DaemonOptions.AllowedRelays names.
const DefaultPolicy = "default"

// UserOperations are the operations DefaultPolicy allows: all but the
// admin ones.
var UserOperations = []policy.Operation{policy.OpCreateRoom, policy.OpCreateKey, policy.OpImportKeyImporter,
	policy.OpImportKeyRecipient, policy.OpSign, policy.OpDeriveTweakPubkey, policy.OpExportID,
	policy.OpGetKey, policy.OpDeleteKey, policy.OpKeygen, policy.OpBackupExport, policy.OpBackupImport}

// DaemonOptions configure one daemon.
type DaemonOptions struct {
	// Token is the daemon's SoftHSM token (required; see hsmtest.NewTokens).
	Token hsmtest.Token
	// RelayAddress is the default relay ("host:port").
	RelayAddress string
	// AllowedRelays is DefaultPolicy's relay_address allowlist.
	AllowedRelays []string
	// CeremonyTimeout is ceremony.timeout; 0 means 60s.
	CeremonyTimeout time.Duration
	// PostgresDSN, if set, makes the key store PostgreSQL (store: postgres,
	// the DSN in a 0600 file) instead of bbolt in the state directory.
	PostgresDSN string
	// ExtraYAML is appended to the configuration file (top-level keys the
	// generated file does not set).
	ExtraYAML string
	// Dir holds the configuration, policy file and state; "" means t.TempDir().
	Dir string
	// TLS, if set, makes the daemon serve HTTPS only (server.tls) with the
	// PKI's server certificate, checking client certificates against its CA
	// as ClientAuth says.
	TLS *relaytest.PKI
	// ClientAuth is server.tls.client_auth: "require" (default with TLS),
	// "request" or "none".
	ClientAuth string
	// Policy, if set, adjusts DefaultPolicy before it is written (e.g. its
	// BackupExport mode).
	Policy func(*policy.Policy)
}

// Daemon is one configured quorumd: its files, and once started its URL.
// Its methods must be called from the test's goroutine.
type Daemon struct {
	t testing.TB
	// Token is the daemon's SoftHSM token.
	Token hsmtest.Token
	// Dir holds ConfigPath, PolicyFile and the state directory "state".
	Dir string
	// ConfigPath is the YAML configuration; edit it before Start to change it.
	ConfigPath string
	// PolicyFile is the embedded policy source (JSON) the daemon reads.
	PolicyFile string
	// URL is "http://127.0.0.1:port" ("https://…" with DaemonOptions.TLS)
	// while the daemon runs (a restart gets a new port).
	URL string
	// AdminKey and AdminID are the bootstrapped admin's API key and user id.
	AdminKey, AdminID string
	// UserKey and UserID are the user Start creates (empty for a Daemon
	// from Configure until set by the caller).
	UserKey, UserID string

	logs    *LogBuffer
	binary  string
	scheme  string // of URL: https with DaemonOptions.TLS
	running runner
}

// Configure writes a daemon's configuration and policy file (DefaultPolicy
// and a bootstrapped admin) without starting it. The daemon runs in this
// process unless binary is a quorumd executable to run instead.
func Configure(t testing.TB, o DaemonOptions, binary string) *Daemon {
	t.Helper()
	dir := o.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	d := &Daemon{t: t, Token: o.Token, Dir: dir, PolicyFile: filepath.Join(dir, "policy.json"),
		ConfigPath: filepath.Join(dir, "quorumd.yaml"), logs: &LogBuffer{}, binary: binary, scheme: "http"}
	if err := d.configure(o); err != nil {
		t.Fatalf("quorumtest: configure daemon: %v", err)
	}
	return d
}

func (d *Daemon) configure(o DaemonOptions) error {
	if o.Token.Label == "" {
		return fmt.Errorf("no SoftHSM token given")
	}
	pinFile, err := o.Token.WritePINFile(d.Dir)
	if err != nil {
		return err
	}
	src, err := policy.OpenFile(d.PolicyFile)
	if err != nil {
		return err
	}
	defer src.Close()
	ctx := context.Background()
	p := policy.Policy{Name: DefaultPolicy, AllowedOperations: UserOperations, MaxN: 16,
		MinThreshold: 1, MaxThreshold: 16, KeyQuota: 100000, AllowedRelayAddresses: o.AllowedRelays}
	if o.Policy != nil {
		o.Policy(&p)
	}
	if err := src.PutPolicy(ctx, p); err != nil {
		return err
	}
	if d.AdminKey, d.AdminID, err = policy.BootstrapAdmin(ctx, src, "admin"); err != nil {
		return err
	}
	tlsSection, err := d.tlsSection(o)
	if err != nil {
		return err
	}
	timeout := o.CeremonyTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	// Generous server timeouts: ceremonies on a loaded 2-core machine under
	// the race detector are slow, and a test asserts outcomes, not speed.
	cfg := fmt.Sprintf(`server:
  listen: 127.0.0.1:0
  shutdown_timeout: 90s
  request_timeout: 120s
  write_timeout: 120s
%sstate_dir: %s
hsm:
  module: %s
  token_label: %s
  pin_file: %s
  key_label: %s
  create_key: true
policy:
  source: embedded
  default_user_policy: %s
  embedded:
    file: %s
relay:
  default_address: %s
ceremony:
  timeout: %s
log:
  level: debug
`, tlsSection, filepath.Join(d.Dir, "state"), o.Token.Module, o.Token.Label, pinFile, KeyLabel, DefaultPolicy, d.PolicyFile,
		o.RelayAddress, timeout)
	if o.PostgresDSN != "" {
		dsnFile := filepath.Join(d.Dir, "pg-dsn")
		if err := os.WriteFile(dsnFile, []byte(o.PostgresDSN+"\n"), 0o600); err != nil {
			return err
		}
		cfg += fmt.Sprintf("store: postgres\npostgres:\n  dsn_file: %s\n", dsnFile)
	}
	if o.ExtraYAML != "" {
		cfg += strings.TrimRight(o.ExtraYAML, "\n") + "\n"
	}
	return os.WriteFile(d.ConfigPath, []byte(cfg), 0o600)
}

// tlsSection is the server.tls block of the configuration ("" without TLS).
func (d *Daemon) tlsSection(o DaemonOptions) (string, error) {
	if o.TLS == nil {
		if o.ClientAuth != "" {
			return "", fmt.Errorf("client_auth %q without TLS", o.ClientAuth)
		}
		return "", nil
	}
	auth := o.ClientAuth
	switch auth {
	case "":
		auth = "require"
	case "none", "request", "require":
	default:
		return "", fmt.Errorf("client_auth %q: want none, request or require", auth)
	}
	d.scheme = "https"
	return fmt.Sprintf("  tls:\n    cert_file: %s\n    key_file: %s\n    client_ca_file: %s\n    client_auth: %s\n",
		o.TLS.ServerCertFile, o.TLS.ServerKeyFile, o.TLS.CAFile, auth), nil
}

// Start starts the daemon (in-process, or from the binary given to
// Configure) and waits until it serves; it fails the test otherwise. The
// caller stops it (Stop), or registers t.Cleanup(d.Stop).
func (d *Daemon) Start() {
	d.t.Helper()
	if d.running != nil {
		d.t.Fatalf("quorumtest: daemon %s already running", d.Token.Label)
	}
	var (
		r   runner
		err error
	)
	if d.binary != "" {
		r, err = startProcess(d.binary, d.ConfigPath, d.logs)
	} else if r, err = StartInProcess(d.ConfigPath, d.logs); err == nil {
		liveInProcess.Add(1)
	}
	if err != nil {
		d.t.Fatalf("quorumtest: daemon %s: %v\nlogs:\n%s", d.Token.Label, err, d.logs.String())
	}
	d.running = r
	d.URL = d.scheme + "://" + r.Addr()
}

// Stop shuts the daemon down gracefully and fails the test unless it exits
// cleanly; it does nothing when the daemon is not running.
func (d *Daemon) Stop() {
	d.t.Helper()
	if d.running == nil {
		return
	}
	r := d.running
	d.running = nil
	if _, ok := r.(*Running); ok {
		defer liveInProcess.Add(-1) // after the HSM closed
	}
	if err := r.Stop(); err != nil {
		d.t.Errorf("quorumtest: daemon %s: %v\nlogs:\n%s", d.Token.Label, err, d.logs.Tail(64<<10))
	}
}

// Running reports whether the daemon was started and not stopped.
func (d *Daemon) Running() bool { return d.running != nil }

// Logs returns everything the daemon logged (JSON lines) so far.
func (d *Daemon) Logs() string { return d.logs.String() }

// LogBuffer is where a daemon's logs go: the last few MiB are kept.
func (d *Daemon) LogBuffer() *LogBuffer { return d.logs }
