package daemon_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quorumd/quorumd/daemon/quorumtest"
	"github.com/quorumd/quorumd/internal/apispec"
)

// TestTLSClientCertificates: a daemon configured with server.tls (the
// whole of quorumd's wiring, on a SoftHSM token: quorumtest's TLS option)
// serves a client presenting a certificate of its CA in each client_auth
// mode; without one only "require" refuses the handshake; plain HTTP to the
// TLS port is not served.
func TestTLSClientCertificates(t *testing.T) {
	for _, mode := range []string{"none", "request", "require"} {
		t.Run(mode, func(t *testing.T) {
			q := quorumtest.Start(t, quorumtest.Options{Parties: 1, TLS: true, ClientAuth: mode})
			base := q.DirectURL(0)
			if !strings.HasPrefix(base, "https://") {
				t.Fatalf("daemon at %s, want https", base)
			}
			get := func(withCert bool) error {
				tr := &http.Transport{TLSClientConfig: q.PKI.ClientTLS(withCert)}
				defer tr.CloseIdleConnections()
				c := &http.Client{Timeout: 30 * time.Second, Transport: apispec.NewTransport(t, tr)}
				res, err := c.Get(base + "/healthz")
				if err != nil {
					return err
				}
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					t.Fatalf("status %d", res.StatusCode)
				}
				return nil
			}
			if err := get(true); err != nil {
				t.Fatalf("with a client certificate: %v", err)
			}
			err := get(false)
			if mode == "require" {
				if err == nil || !strings.Contains(err.Error(), "certificate") {
					t.Fatalf("no client certificate accepted: %v", err)
				}
			} else if err != nil {
				t.Fatalf("without a client certificate: %v", err)
			}
			if res, err := http.Get("http" + strings.TrimPrefix(base, "https") + "/healthz"); err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					t.Fatal("plain HTTP served")
				}
			}
		})
	}
}
