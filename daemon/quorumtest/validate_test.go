package quorumtest_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/quorumd/quorumd/daemon/quorumtest"
)

// catcher is a testing.TB keeping the OpenAPI violations reported to it
// (apispec's "openapi: …" errors) instead of failing the test; any other
// error fails the test as usual.
type catcher struct {
	testing.TB
	mu         sync.Mutex
	violations []string
}

func (c *catcher) Errorf(format string, args ...any) {
	c.TB.Helper()
	if msg := fmt.Sprintf(format, args...); strings.HasPrefix(msg, "openapi: ") {
		c.mu.Lock()
		c.violations = append(c.violations, msg)
		c.mu.Unlock()
		return
	}
	c.TB.Errorf(format, args...)
}

// TestExchangesValidated: the raw URL a Quorum hands out and its HTTP
// client both check every exchange against docs/openapi.yaml. The
// daemon's answers pass; an answer no operation documents (status 418, from
// a stand-in for a misbehaving daemon: real daemons do not misbehave on
// demand) is reported once through each, so the checks can fail.
func TestExchangesValidated(t *testing.T) {
	c := &catcher{}
	var direct, validated string
	t.Run("quorum", func(t *testing.T) {
		c.TB = t
		q := quorumtest.Start(c, quorumtest.Options{Parties: 1})
		direct, validated = q.DirectURL(0), q.URL(0)
		if validated == direct || q.URL(0) != validated {
			t.Fatalf("URL %s (then %s), DirectURL %s: want one proxy, not the daemon", validated, q.URL(0), direct)
		}
		get := func(hc *http.Client, url string) int {
			t.Helper()
			resp, err := hc.Get(url + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}
		if st := get(http.DefaultClient, q.URL(0)); st != http.StatusOK {
			t.Fatalf("healthz through the proxy: %d", st)
		}
		if st := get(q.HTTPClient(), q.DirectURL(0)); st != http.StatusOK {
			t.Fatalf("healthz through HTTPClient: %d", st)
		}

		teapot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusTeapot)
		}))
		defer teapot.Close()
		get(q.HTTPClient(), teapot.URL)
		real := q.Daemons[0].URL
		q.Daemons[0].URL = teapot.URL // URL's proxy follows the daemon's URL
		defer func() { q.Daemons[0].URL = real }()
		if st := get(http.DefaultClient, q.URL(0)); st != http.StatusTeapot {
			t.Fatalf("teapot through the proxy: %d", st)
		}
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	teapots := 0
	for _, v := range c.violations {
		if strings.Contains(v, "GET /healthz → 418") {
			teapots++
		} else {
			t.Errorf("a documented exchange reported: %s", v)
		}
	}
	if teapots != 2 {
		t.Fatalf("%d violations for the undocumented answers, want 2 (proxy, HTTPClient): %q", teapots, c.violations)
	}
}
