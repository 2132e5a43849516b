// Package pgtest starts throwaway PostgreSQL clusters for tests (initdb and
// postgres from the PostgreSQL server package, on a loopback port).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrMissing: the PostgreSQL server binaries are not installed. Tests
// skip on it unless QUORUMD_REQUIRE_POSTGRES is set (CI sets it, so a
// missing package fails there instead of silently skipping).
var ErrMissing = errors.New("PostgreSQL server binaries not found (install Debian's postgresql: `make deps` or `apt-get install postgresql`)")

// BinDir finds initdb and postgres: $PG_BINDIR, else the newest
// /usr/lib/postgresql/<version>/bin (Debian keeps them off PATH), else PATH.
func BinDir() (string, error) {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrMissing
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Cluster is a throwaway PostgreSQL cluster: its own data directory, a
// socket directory beside it, a free loopback TCP port and a password-
// authenticated superuser. As root it runs as the unprivileged user nobody
// (postgres refuses to run as root).
type Cluster struct {
	Dir      string // owns data/, sock/ and postgres.log
	Port     int
	User     string
	Password string

	bin     string
	cred    *syscall.Credential
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	started bool // once started, the port is kept: clients reconnect to it
}

// Start initializes a cluster in a fresh directory under the system
// temporary directory and starts it. Close stops it and removes everything.
func Start() (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "quorumd-pg-")
	if err != nil {
		return nil, err
	}
	pg := &Cluster{Dir: dir, User: "quorumd", Password: randomHex(16), bin: bin}
	if err := pg.init(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := pg.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return pg, nil
}

// init runs initdb as the unprivileged owner of Dir.
func (pg *Cluster) init() error {
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			return fmt.Errorf("postgres must not run as root and there is no user nobody: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		pg.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
		// The temp directory's parents must be searchable by nobody.
		if err := os.Chmod(pg.Dir, 0o700); err != nil {
			return err
		}
		if err := os.Chown(pg.Dir, uid, gid); err != nil {
			return err
		}
	}
	pw := filepath.Join(pg.Dir, "pwfile")
	if err := os.WriteFile(pw, []byte(pg.Password+"\n"), 0o600); err != nil {
		return err
	}
	if err := pg.chown(pw); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(pg.Dir, "sock"), 0o700); err != nil {
		return err
	}
	if err := pg.chown(filepath.Join(pg.Dir, "sock")); err != nil {
		return err
	}
	cmd := pg.command("initdb", "-D", filepath.Join(pg.Dir, "data"), "-U", pg.User, "--pwfile", pw,
		"--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
	out, err := cmd.CombinedOutput()
	os.Remove(pw)
	if err != nil {
		return fmt.Errorf("initdb: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (pg *Cluster) chown(path string) error {
	if pg.cred == nil {
		return nil
	}
	return os.Chown(path, int(pg.cred.Uid), int(pg.cred.Gid))
}

func (pg *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(pg.bin, name), args...)
	cmd.Dir = pg.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if pg.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	}
	return cmd
}

// Start starts the server (again, after Stop) and waits until it accepts
// connections. The first start picks a free port; restarts keep it.
func (pg *Cluster) Start() error {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if pg.cmd != nil {
		return errors.New("postgres: already running")
	}
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		if pg.Port == 0 || !pg.started && last != nil && strings.Contains(last.Error(), "could not bind") {
			port, err := FreePort()
			if err != nil {
				return err
			}
			pg.Port = port
		}
		if last = pg.start(); last == nil {
			return nil
		}
	}
	return last
}

