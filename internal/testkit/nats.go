package testkit

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quorumd/quorumd/daemon/quorumtest/pgtest"
)

// NATSServer starts a throwaway nats-server (Debian's nats-server, installed
// by .ci/deps) with JetStream, storing in t.TempDir(), on a free loopback
// port, and returns its nats://127.0.0.1:port URL once it accepts clients.
// It is stopped at cleanup. Stop (the returned func) stops it earlier, e.g.
// to test what happens when NATS goes away.
func NATSServer(t testing.TB) (url string, stop func()) {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		t.Fatalf("testkit.NATSServer: nats-server not installed (run .ci/deps): %v", err)
	}
	var last error
	for range 3 { // a free port may be taken between probing and binding
		port, err := pgtest.FreePort()
		if err != nil {
			t.Fatalf("testkit.NATSServer: %v", err)
		}
		cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", t.TempDir(), "-n", "quorumd-test")
		var logs strings.Builder
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatalf("testkit.NATSServer: start: %v", err)
		}
		waitc := make(chan error, 1)
		go func() { waitc <- cmd.Wait() }()
		stopped := false
		stop = func() {
			if stopped {
				return
			}
			stopped = true
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-waitc:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-waitc
			}
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		if last = natsWaitReady(addr, waitc, 15*time.Second); last == nil {
			t.Cleanup(stop)
			return "nats://" + addr, stop
		}
		stop()
		last = fmt.Errorf("%w\n%s", last, logs.String())
	}
	t.Fatalf("testkit.NATSServer: %v", last)
	return "", nil
}

// natsWaitReady waits until the server at addr greets a client with INFO.
func natsWaitReady(addr string, exited <-chan error, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("nats-server exited: %v", err)
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			line, rerr := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			if rerr == nil && strings.HasPrefix(line, "INFO ") {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("nats-server at %s not ready after %v", addr, limit)
}
