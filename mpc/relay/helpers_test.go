package relay_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/quorumd/quorumd/mpc/relay"
)

// tls12 is a client TLS config trusting only the system roots.
var tls12 = tls.Config{MinVersion: tls.VersionTLS12}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// fakeRelay is a hostile relay answering every request with a fixed status
// and body, to check the client's validation of untrusted answers.
func fakeRelay(t *testing.T, status int, body string) string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

// serveOn runs srv on a loopback listener; the test shuts it down itself
// (a second Shutdown at cleanup is harmless).
func serveOn(t *testing.T, srv *relay.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return")
		}
	})
	// Serve must be running before the test may shut it down.
	c, err := relay.NewClient(ln.Addr().String(), relay.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ln.Addr().String()
}
