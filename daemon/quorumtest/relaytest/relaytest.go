// Package relaytest starts real relay servers (package mpc/relay) on
// loopback listeners for tests, and makes a throwaway PKI for relays and
// daemons that speak TLS.
package relaytest

import (
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
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/quorumd/quorumd/mpc/relay"
)

// Start starts a real relay server (package relay, in this process) on a
// loopback listener and returns its "127.0.0.1:port" address, which
// relay.NewClient accepts as is. At most one Config may be given; with
// Config.TLS set the relay speaks HTTPS only. It is shut down by t.Cleanup.
func Start(t testing.TB, cfg ...relay.Config) (addr string) {
	t.Helper()
	_, addr = StartServer(t, cfg...)
	return addr
}

// StartServer is Start that also returns the server, e.g. to read its Stats.
func StartServer(t testing.TB, cfg ...relay.Config) (*relay.Server, string) {
	t.Helper()
	if len(cfg) > 1 {
		t.Fatalf("relaytest.Start: at most one relay.Config, got %d", len(cfg))
	}
	var c relay.Config
	if len(cfg) == 1 {
		c = cfg[0]
	}
	srv, err := relay.New(c)
	if err != nil {
		t.Fatalf("relaytest.Start: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("relaytest.Start: listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("relaytest.Start: shutdown: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("relaytest.Start: serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("relaytest.Start: Serve did not return after Shutdown")
		}
	})
	// Wait until Serve is really running: a Shutdown racing with Serve's
	// start would otherwise leave Serve running forever.
	if err := WaitHealthy(addr, c.TLS != nil, 10*time.Second); err != nil {
		t.Fatalf("relaytest.Start: %v", err)
	}
	return srv, addr
}

// WaitHealthy waits until the server at addr answers: /healthz 200 over
// plain HTTP, or, with TLS (where a client certificate may be required), a
// server certificate in the handshake, which proves the server accepted.
func WaitHealthy(addr string, useTLS bool, limit time.Duration) error {
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

// PKI is a throwaway CA with a server certificate for 127.0.0.1 and
// localhost and a client certificate, generated at test time (ECDSA P-256).
// The PEM files live in t.TempDir().
type PKI struct {
	CAFile, ServerCertFile, ServerKeyFile, ClientCertFile, ClientKeyFile string

	CAPool     *x509.CertPool
	ServerCert tls.Certificate
	ClientCert tls.Certificate
}

// NewPKI generates a fresh PKI.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("relaytest.NewPKI: %v", err)
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
		t.Fatalf("relaytest.NewPKI: CA: %v", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("relaytest.NewPKI: CA: %v", err)
	}
	p := &PKI{CAPool: x509.NewCertPool()}
	p.CAPool.AddCert(caCert)
	p.CAFile = relayWritePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)

	leaf := func(serial int64, name string, usage x509.ExtKeyUsage, ips []net.IP, dns []string) (tls.Certificate, string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatalf("relaytest.NewPKI: %v", err)
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
			t.Fatalf("relaytest.NewPKI: %s: %v", name, err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatalf("relaytest.NewPKI: %s: %v", name, err)
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
func (p *PKI) ServerTLS(requireClientCert bool) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{p.ServerCert}, MinVersion: tls.VersionTLS12}
	if requireClientCert {
		cfg.ClientCAs = p.CAPool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg
}

// ClientTLS returns a client config trusting the CA, presenting the client
// certificate when withCert is set.
func (p *PKI) ClientTLS(withCert bool) *tls.Config {
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
		t.Fatalf("relaytest.NewPKI: %v", err)
	}
	return path
}

// StartV1 is Start for a relay that answers as relays before
// relay.FeatureClaimEnvelope did: a real relay behind a handler that leaves
// the features out of GET /v1/info, refuses a seat claim carrying an
// envelope (400, an unknown field, as their strict decoder did) and drops
// the fetch and leave parameters of posts and claims (they ignored them). Clients
// must fall back to a claim, a post and a fetch of their own.
func StartV1(t testing.TB, cfg ...relay.Config) (*relay.Server, string) {
	t.Helper()
	var c relay.Config
	if len(cfg) > 0 {
		c = cfg[0]
	}
	srv, err := relay.New(c)
	if err != nil {
		t.Fatalf("relaytest.StartV1: %v", err)
	}
	name := srv.Config().Name
	hs := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		path := string(ctx.Path())
		post := string(ctx.Method()) == fasthttp.MethodPost
		switch {
		case path == "/v1/info":
			b, _ := json.Marshal(struct {
				Name string `json:"name"`
			}{name})
			ctx.SetContentType("application/json")
			ctx.SetBody(b)
			return
		case post && strings.HasSuffix(path, "/seats"):
			var probe map[string]json.RawMessage
			if json.Unmarshal(ctx.PostBody(), &probe) == nil && probe["envelope"] != nil {
				ctx.SetStatusCode(fasthttp.StatusBadRequest)
				ctx.SetContentType("application/json")
				ctx.SetBodyString(`{"error":"bad_request","message":"invalid seat claim JSON: json: unknown field \"envelope\""}`)
				return
			}
			ctx.URI().SetQueryString("")
		case post && strings.HasSuffix(path, "/messages"):
			args := ctx.QueryArgs()
			for _, k := range []string{"after", "wait_ms", "max_bytes", "leave_after", "leave"} {
				args.Del(k)
			}
			ctx.URI().SetQueryStringBytes(args.QueryString())
		}
		srv.Handler(ctx)
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("relaytest.StartV1: listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx) // answers its long-polls
		if err := hs.ShutdownWithContext(ctx); err != nil {
			t.Errorf("relaytest.StartV1: shutdown: %v", err)
		}
		<-done
	})
	addr := ln.Addr().String()
	if err := WaitHealthy(addr, false, 10*time.Second); err != nil {
		t.Fatalf("relaytest.StartV1: %v", err)
	}
	return srv, addr
}
