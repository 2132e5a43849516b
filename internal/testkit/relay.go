package testkit

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quorumd/quorumd/daemon/quorumtest/relaytest"
	"github.com/quorumd/quorumd/internal/proclog"
	"github.com/quorumd/quorumd/mpc/relay"
)

// RelayPKI is relaytest.PKI: a throwaway CA with server and client certificates.
type RelayPKI = relaytest.PKI

// NewRelayPKI is relaytest.NewPKI.
func NewRelayPKI(t testing.TB) *RelayPKI { t.Helper(); return relaytest.NewPKI(t) }

// Relay is relaytest.Start: an in-process relay on loopback, stopped by t.Cleanup.
func Relay(t testing.TB, cfg ...relay.Config) (addr string) {
	t.Helper()
	return relaytest.Start(t, cfg...)
}

// RelayServer is relaytest.StartServer.
func RelayServer(t testing.TB, cfg ...relay.Config) (*relay.Server, string) {
	t.Helper()
	return relaytest.StartServer(t, cfg...)
}

// RelayProcess builds cmd/quorum-relay with `go build` into t.TempDir(),
// starts it as a separate process on 127.0.0.1 (a free port) with the extra
// command-line args, and returns its address once /healthz answers. At
// cleanup it sends SIGTERM and fails the test unless the process exits 0
// within 15 s. The process's JSON logs are attached to failing tests.
func RelayProcess(t testing.TB, args ...string) (addr string) {
	t.Helper()
	addr, _ = RelayProcessKillable(t, args...)
	return addr
}

// RelayProcessKillable is RelayProcess that also returns kill, which
// SIGKILLs the relay at once (a crash, not a shutdown); the cleanup then
// expects nothing more of it.
func RelayProcessKillable(t testing.TB, args ...string) (addr string, kill func()) {
	t.Helper()
	bin := relayBuildBinary(t)
	cmdArgs := append([]string{"-listen", "127.0.0.1:0"}, args...)
	cmd := exec.Command(bin, cmdArgs...)
	cmd.Env = relayCleanEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatalf("testkit.RelayProcess: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testkit.RelayProcess: start: %v", err)
	}
	logs := &relayLogBuf{}
	addrc, readDone := proclog.Follow(stderr, "listening", logs.write)
	waitc := make(chan error, 1)
	go func() {
		<-readDone // Wait closes the pipe; let the reader finish first
		waitc <- cmd.Wait()
	}()
	var killed atomic.Bool
	kill = func() {
		if killed.CompareAndSwap(false, true) {
			_ = cmd.Process.Kill()
		}
	}
	t.Cleanup(func() {
		if killed.Load() {
			<-waitc
			return
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-waitc:
			if err != nil {
				t.Errorf("testkit.RelayProcess: relay did not exit cleanly on SIGTERM: %v\nlogs:\n%s", err, logs.String())
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-waitc
			t.Errorf("testkit.RelayProcess: relay ignored SIGTERM for 15s; killed\nlogs:\n%s", logs.String())
		}
	})
	select {
	case addr = <-addrc:
	case err := <-waitc:
		waitc <- err // let the cleanup see it too
		t.Fatalf("testkit.RelayProcess: relay exited before listening: %v\nlogs:\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("testkit.RelayProcess: relay did not report its address within 30s\nlogs:\n%s", logs.String())
	}
	if err := relaytest.WaitHealthy(addr, relayHasTLSFlag(args), 10*time.Second); err != nil {
		t.Fatalf("testkit.RelayProcess: %v\nlogs:\n%s", err, logs.String())
	}
	return addr, kill
}

func relayHasTLSFlag(args []string) bool {
	for _, a := range args {
		if a == "-tls-cert" || a == "--tls-cert" || bytes.HasPrefix([]byte(a), []byte("-tls-cert=")) || bytes.HasPrefix([]byte(a), []byte("--tls-cert=")) {
			return true
		}
	}
	return false
}

// relayCleanEnv drops QUORUM_RELAY_* so the caller's environment cannot
// change the process under test.
func relayCleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !bytes.HasPrefix([]byte(kv), []byte("QUORUM_RELAY_")) {
			env = append(env, kv)
		}
	}
	return env
}

func relayBuildBinary(t testing.TB) string {
	t.Helper()
	root, err := FindModuleRoot()
	if err != nil {
		t.Fatalf("testkit.RelayProcess: %v", err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(t.TempDir(), "quorum-relay")
	cmd := exec.Command(goBin, "build", "-o", out, "./cmd/quorum-relay")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testkit.RelayProcess: go build: %v\n%s", err, b)
	}
	return out
}

type relayLogBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *relayLogBuf) write(line []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() < 1<<20 {
		l.buf.Write(line)
		l.buf.WriteByte('\n')
	}
}

func (l *relayLogBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
