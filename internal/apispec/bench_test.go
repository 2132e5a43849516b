package apispec

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkCheck: the validator's cost per exchange (a sign request and
// its answer), what each e2e call pays on top of the daemon.
func BenchmarkCheck(b *testing.B) {
	s, err := Get()
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"room_uuid":"` + keyID + `","key_id":"` + keyID + `","msg":"00112233","derivation_path":[44,60,0,0,0]}`)
	req, _ := http.NewRequest("POST", "http://x/bip340/sign", nil)
	req.Header.Set("Authorization", userKey)
	ex := &Exchange{Request: req, ReqBody: body, Status: 200,
		Header: http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"r1"}},
		Body:   []byte(`{"signature":"` + strings.Repeat("ab", 64) + `"}`)}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Check(context.Background(), ex); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProxyHop: one GET through the proxy against the same GET
// straight to the server, so the hop's cost reads as the difference.
func BenchmarkProxyHop(b *testing.B) {
	srv := httptest.NewServer(fake{status: 200, body: `{"keygen_id":"` + keygen + `"}`})
	defer srv.Close()
	p, err := NewProxy(srv.URL, func(err error) { b.Error(err) })
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for _, c := range []struct{ name, base string }{{"direct", srv.URL}, {"proxy", p.URL}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				req, _ := http.NewRequest("GET", c.base+"/bip340/export-id/"+keyID, nil)
				req.Header.Set("Authorization", userKey)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		})
	}
}
