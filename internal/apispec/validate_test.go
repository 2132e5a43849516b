package apispec

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fake answers what the case says: this is a test OF the validator, so a
// scripted server stands in for the daemon here (and only here).
type fake struct {
	status int
	header map[string]string
	body   string
}

func (f fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Request-Id", "req-1")
	for k, v := range f.header {
		if v == "" {
			w.Header().Del(k)
			continue
		}
		w.Header().Set(k, v)
	}
	w.WriteHeader(f.status)
	io.WriteString(w, f.body)
}

const (
	keyID   = "0f0e0d0c-0b0a-4908-8706-050403020100"
	keygen  = "02" + "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
	userKey = "abcdef.0123456789"
)

type vcase struct {
	name         string
	method, path string
	header       map[string]string // request headers
	body         string
	answer       fake
	violation    string // "" = must pass; else a fragment of the message
}

var vcases = []vcase{
	{name: "documented 200", method: "GET", path: "/bip340/export-id/" + keyID,
		answer: fake{status: 200, body: `{"keygen_id":"` + keygen + `"}`}},
	{name: "documented 400", method: "GET", path: "/bip340/export-id/" + keyID,
		answer: fake{status: 400, body: `{"err_type":"key_id_not_exists","err_msg":"key_id does not exist"}`}},
	{name: "undocumented status", method: "GET", path: "/bip340/export-id/" + keyID,
		answer:    fake{status: 418, body: `{"err_type":"internal_problem","err_msg":"teapot"}`},
		violation: "status is not supported"},
	{name: "body field of the wrong type", method: "GET", path: "/bip340/export-id/" + keyID,
		answer:    fake{status: 200, body: `{"keygen_id":5}`},
		violation: "doesn't match schema"},
	{name: "missing required field", method: "GET", path: "/bip340/export-id/" + keyID,
		answer: fake{status: 200, body: `{}`}, violation: "keygen_id"},
	{name: "err_type of another status", method: "GET", path: "/bip340/export-id/" + keyID,
		answer:    fake{status: 401, body: `{"err_type":"bad_request_params","err_msg":"x"}`},
		violation: "doesn't match schema"},
	{name: "error envelope with an extra member", method: "GET", path: "/bip340/export-id/" + keyID,
		answer:    fake{status: 400, body: `{"err_type":"key_id_not_exists","err_msg":"x","key":"y"}`},
		violation: "doesn't match schema"},
	{name: "undocumented content type", method: "GET", path: "/bip340/export-id/" + keyID,
		answer:    fake{status: 200, header: map[string]string{"Content-Type": "text/html"}, body: `<p>`},
		violation: "Content-Type"},
	{name: "503 without Retry-After", method: "GET", path: "/bip340/export-id/" + keyID,
		answer:    fake{status: 503, body: `{"err_type":"internal_problem","err_msg":"busy"}`},
		violation: "Retry-After"},
	{name: "no X-Request-Id", method: "GET", path: "/bip340/export-id/" + keyID,
		answer:    fake{status: 200, header: map[string]string{"X-Request-Id": ""}, body: `{"keygen_id":"` + keygen + `"}`},
		violation: "X-Request-Id"},
	{name: "503 with Retry-After", method: "GET", path: "/bip340/export-id/" + keyID,
		answer: fake{status: 503, header: map[string]string{"Retry-After": "2"}, body: `{"err_type":"internal_problem","err_msg":"busy"}`}},
	{name: "unknown path answered 200", method: "GET", path: "/bip340/nope",
		answer: fake{status: 200, body: `{}`}, violation: "not a documented refusal"},
	{name: "unknown path answered not_found", method: "GET", path: "/bip340/nope",
		answer: fake{status: 404, body: `{"err_type":"not_found","err_msg":"no such endpoint"}`}},
	{name: "unknown path answered with a bare 404", method: "GET", path: "/bip340/nope",
		answer: fake{status: 404, header: map[string]string{"Content-Type": "text/plain"}, body: `404 page not found`}, violation: "not a documented refusal"},
	{name: "another method answered 200", method: "PUT", path: "/bip340/export-id/" + keyID,
		answer: fake{status: 200, body: `{"keygen_id":"` + keygen + `"}`}, violation: "method not allowed"},
	{name: "percent-encoded path refused", method: "GET", path: "/bip340/export-id/..%2fkeys%2f" + keyID,
		answer: fake{status: 400, body: `{"err_type":"bad_request_params","err_msg":"percent-encoded"}`}},
	{name: "percent-encoded path accepted", method: "GET", path: "/bip340/export-id/..%2fkeys%2f" + keyID,
		answer: fake{status: 200, body: `{"keygen_id":"` + keygen + `"}`}, violation: "percent-encoded"},
	{name: "dot segment accepted", method: "GET", path: "/bip340/keys/../export-id/" + keyID,
		answer: fake{status: 200, body: `{"keygen_id":"` + keygen + `"}`}, violation: "dot path segment"},
	{name: "request body of the wrong type accepted", method: "POST", path: "/create-room", body: `{"room_size":"three"}`,
		answer: fake{status: 200, body: `{"room_uuid":"` + keyID + `"}`}, violation: "accepted a request the document does not describe"},
	{name: "request body of the wrong type refused", method: "POST", path: "/create-room", body: `{"room_size":"three"}`,
		answer: fake{status: 400, body: `{"err_type":"bad_request_params","err_msg":"room_size"}`}},
	{name: "body where none is documented accepted", method: "GET", path: "/bip340/export-id/" + keyID, body: `{"x":1}`,
		answer: fake{status: 200, body: `{"keygen_id":"` + keygen + `"}`}, violation: "accepted a request"},
	{name: "valid request body", method: "POST", path: "/create-room", body: `{"room_size":3}`,
		answer: fake{status: 200, body: `{"room_uuid":"` + keyID + `"}`}},
}

