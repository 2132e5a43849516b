package apispec

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Factory starts a server that makes a validating proxy per request,
// GET /proxy?target=URL answering the proxy's URL as text, and returns its
// base URL: scripts that start daemons (cmd/quorumctl/demo.sh) put each
// behind a proxy of t this way. GET /close?proxy=URL stops one (a script
// that kills a daemon stops its proxy too, so clients see the refused
// connection they fail over on). Every proxy stops, and reports, with t.
func Factory(t testing.TB) string {
	t.Helper()
	rec := NewRecorder(t)
	var mu sync.Mutex
	var proxies []*ProxyServer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			mu.Lock()
			defer mu.Unlock()
			for _, p := range proxies {
				if p.URL == r.URL.Query().Get("proxy") {
					p.Close()
					return
				}
			}
			http.Error(w, "no such proxy", http.StatusNotFound)
			return
		}
		target := r.URL.Query().Get("target")
		if r.URL.Path != "/proxy" || !strings.HasPrefix(target, "http") {
			http.Error(w, "GET /proxy?target=http://host:port", http.StatusBadRequest)
			return
		}
		p, err := NewProxy(target, rec.Report)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		mu.Lock()
		proxies = append(proxies, p)
		mu.Unlock()
		io.WriteString(w, p.URL)
	}))
	t.Cleanup(func() {
		srv.Close()
		mu.Lock()
		defer mu.Unlock()
		var seen int64
		for _, p := range proxies {
			p.Close()
			seen += p.Exchanges()
		}
		// A script that ignored the factory would pass unchecked.
		if seen == 0 && !t.Failed() {
			t.Errorf("apispec: no exchange went through the %d validating proxies of %s", len(proxies), srv.URL)
		}
	})
	return srv.URL
}
