package client_test

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/quorumd/quorumd/daemon/client"
	"github.com/quorumd/quorumd/internal/testkit"
)

// TestTLSClientCertificate: against a real daemon requiring mutual TLS,
// LoadTLSConfig's CA and client certificate get through; without the
// certificate, or without the CA, the handshake fails (a transport error).
func TestTLSClientCertificate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a daemon")
	}
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		t.Skip("softhsm2 is not installed (apt-get install softhsm2)")
	}
	pki := testkit.NewRelayPKI(t)
	toks, err := testkit.NewSoftHSMTokens(t.TempDir(), "client-tls")
	if err != nil {
		t.Fatal(err)
	}
	tlsSection := fmt.Sprintf("  tls:\n    cert_file: %s\n    key_file: %s\n    client_ca_file: %s\n    client_auth: require\n",
		pki.ServerCertFile, pki.ServerKeyFile, pki.CAFile)
	d := startDaemon(t, quorumdBinary(t), toks[0], testkit.Relay(t), "", tlsSection)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	tc, err := client.LoadTLSConfig(pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(d.base, d.adminKey, client.WithTLSConfig(tc))
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
		c, err := client.New(d.base, d.adminKey, client.WithTLSConfig(tc), client.WithRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Healthz(ctx); client.ErrType(err) != "transport" {
			t.Errorf("%s: %v (%s), want a transport error", name, err, client.ErrType(err))
		}
	}
	if _, err := client.LoadTLSConfig("", pki.ClientCertFile, ""); err == nil {
		t.Error("a certificate without its key accepted")
	}
}