func (pg *Cluster) start() error {
	logPath := filepath.Join(pg.Dir, "postgres.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	before, _ := os.Stat(logPath)
	cmd := pg.command("postgres", "-D", filepath.Join(pg.Dir, "data"),
		"-c", "listen_addresses=127.0.0.1", "-c", "port="+strconv.Itoa(pg.Port),
		"-c", "unix_socket_directories="+filepath.Join(pg.Dir, "sock"),
		"-c", "max_connections=200", "-c", "shared_buffers=32MB",
		"-c", "log_min_messages=warning", "-c", "logging_collector=off")
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a ^C to the test does not reach it first.
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := pgx.Connect(ctx, pg.DSN("postgres"))
		if err == nil {
			c.Close(ctx)
			cancel()
			break
		}
		cancel()
		select {
		case <-done:
			return fmt.Errorf("postgres exited at start: %s", pg.logSince(logPath, before))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("postgres did not accept connections within 60s: %v: %s", err, pg.logSince(logPath, before))
		}
	}
	pg.cmd, pg.done, pg.started = cmd, done, true
	return nil
}

func (pg *Cluster) logSince(path string, before os.FileInfo) string {
	b, _ := os.ReadFile(path)
	if before != nil && int64(len(b)) >= before.Size() {
		b = b[before.Size():]
	}
	return strings.TrimSpace(string(b))
}

// Stop shuts the server down (fast shutdown: sessions are disconnected,
// the cluster is left consistent) and waits for it to exit.
func (pg *Cluster) Stop() error {
	return pg.signal(syscall.SIGINT)
}

// Kill kills the server outright (SIGKILL to the postmaster and, through
// its process group, every backend); the next Start runs crash recovery.
func (pg *Cluster) Kill() error {
	return pg.signal(syscall.SIGKILL)
}

func (pg *Cluster) signal(sig syscall.Signal) error {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if pg.cmd == nil {
		return nil
	}
	pid := pg.cmd.Process.Pid
	if sig == syscall.SIGKILL {
		_ = syscall.Kill(-pid, sig)
	} else {
		_ = pg.cmd.Process.Signal(sig)
	}
	select {
	case <-pg.done:
	case <-time.After(60 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-pg.done
	}
	pg.cmd, pg.done = nil, nil
	return nil
}

// Close stops the server and removes its directory.
func (pg *Cluster) Close() error {
	err := pg.Stop()
	return errors.Join(err, os.RemoveAll(pg.Dir))
}

// DSN is a connection URL for database db over loopback TCP.
func (pg *Cluster) DSN(db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(pg.User, pg.Password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(pg.Port)), Path: "/" + db,
		RawQuery: "sslmode=disable"}
	return u.String()
}

// CreateDatabase creates a fresh database and returns its DSN.
func (pg *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	c, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return pg.DSN(name), nil
}

// CreateSchema creates a fresh schema in database db and returns a DSN
// whose search_path is that schema: a cheap, isolated namespace per test.
func (pg *Cluster) CreateSchema(ctx context.Context, db, schema string) (string, error) {
	c, err := pgx.Connect(ctx, pg.DSN(db))
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return "", fmt.Errorf("create schema %s: %w", schema, err)
	}
	return pg.DSN(db) + "&search_path=" + url.QueryEscape(schema), nil
}

// StartOrSkip starts a cluster for one test and stops it when the test
// ends; it skips the test when PostgreSQL is not installed (see
// ErrMissing). Tests that share a cluster start it in TestMain instead.
func StartOrSkip(tb testing.TB) *Cluster {
	tb.Helper()
	pg, err := Start()
	if errors.Is(err, ErrMissing) {
		Skip(tb, err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { pg.Close() })
	return pg
}

// Skip skips tb because PostgreSQL is missing, or fails it when
// QUORUMD_REQUIRE_POSTGRES is set.
func Skip(tb testing.TB, err error) {
	tb.Helper()
	if os.Getenv("QUORUMD_REQUIRE_POSTGRES") != "" {
		tb.Fatalf("QUORUMD_REQUIRE_POSTGRES is set: %v", err)
	}
	tb.Skip(err)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// FreePort returns a loopback TCP port that was free when asked, for
// servers that take a port number rather than a listener.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
