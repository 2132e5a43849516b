package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/quorumtest"
	"github.com/quorumd/quorumd/internal/apispec"
)

// lockedBuffer is an io.Writer safe for the daemon's concurrent logging.
type lockedBuffer = quorumtest.LogBuffer

const pinValue = "pin-value-7f3a9c"

// testEnv writes a configuration whose referenced files all exist.
func testEnv(t *testing.T, extra string) (cfgPath string, environ []string) {
	t.Helper()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	module := filepath.Join(dir, "libpkcs11.so")
	policy := filepath.Join(dir, "policy.yaml")
	for _, p := range []string{module, policy} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := `server:
  listen: 127.0.0.1:0
  shutdown_timeout: 5s
state_dir: ` + state + `
hsm:
  module: ` + module + `
  pin_env: QUORUMD_HSM_PIN
policy:
  source: embedded
  embedded:
    file: ` + policy + `
relay:
  default_address: 127.0.0.1:7000
ceremony:
  timeout: 5s
` + extra
	cfgPath = filepath.Join(dir, "quorumd.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, []string{"QUORUMD_HSM_PIN=" + pinValue}
}

func TestCheckConfig(t *testing.T) {
	cfgPath, env := testEnv(t, "")
	cases := []struct {
		name     string
		args     []string
		env      []string
		code     int
		stdout   string
		stderrIn string
	}{
		{"valid", []string{"--check-config", "-config", cfgPath}, env, exitOK, "listen: 127.0.0.1:0", "configuration OK"},
		{"env override shown", []string{"-check-config", "-config", cfgPath}, append(env, "QUORUMD_CEREMONY_TIMEOUT=3s"), exitOK, "timeout: 3s", "configuration OK"},
		{"PIN variable unset", []string{"--check-config", "-config", cfgPath}, nil, exitFailure, "listen:", "QUORUMD_HSM_PIN is not set"},
		{"invalid value", []string{"--check-config", "-config", cfgPath}, append(env, "QUORUMD_SERVER_LISTEN=nowhere"), exitBadUsage, "", "server.listen"},
		{"missing file", []string{"--check-config", "-config", cfgPath + ".absent"}, env, exitBadUsage, "", "no such file"},
		{"unknown flag", []string{"--frobnicate"}, env, exitBadUsage, "", "frobnicate"},
		{"stray argument", []string{"-config", cfgPath, "serve"}, env, exitBadUsage, "", "unexpected arguments"},
		{"version", []string{"-version"}, nil, exitOK, "quorumd " + version, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), c.args, c.env, &stdout, &stderr, openBackends, nil)
			if code != c.code || !strings.Contains(stdout.String(), c.stdout) || !strings.Contains(stderr.String(), c.stderrIn) {
				t.Fatalf("code %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
			}
			if strings.Contains(stdout.String()+stderr.String(), pinValue) {
				t.Fatal("the PIN was printed")
			}
		})
	}
}

// TestUnusableHSMRefusesToStart: the daemon never serves without its HSM.
func TestUnusableHSMRefusesToStart(t *testing.T) {
	cfgPath, env := testEnv(t, "")
	env = append(env, "QUORUMD_HSM_MODULE=/nonexistent/libpkcs11.so")
	var stderr lockedBuffer
	code := run(context.Background(), []string{"-config", cfgPath}, env, io.Discard, &stderr, openBackends, nil)
	if code != exitFailure || !strings.Contains(stderr.String(), "opening the HSM") {
		t.Fatalf("code %d, log %s", code, stderr.String())
	}
}

