package apispec

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Recorder collects violations and fails its test at cleanup, naming each.
type Recorder struct {
	t    testing.TB
	mu   sync.Mutex
	errs []error
}

// NewRecorder returns a Recorder that reports to t when t's test ends.
func NewRecorder(t testing.TB) *Recorder {
	r := &Recorder{t: t}
	t.Cleanup(r.flush)
	return r
}

// Report records one violation (safe for concurrent use).
func (r *Recorder) Report(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

// Violations returns what was recorded so far.
func (r *Recorder) Violations() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

func (r *Recorder) flush() {
	for _, err := range r.Violations() {
		r.t.Errorf("%v", err)
	}
}

// Transport wraps base (nil = http.DefaultTransport) so that every
// violation fails t at its end.
func NewTransport(t testing.TB, base http.RoundTripper) *Transport {
	return &Transport{Base: base, Report: NewRecorder(t).Report}
}

// Proxy starts a validating reverse proxy in front of the daemon at
// target ("http://host:port") and returns its base URL. Requests pass
// through byte for byte (raw target, repeated headers, bodies of any size),
// so binaries such as quorumctl and raw probes are checked too; every
// violation fails t at cleanup, when the proxy also stops.
func Proxy(t testing.TB, target string) string {
	t.Helper()
	p, err := NewProxy(target, NewRecorder(t).Report)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p.URL
}

// ProxyServer is a running validating proxy.
type ProxyServer struct {
	URL    string
	srv    *httptest.Server
	target *url.URL
	client *http.Client
	report func(error)
	spec   *Spec
}

// NewProxy starts a validating proxy to target, reporting to report.
func NewProxy(target string, report func(error)) (*ProxyServer, error) {
	s, err := Get()
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	p := &ProxyServer{target: u, report: report, spec: s}
	p.client = &http.Client{
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			DisableCompression:  true, // pass Accept-Encoding and bodies as they are
			MaxIdleConnsPerHost: 64,
			TLSClientConfig:     nil,
		},
		// A redirect is an answer like any other: pass it back.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = p.srv.URL
	return p, nil
}

// Close stops the proxy.
func (p *ProxyServer) Close() {
	p.srv.Close()
	p.client.CloseIdleConnections()
}

// hopHeaders are the connection's own, not forwarded (RFC 9110 §7.6.1).
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func (p *ProxyServer) serve(w http.ResponseWriter, in *http.Request) {
	reqBody, err := io.ReadAll(in.Body)
	if err != nil {
		http.Error(w, "apispec proxy: reading the request: "+err.Error(), http.StatusBadGateway)
		return
	}
	// The target exactly as the client sent it: Opaque keeps %2f, dot and
	// empty segments from being decoded or cleaned on the way.
	path, query, _ := strings.Cut(in.RequestURI, "?")
	out, err := http.NewRequestWithContext(in.Context(), in.Method, p.target.String(), bytes.NewReader(reqBody))
	if err != nil {
		http.Error(w, "apispec proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	out.URL.Opaque, out.URL.RawQuery = path, query
	out.URL.ForceQuery = strings.Contains(in.RequestURI, "?") && query == ""
	out.Header = in.Header.Clone()
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	if len(reqBody) == 0 && in.ContentLength <= 0 {
		out.Body, out.ContentLength = http.NoBody, 0
	}
	resp, err := p.client.Do(out)
	if err != nil {
		if in.Context().Err() == nil {
			http.Error(w, "apispec proxy: "+err.Error(), http.StatusBadGateway)
		}
		return
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		http.Error(w, "apispec proxy: reading the answer: "+err.Error(), http.StatusBadGateway)
		return
	}
	in.Body = http.NoBody
	if verr := p.spec.Check(context.Background(), &Exchange{Request: in, RequestURI: in.RequestURI, ReqBody: reqBody,
		Status: resp.StatusCode, Header: resp.Header, Body: body}); verr != nil {
		p.report(verr)
	}
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	for _, h := range hopHeaders {
		w.Header().Del(h)
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
}
