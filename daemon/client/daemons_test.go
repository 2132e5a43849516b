package client_test

// A real quorum for the endpoint tests: SoftHSM tokens, an in-process
// relay and quorumd processes built from this checkout, each with an
// embedded policy file holding an admin and a permissive default policy.
// (daemon/quorumtest, once merged, starts the same thing for anyone.)

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumd/quorumd/daemon/client"
	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/policy"
)

var (
	buildOnce sync.Once
	quorumd   string
	buildErr  error
)

// quorumdBinary builds cmd/quorumd once per test binary.
func quorumdBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "client-test-quorumd-")
		if err != nil {
			buildErr = err
			return
		}
		quorumd = filepath.Join(dir, "quorumd")
		cmd := exec.Command("go", "build", "-o", quorumd, "./cmd/quorumd")
		cmd.Dir = testkit.ModuleRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/quorumd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return quorumd
}

// daemon is one running quorumd.
type daemon struct {
	base     string
	adminKey string
	logs     *logBuf
}

type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// testQuorum is n daemons sharing a relay, each with a user "alice".
type testQuorum struct {
	relay   string
	daemons []*daemon
	admins  []*client.Client // admin key on each daemon
	users   []*client.Client // alice's key on each daemon
	userIDs []string
}

// startQuorum starts n daemons; backupMode, if set, is the default
// policy's allow_backup_export mode.
func startQuorum(t testing.TB, n int, backupMode string, opts ...client.Option) *testQuorum {
	t.Helper()
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		t.Skip("softhsm2 is not installed (apt-get install softhsm2)")
	}
	bin := quorumdBinary(t)
	labels := make([]string, n)
	for i := range labels {
		labels[i] = fmt.Sprintf("client-%d", i)
	}
	toks, err := testkit.NewSoftHSMTokens(t.TempDir(), labels...)
	if err != nil {
		t.Fatal(err)
	}
	q := &testQuorum{relay: testkit.Relay(t)}
	for _, tok := range toks {
		q.daemons = append(q.daemons, startDaemon(t, bin, tok, q.relay, backupMode, ""))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, d := range q.daemons {
		admin, err := client.New(d.base, d.adminKey, opts...)
		if err != nil {
			t.Fatal(err)
		}
		u, err := admin.CreateUser(ctx, "alice")
		if err != nil {
			t.Fatalf("create-user on %s: %v\n%s", d.base, err, d.logs)
		}
		user, err := client.New(d.base, u.APIKey, opts...)
		if err != nil {
			t.Fatal(err)
		}
		q.admins, q.users, q.userIDs = append(q.admins, admin), append(q.users, user), append(q.userIDs, u.UserID)
	}
	return q
}

// startDaemon starts quorumd on token tok; tlsSection, if set, is the
// server.tls block (indented for it), and the daemon then serves https.
func startDaemon(t testing.TB, bin string, tok testkit.SoftHSMToken, relayAddr, backupMode, tlsSection string) *daemon {
	t.Helper()
	dir := t.TempDir()
	pinFile, err := tok.WritePINFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	policyFile := filepath.Join(dir, "policy.json")
	src, err := policy.OpenFile(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ops := []policy.Operation{policy.OpCreateRoom, policy.OpCreateKey, policy.OpImportKeyImporter,
		policy.OpImportKeyRecipient, policy.OpSign, policy.OpDeriveTweakPubkey, policy.OpExportID,
		policy.OpGetKey, policy.OpDeleteKey, policy.OpKeygen, policy.OpBackupExport, policy.OpBackupImport}
	p := policy.Policy{Name: "default", AllowedOperations: ops, MaxN: 16, MinThreshold: 1, MaxThreshold: 16,
		KeyQuota: 1000, AllowedRelayAddresses: []string{relayAddr}}
	if backupMode != "" {
		p.BackupExport = &policy.BackupExport{Mode: backupMode}
	}
	if err := src.PutPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	adminKey, _, err := policy.BootstrapAdmin(ctx, src, "admin")
	if err != nil {
		t.Fatal(err)
	}
	src.Close()
	cfg := fmt.Sprintf(`server:
  listen: 127.0.0.1:0
  shutdown_timeout: 60s
  request_timeout: 120s
  write_timeout: 120s
%sstate_dir: %s
hsm:
  module: %s
  token_label: %s
  pin_file: %s
  key_label: quorumd-wrap
  create_key: true
policy:
  source: embedded
  default_user_policy: default
  embedded:
    file: %s
relay:
  default_address: %s
ceremony:
  timeout: 60s
log:
  level: info
`, tlsSection, filepath.Join(dir, "state"), tok.Module, tok.Label, pinFile, policyFile, relayAddr)
	cfgPath := filepath.Join(dir, "quorumd.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", cfgPath)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+tok.ConfPath)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{adminKey: adminKey, logs: &logBuf{}}
	addr := make(chan string, 1)
	done := make(chan struct{}) // closed once the process exited
	var waitErr error
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var rec struct{ Msg, Addr string }
			_ = json.Unmarshal(sc.Bytes(), &rec)
			d.logs.mu.Lock()
			d.logs.b.Write(sc.Bytes())
			d.logs.b.WriteByte('\n')
			d.logs.mu.Unlock()
			if rec.Msg == "quorumd serving" && rec.Addr != "" {
				addr <- rec.Addr
			}
		}
		waitErr = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(70 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	select {
	case a := <-addr:
		d.base = "http://" + a
		if tlsSection != "" {
			d.base = "https://" + a
		}
	case <-done:
		t.Fatalf("quorumd exited (%v):\n%s", waitErr, d.logs)
	case <-time.After(60 * time.Second):
		t.Fatalf("quorumd did not start:\n%s", d.logs)
	}
	return d
}