// TestValidatorCatches runs every case through both integration shapes
// (the RoundTripper and the proxy) and checks that exactly the violating
// exchanges are reported, with method, path, status and kin-openapi's
// message.
func TestValidatorCatches(t *testing.T) {
	for _, c := range vcases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(c.answer)
			defer srv.Close()

			var viaTransport []error
			tr := &Transport{Report: func(err error) { viaTransport = append(viaTransport, err) }}
			if !strings.ContainsAny(c.path, "%.") { // Go's client would clean or re-encode these targets
				req, _ := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
				req.Header.Set("Authorization", userKey)
				resp, err := (&http.Client{Transport: tr}).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				checkReported(t, "transport", c, viaTransport)
			}

			var viaProxy []error
			p, err := NewProxy(srv.URL, func(err error) { viaProxy = append(viaProxy, err) })
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			status := rawCall(t, p.URL, c.method, c.path, c.body, "Authorization: "+userKey)
			if status != c.answer.status {
				t.Errorf("proxy passed status %d, daemon answered %d", status, c.answer.status)
			}
			checkReported(t, "proxy", c, viaProxy)
		})
	}
}

func checkReported(t *testing.T, via string, c vcase, got []error) {
	t.Helper()
	if c.violation == "" {
		if len(got) != 0 {
			t.Errorf("%s: reported %v for a documented exchange", via, got)
		}
		return
	}
	if len(got) != 1 {
		t.Fatalf("%s: reported %d violations, want 1 containing %q", via, len(got), c.violation)
	}
	msg := got[0].Error()
	v, ok := got[0].(*Violation)
	if !ok || v.Method != c.method || v.Path != c.path || v.Status != c.answer.status || !strings.Contains(msg, c.violation) {
		t.Errorf("%s: reported %q, want method %s path %s status %d and %q", via, msg, c.method, c.path, c.answer.status, c.violation)
	}
}

// rawCall sends a request byte for byte (Go's client would normalise the
// targets some cases need) and returns the status.
func rawCall(t *testing.T, base, method, target, body string, headers ...string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n", method, target, len(body))
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n" + body)
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestProxyPassesRepeatedAuthorization: two Authorization headers reach the
// daemon as two (the daemon must refuse them), and a refusal is accepted
// as documented while a 200 is reported.
func TestProxyPassesRepeatedAuthorization(t *testing.T) {
	var seen int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = len(r.Header.Values("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "req-1")
		w.WriteHeader(400)
		io.WriteString(w, `{"err_type":"bad_request_params","err_msg":"two Authorization headers"}`)
	}))
	defer srv.Close()
	var got []error
	p, err := NewProxy(srv.URL, func(err error) { got = append(got, err) })
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if st := rawCall(t, p.URL, "GET", "/bip340/create", "", "Authorization: a.b", "Authorization: c.d"); st != 400 || seen != 2 {
		t.Fatalf("status %d, daemon saw %d Authorization headers", st, seen)
	}
	if len(got) != 0 {
		t.Fatalf("a documented refusal was reported: %v", got)
	}
}

// TestProxyCutsWhenTheDaemonDies: a daemon that drops the connection
// mid-request reaches the client as a transport error (as without the
// proxy, which crash tests rely on), and nothing is reported.
func TestProxyCutsWhenTheDaemonDies(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	var got []error
	p, err := NewProxy(srv.URL, func(err error) { got = append(got, err) })
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	res, err := http.Get(p.URL + "/healthz")
	if err == nil {
		res.Body.Close()
		t.Fatalf("the client got status %d, want a transport error", res.StatusCode)
	}
	if len(got) != 0 {
		t.Fatalf("reported %v", got)
	}
}

// TestFactory: a script's way in: a proxy per target, reached by URL, that
// checks exchanges, and /close makes its address refuse connections.
func TestFactory(t *testing.T) {
	srv := httptest.NewServer(fake{status: 200, body: `{"status":"ok"}`})
	defer srv.Close()
	f := Factory(t)
	res, err := http.Get(f + "/proxy?target=" + srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	proxy := string(raw)
	if res.StatusCode != 200 || !strings.HasPrefix(proxy, "http://127.0.0.1:") {
		t.Fatalf("factory answered %d %q", res.StatusCode, raw)
	}
	if st := rawCall(t, proxy, "GET", "/healthz", ""); st != 200 {
		t.Fatalf("through the proxy: %d", st)
	}
	res, err = http.Get(f + "/close?proxy=" + proxy)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("close: %v", err)
	}
	res.Body.Close()
	_, err = http.Get(proxy + "/healthz")
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "dial" {
		t.Fatalf("a closed proxy answered (%v), want a refused dial", err)
	}
}