// TestServeLifecycle starts the daemon with an empty system (no users, no
// keys, no relay rooms), checks it answers, and stops it by cancelling the
// context as SIGTERM does, with systemd notifications.
func TestServeLifecycle(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	t.Setenv("NOTIFY_SOCKET", sock)

	cfgPath, env := testEnv(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	var logs lockedBuffer
	closed := make(chan struct{})
	open := func(context.Context, *daemon.Config, *slog.Logger) (daemon.Backends, io.Closer, error) {
		e := emptySystem{}
		return daemon.Backends{Auth: e, Admin: e, Keys: e, Rooms: e, Ceremonies: e}, closerFunc(func() error { close(closed); return nil }), nil
	}
	code := make(chan int, 1)
	go func() { code <- run(ctx, []string{"-config", cfgPath}, env, io.Discard, &logs, open, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case c := <-code:
		t.Fatalf("exited %d: %s", c, logs.String())
	}
	readNotify := func() string {
		buf := make([]byte, 64)
		notify.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := notify.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	if s := readNotify(); s != "READY=1" {
		t.Fatalf("notify %q", s)
	}
	base := apispec.Proxy(t, "http://"+addr) // every answer checked against docs/openapi.yaml
	get := func(path, key string) int {
		req, _ := http.NewRequest("GET", base+path, nil)
		if key != "" {
			req.Header.Set("Authorization", key)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if s := get("/healthz", ""); s != 200 {
		t.Fatalf("healthz %d", s)
	}
	if s := get("/bip340/create", "k1.secret"); s != 401 {
		t.Fatalf("create with an unknown key: %d", s)
	}
	cancel()
	if c := <-code; c != exitOK {
		t.Fatalf("exit %d: %s", c, logs.String())
	}
	if s := readNotify(); s != "STOPPING=1" {
		t.Fatalf("notify %q", s)
	}
	select {
	case <-closed:
	default:
		t.Fatal("backends not closed")
	}
	for _, want := range []string{`"msg":"quorumd serving"`, `"msg":"quorumd stopped"`, `"service":"quorumd"`, `"route":"/bip340/create"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s", want)
		}
	}
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// emptySystem is a system with no users, keys or rooms: every key is
// unknown, so nothing past authentication is reachable.
type emptySystem struct{}

var errNoRelay = errors.New("no relay in this test")

func (emptySystem) Authorize(context.Context, string, daemon.Operation, daemon.AuthParams) (daemon.Caller, error) {
	return daemon.Caller{}, daemon.ErrAccessDenied
}
func (emptySystem) CreateUser(context.Context, string) (daemon.NewUser, error) {
	return daemon.NewUser{}, errNoRelay
}
func (emptySystem) RevokeAPIKey(context.Context, string, string) error {
	return daemon.Errorf(daemon.ErrTypeUserIDNotExists, "no such user")
}
func (emptySystem) DeleteUser(context.Context, string) error {
	return daemon.Errorf(daemon.ErrTypeUserIDNotExists, "no such user")
}
func (emptySystem) Create(context.Context, string, int) (daemon.KeySlot, error) {
	return daemon.KeySlot{}, errNoRelay
}
func (emptySystem) Get(context.Context, string, string) (daemon.KeyInfo, error) {
	return daemon.KeyInfo{}, daemon.ErrKeyNotFound
}
func (emptySystem) Delete(context.Context, string, string) error      { return daemon.ErrKeyNotFound }
func (emptySystem) CountByOwner(context.Context, string) (int, error) { return 0, nil }

func (emptySystem) ListByOwner(context.Context, string) ([]daemon.KeyInfo, error) {
	return nil, nil
}
func (emptySystem) ListAll(context.Context) (map[string][]daemon.KeyInfo, error) {
	return map[string][]daemon.KeyInfo{}, nil
}
func (emptySystem) DerivePubkey(context.Context, string, string, daemon.Tweaks) ([]byte, error) {
	return nil, daemon.ErrKeyNotFound
}
func (emptySystem) CreateRoom(context.Context, int) (string, error) { return "", errNoRelay }
func (emptySystem) ImportKey(context.Context, daemon.ImportParams, *btcec.ModNScalar) (daemon.ImportResult, error) {
	return daemon.ImportResult{}, daemon.ErrKeyNotFound
}
func (emptySystem) ImportRecipient(context.Context, daemon.ImportParams) (daemon.ImportResult, error) {
	return daemon.ImportResult{}, daemon.ErrKeyNotFound
}
func (emptySystem) Sign(context.Context, daemon.SignParams) ([]byte, error) {
	return nil, daemon.ErrKeyNotFound
}
