package systemd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// notifySocket is the datagram socket systemd gives a service in
// $NOTIFY_SOCKET; every message the service sends lands in msgs.
type notifySocket struct {
	path string
	msgs chan string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	// sun_path is short (108 bytes): t.TempDir() paths can exceed it.
	dir, err := os.MkdirTemp("", "notify-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "s")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n := &notifySocket{path: path, msgs: make(chan string, 64)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			n.msgs <- string(buf[:k])
		}
	}()
	return n
}

// await returns the first message holding the assignment want (sd_notify
// messages are newline-separated assignments), or "" after limit.
func (n *notifySocket) await(want string, limit time.Duration) (string, bool) {
	deadline := time.After(limit)
	for {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				return "", false
			}
			for _, a := range strings.Split(m, "\n") {
				if a == want {
					return m, true
				}
			}
		case <-deadline:
			return "", false
		}
	}
}

// service is a binary started the way its unit starts it.
type service struct {
	cmd  *exec.Cmd
	logs *logBuffer
	done chan error // receives Wait's result once
}

// logBuffer keeps the JSON log lines a service writes to stderr.
type logBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines []map[string]any
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// find returns the first log record with msg and a string field key.
func (l *logBuffer) find(msg, key string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.lines {
		if r["msg"] == msg {
			if v, ok := r[key].(string); ok {
				return v, true
			}
		}
	}
	return "", false
}

// startService runs bin with args and exactly env (nothing inherited).
func startService(t *testing.T, bin string, args, env []string) *service {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &service{cmd: cmd, logs: &logBuffer{}, done: make(chan error, 1)}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var rec map[string]any
			_ = json.Unmarshal(sc.Bytes(), &rec)
			s.logs.mu.Lock()
			s.logs.buf.Write(sc.Bytes())
			s.logs.buf.WriteByte('\n')
			if rec != nil {
				s.logs.lines = append(s.logs.lines, rec)
			}
			s.logs.mu.Unlock()
		}
	}()
	go func() {
		<-read // Wait closes the pipe: drain it first
		s.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

// waitLog waits until the service logs msg with a string field key.
func (s *service) waitLog(t *testing.T, msg, key string, limit time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if v, ok := s.logs.find(msg, key); ok {
			return v
		}
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("exited before logging %q: %v\n%s", msg, err, s.logs)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("no %q log line within %v\n%s", msg, limit, s.logs)
	return ""
}

// awaitReady waits for READY=1 on n, failing the test at once if the
// service exits first.
func (s *service) awaitReady(t *testing.T, n *notifySocket, limit time.Duration) {
	t.Helper()
	got := make(chan bool, 1)
	go func() { _, ok := n.await("READY=1", limit); got <- ok }()
	select {
	case ok := <-got:
		if !ok {
			t.Fatalf("no READY=1 within %v\n%s", limit, s.logs)
		}
	case err := <-s.done:
		s.done <- err
		t.Fatalf("exited before READY=1: %v\n%s", err, s.logs)
	}
}

// stop sends SIGTERM, as systemctl stop does, and returns the exit error
// (nil for status 0) or fails the test after limit (TimeoutStopSec=).
func (s *service) stop(t *testing.T, limit time.Duration) error {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		s.done <- err
		return err
	case <-time.After(limit):
		t.Fatalf("still running %v after SIGTERM: systemd would SIGKILL it\n%s", limit, s.logs)
		return nil
	}
}

// httpsGet fetches url with cfg and returns the status code.
func httpsGet(url string, cfg *tls.Config) (int, error) {
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	res, err := hc.Get(url)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode, nil
}

// baseEnv is what systemd gives every service before the unit's own
// Environment=: a PATH and nothing of the test runner's environment.
func baseEnv() []string {
	return []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin", "LANG=C.UTF-8"}
}

// withOverrides returns env with the values of names in over replaced (or
// appended), keeping order; it fails on an override of a name listed in
// keep, which must reach the service exactly as the unit sets it.
func withOverrides(t *testing.T, env []string, over map[string]string, keep ...string) []string {
	t.Helper()
	for _, k := range keep {
		if _, ok := over[k]; ok {
			t.Fatalf("test overrides %s, which must come from the unit", k)
		}
	}
	out := make([]string, 0, len(env)+len(over))
	seen := map[string]bool{}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if v, ok := over[k]; ok {
			kv = k + "=" + v
			seen[k] = true
		}
		out = append(out, kv)
	}
	for k, v := range over {
		if !seen[k] {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// lookup returns the value of name in env (last assignment wins).
func lookup(env []string, name string) (string, bool) {
	var v string
	var found bool
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			v, found = val, true
		}
	}
	return v, found
}
