package quorumtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/boot"
	"github.com/quorumd/quorumd/internal/proclog"
)

// startTimeout bounds a daemon's start (HSM, store, first listen); stopTimeout
// its graceful stop, beyond the configured shutdown grace.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 120 * time.Second
)

type runner interface {
	Addr() string
	Stop() error
}

// Running is a daemon served in this process by boot.Run, as cmd/quorumd
// serves it (without the process hardening, which would apply to the whole
// test binary).
type Running struct {
	addr   string
	cancel context.CancelFunc
	done   chan error
}

// StartInProcess loads the configuration at configPath (with the process's
// QUORUMD_* environment overrides, as quorumd does), starts the daemon in
// this process with its JSON logs going to logs, and returns once it serves.
//
// SoftHSM lists its tokens when the PKCS#11 module initializes, i.e. at the
// first HSM opened in the process, and again only after every HSM has been
// closed: the daemon's token must exist before then (hsmtest.NewTokens).
func StartInProcess(configPath string, logs io.Writer) (*Running, error) {
	cfg, warnings, err := daemon.LoadConfig(configPath, os.Environ())
	if err != nil {
		return nil, fmt.Errorf("configuration %s: %w", configPath, err)
	}
	log, err := boot.NewLogger(logs, cfg.Log.Level)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		log.Warn("configuration", "warning", w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{cancel: cancel, done: make(chan error, 1)}
	ready := make(chan string, 1)
	go func() { r.done <- boot.Run(ctx, cfg, log, boot.Options{Version: "quorumtest", Ready: ready}) }()
	select {
	case r.addr = <-ready:
		return r, nil
	case err := <-r.done:
		cancel()
		return nil, fmt.Errorf("daemon stopped before serving: %w", err)
	case <-time.After(startTimeout):
		cancel()
		select {
		case <-r.done:
		case <-time.After(stopTimeout):
		}
		return nil, fmt.Errorf("daemon not serving after %v", startTimeout)
	}
}

// Addr is the daemon's "127.0.0.1:port".
func (r *Running) Addr() string { return r.addr }

// Stop shuts the daemon down as SIGTERM does and returns how it ended
// (nil for a clean stop).
func (r *Running) Stop() error {
	r.cancel()
	select {
	case err := <-r.done:
		return err
	case <-time.After(stopTimeout):
		return fmt.Errorf("daemon did not stop within %v", stopTimeout)
	}
}

// process is a daemon run from a quorumd binary.
type process struct {
	addr string
	cmd  *exec.Cmd
	done chan error
}

func startProcess(binary, configPath string, logs io.Writer) (*process, error) {
	cmd := exec.Command(binary, "-config", configPath)
	cmd.Env = os.Environ()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan error, 1)}
	addrc, readDone := proclog.Follow(stderr, "quorumd serving", func(line []byte) { logs.Write(append(line, '\n')) })
	go func() {
		<-readDone // Wait closes the pipe: let the reader drain it first
		p.done <- cmd.Wait()
	}()
	select {
	case p.addr = <-addrc:
		return p, nil
	case err := <-p.done:
		return nil, fmt.Errorf("%s exited before serving: %v", binary, err)
	case <-time.After(startTimeout):
		_ = cmd.Process.Kill()
		<-p.done
		return nil, fmt.Errorf("%s not serving after %v", binary, startTimeout)
	}
}

func (p *process) Addr() string { return p.addr }

func (p *process) Stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			return fmt.Errorf("quorumd exited: %w", err)
		}
		return nil
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return errors.New("quorumd ignored SIGTERM; killed")
	}
}

// LogBuffer collects a daemon's log lines; it is safe for concurrent use.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Tail returns at most the last n bytes written, from a line start.
func (l *LogBuffer) Tail(n int) string {
	s := l.String()
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := bytes.IndexByte([]byte(s), '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}
