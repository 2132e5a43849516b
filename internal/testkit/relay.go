package testkit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quorumd/quorumd/mpc/relay"
)

// Relay starts a real relay server (package relay, in this process) on a
// loopback listener and returns its "127.0.0.1:port" address, which
// relay.NewClient accepts as is. At most one Config may be given; with
// Config.TLS set the relay speaks HTTPS only. It is shut down by t.Cleanup.
func Relay(t testing.TB, cfg ...relay.Config) (addr string) {
	t.Helper()
	_, addr = RelayServer(t, cfg...)
	return addr
}

// RelayServer is Relay that also returns the server, e.g. to read its Stats.
func RelayServer(t testing.TB, cfg ...relay.Config) (*relay.Server, string) {
	t.Helper()
	if len(cfg) > 1 {
		t.Fatalf("testkit.Relay: at most one relay.Config, got %d", len(cfg))
	}
	var c relay.Config
	if len(cfg) == 1 {
		c = cfg[0]
	}
	srv, err := relay.New(c)
	if err != nil {
		t.Fatalf("testkit.Relay: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testkit.Relay: listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("testkit.Relay: shutdown: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("testkit.Relay: serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("testkit.Relay: Serve did not return after Shutdown")
		}
	})
	// Wait until Serve is really running: a Shutdown racing with Serve's
	// start would otherwise leave Serve running forever.
	if err := relayWaitHealthy(addr, c.TLS != nil, 10*time.Second); err != nil {
		t.Fatalf("testkit.Relay: %v", err)
	}
	return srv, addr
}

// relayWaitHealthy waits until the server at addr answers: /healthz 200 over
// plain HTTP, or, with TLS (where a client certificate may be required), a
// server certificate in the handshake, which proves the server accepted.
func relayWaitHealthy(addr string, useTLS bool, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		if useTLS {
			last = relayProbeTLS(addr)
		} else {
			last = relayProbeHTTP(addr)
		}
		if last == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("relay at %s not answering after %v: %w", addr, limit, last)
}

func relayProbeHTTP(addr string) error {
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://" + addr + "/healthz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz answered %d", resp.StatusCode)
	}
	return nil
}

func relayProbeTLS(addr string) error {
	var sawCert atomic.Bool
	cfg := &tls.Config{
		// Liveness only: any certificate the server sends proves it is up.
		InsecureSkipVerify: true, //nolint:gosec // liveness probe of a local test server
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			sawCert.Store(len(raw) > 0)
			return nil
		},
	}
	d := &net.Dialer{Timeout: 2 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if conn != nil {
		conn.Close()
	}
	if sawCert.Load() {
		return nil
	}
	if err == nil {
		err = errors.New("no server certificate")
	}
	return err
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
	addrc := make(chan string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Bytes()
			logs.write(line)
			if sent {
				continue
			}
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" && rec.Addr != "" {
				addrc <- rec.Addr
				sent = true
			}
		}
	}()
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
	if err := relayWaitHealthy(addr, relayHasTLSFlag(args), 10*time.Second); err != nil {
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

// RelayPKI is a throwaway CA with a server certificate for 127.0.0.1 and
// localhost and a client certificate, generated at test time (ECDSA P-256).
// The PEM files live in t.TempDir().
type RelayPKI struct {
	CAFile, ServerCertFile, ServerKeyFile, ClientCertFile, ClientKeyFile string

	CAPool     *x509.CertPool
	ServerCert tls.Certificate
	ClientCert tls.Certificate
}

// NewRelayPKI generates a fresh RelayPKI.
func NewRelayPKI(t testing.TB) *RelayPKI {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testkit.NewRelayPKI: %v", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "quorumd test relay CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("testkit.NewRelayPKI: CA: %v", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("testkit.NewRelayPKI: CA: %v", err)
	}
	p := &RelayPKI{CAPool: x509.NewCertPool()}
	p.CAPool.AddCert(caCert)
	p.CAFile = relayWritePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)

	leaf := func(serial int64, name string, usage x509.ExtKeyUsage, ips []net.IP, dns []string) (tls.Certificate, string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatalf("testkit.NewRelayPKI: %v", err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
			DNSNames:     dns,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatalf("testkit.NewRelayPKI: %s: %v", name, err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatalf("testkit.NewRelayPKI: %s: %v", name, err)
		}
		certFile := relayWritePEM(t, dir, name+".pem", "CERTIFICATE", der)
		keyFile := relayWritePEM(t, dir, name+"-key.pem", "PRIVATE KEY", keyDER)
		return tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key}, certFile, keyFile
	}
	p.ServerCert, p.ServerCertFile, p.ServerKeyFile = leaf(2, "server", x509.ExtKeyUsageServerAuth,
		[]net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback}, []string{"localhost"})
	p.ClientCert, p.ClientCertFile, p.ClientKeyFile = leaf(3, "client", x509.ExtKeyUsageClientAuth, nil, nil)
	return p
}

// ServerTLS returns a server config; requireClientCert demands a client
// certificate signed by the CA.
func (p *RelayPKI) ServerTLS(requireClientCert bool) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{p.ServerCert}, MinVersion: tls.VersionTLS12}
	if requireClientCert {
		cfg.ClientCAs = p.CAPool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg
}

// ClientTLS returns a client config trusting the CA, presenting the client
// certificate when withCert is set.
func (p *RelayPKI) ClientTLS(withCert bool) *tls.Config {
	cfg := &tls.Config{RootCAs: p.CAPool, MinVersion: tls.VersionTLS12}
	if withCert {
		cfg.Certificates = []tls.Certificate{p.ClientCert}
	}
	return cfg
}

func relayWritePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatalf("testkit.NewRelayPKI: %v", err)
	}
	return path
}
