package client_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/quorumd/quorumd/daemon/client"
	"github.com/quorumd/quorumd/daemon/quorumtest"
	"github.com/quorumd/quorumd/internal/apispec"
)

// TestTLSClientCertificate: against a real daemon requiring mutual TLS
// (quorumtest's TLS option and PKI), LoadTLSConfig's CA and client
// certificate get through; without the certificate, or without the CA, the
// handshake fails (a transport error).
func TestTLSClientCertificate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a daemon")
	}
	q := quorumtest.Start(t, quorumtest.Options{Parties: 1, TLS: true})
	pki := q.PKI
	if !strings.HasPrefix(q.URL(0), "https://") {
		t.Fatalf("daemon at %s, want https", q.URL(0))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	tc, err := client.LoadTLSConfig(pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	// LoadTLSConfig's configuration under the spec-validating transport.
	hc := client.NewHTTPClient(tc, 1)
	hc.Transport = apispec.NewTransport(t, hc.Transport)
	c, err := client.New(q.URL(0), q.AdminKey(0), client.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateUser(ctx, "over-mtls"); err != nil {
		t.Fatalf("with the client certificate: %v", err)
	}
	for name, files := range map[string][3]string{
		"no client certificate": {pki.CAFile, "", ""},
		"no CA":                 {"", pki.ClientCertFile, pki.ClientKeyFile},
	} {
		tc, err := client.LoadTLSConfig(files[0], files[1], files[2])
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.New(q.URL(0), q.AdminKey(0), client.WithTLSConfig(tc), client.WithRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Healthz(ctx); client.ErrType(err) != "transport" {
			t.Errorf("%s: %v (%s), want a transport error", name, err, client.ErrType(err))
		}
	}
	// Plain HTTP to the TLS port gets no answer.
	plain, err := client.New("http"+strings.TrimPrefix(q.URL(0), "https"), "", client.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Healthz(ctx); err == nil {
		t.Error("plain HTTP served on the TLS port")
	}
	if _, err := client.LoadTLSConfig("", pki.ClientCertFile, ""); err == nil {
		t.Error("a certificate without its key accepted")
	}
}
