package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns PEM certificate and key for a leaf.
func (ca *testCA) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func TestTLSClientCertificates(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sc, sk := ca.issue(t, "server", x509.ExtKeyUsageServerAuth)
	cc, ck := ca.issue(t, "client", x509.ExtKeyUsageClientAuth)
	clientCert, err := tls.X509KeyPair(cc, ck)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)

	for _, mode := range []string{"none", "request", "require"} {
		t.Run(mode, func(t *testing.T) {
			cfg := testConfig()
			cfg.Server.TLS = TLSConfig{CertFile: write("s.pem", sc), KeyFile: write("s.key", sk), ClientCAFile: write("ca.pem", ca.pem), ClientAuth: mode}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			srv, err := New(cfg, Backends{Auth: newMemPolicy(), Admin: newMemPolicy(), Keys: newMemKeys(), Rooms: newMemNet(nil), Ceremonies: newMemNet(nil)}, slog.New(slog.NewJSONHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve(ln)
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				srv.Shutdown(ctx)
			}()
			get := func(withCert bool) error {
				tc := &tls.Config{RootCAs: roots}
				if withCert {
					tc.Certificates = []tls.Certificate{clientCert}
				}
				c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
				res, err := c.Get("https://" + ln.Addr().String() + "/healthz")
				if err != nil {
					return err
				}
				res.Body.Close()
				if res.StatusCode != 200 {
					t.Fatalf("status %d", res.StatusCode)
				}
				return nil
			}
			if err := get(true); err != nil {
				t.Fatalf("with a client certificate: %v", err)
			}
			err = get(false)
			if mode == "require" {
				if err == nil || !strings.Contains(err.Error(), "certificate") {
					t.Fatalf("no client certificate accepted: %v", err)
				}
			} else if err != nil {
				t.Fatalf("without a client certificate: %v", err)
			}
			// Plain HTTP to the TLS port does not get an answer.
			if res, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
				res.Body.Close()
				if res.StatusCode == 200 {
					t.Fatal("plain HTTP served")
				}
			}
		})
	}
}

func TestGracefulShutdown(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Ceremony.Timeout = 10 * time.Second })
	u1, u2 := h.newUser("u1"), h.newUser("u2")
	a, b := h.newSlot(u1), h.newSlot(u2)
	room := h.newRoom(u1, 2)
	got := make(chan resp)
	go func() {
		got <- h.do("POST", "/bip340/import/import-key-share-recipient", u2, importBody(room, b.keyID, 2, []string{a.keygenID}, ""))
	}()
	for {
		h.net.mu.Lock()
		joined := h.net.rooms[room].joined
		h.net.mu.Unlock()
		if joined == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A short grace period ends before the ceremony: its context is
	// cancelled and it fails cleanly with executor_result.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := h.srv.Shutdown(ctx); err == nil {
		t.Fatal("shutdown did not report the request still in flight")
	}
	r := <-got
	wantErr(t, r, 400, ErrTypeExecutorResult)
	if !strings.Contains(r.str("err_msg"), "shutting down") || time.Since(start) > 5*time.Second {
		t.Fatalf("%s after %v", r.raw, time.Since(start))
	}
}

// TestShutdownLetsCeremoniesFinish: during a graceful shutdown a ceremony in
// flight completes (its other party lives on another daemon, modelled by
// calling the in-memory quorum directly) and Shutdown returns cleanly.
func TestShutdownLetsCeremoniesFinish(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Ceremony.Timeout = 10 * time.Second })
	u1, u2 := h.newUser("u1"), h.newUser("u2")
	a, b := h.newSlot(u1), h.newSlot(u2)
	room := h.newRoom(u1, 2)
	got := make(chan resp)
	go func() {
		got <- h.do("POST", "/bip340/import/import-key-share-recipient", u2, importBody(room, b.keyID, 2, []string{a.keygenID}, ""))
	}()
	for {
		h.net.mu.Lock()
		joined := h.net.rooms[room].joined
		h.net.mu.Unlock()
		if joined == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- h.srv.Shutdown(ctx)
	}()
	// /readyz now fails; new connections are refused, so probe the handler.
	for !h.srv.stopping.Load() {
		time.Sleep(time.Millisecond)
	}
	var fc fastCtx
	fc.init("GET", "/readyz", "", "")
	h.srv.Handler(fc.ctx)
	if fc.ctx.Response.StatusCode() != 503 {
		t.Fatalf("readyz during shutdown: %d", fc.ctx.Response.StatusCode())
	}
	var x btcec.ModNScalar
	x.SetInt(7)
	users := h.pol
	users.mu.Lock()
	owner := ""
	for id, u := range users.users {
		if u.name == "u1" {
			owner = id
		}
	}
	users.mu.Unlock()
	if _, err := h.net.ImportKey(context.Background(), ImportParams{Owner: owner, KeyID: a.keyID, RoomUUID: room, Threshold: 2, Others: [][]byte{mustDecodeHex(t, b.keygenID)}}, &x); err != nil {
		t.Fatal(err)
	}
	r := <-got
	h.must(r)
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func mustDecodeHex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
