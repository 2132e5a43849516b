package apispec

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
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
	srv    *http.Server
	target *url.URL
	client *http.Client
	report func(error)
	spec   *Spec
	seen   atomic.Int64
}

// Exchanges counts the exchanges the proxy checked.
func (p *ProxyServer) Exchanges() int64 { return p.seen.Load() }

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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	// A clone of the default transport, so a test that made it trust its
	// daemon's certificate reaches an https target through the proxy too.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableCompression = true // Accept-Encoding and bodies pass as they are
	tr.MaxIdleConnsPerHost = 64
	p := &ProxyServer{target: u, report: report, spec: s, URL: "http://" + ln.Addr().String()}
	p.client = &http.Client{
		Transport: tr,
		// A redirect is an answer like any other: pass it back.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: time.Minute, ErrorLog: log.New(io.Discard, "", 0)}
	go p.srv.Serve(ln)
	return p, nil
}

// Close stops the proxy at once: requests in flight are cut, as a stopped
// daemon would cut them.
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
	out.Close = in.Close // a client's Connection: close reaches the daemon as such
	if len(reqBody) == 0 && in.ContentLength <= 0 {
		out.Body, out.ContentLength = http.NoBody, 0
	}
	resp, err := p.client.Do(out)
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		// The daemon is gone: so is the proxy from now on, and later
		// clients get the refused connection they would get without it.
		go p.Close()
	}
	if err != nil {
		// The daemon died or cut the connection: so does the proxy, and the
		// client sees a transport error exactly as it would without it.
		panic(http.ErrAbortHandler)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	in.Body = http.NoBody
	p.seen.Add(1)
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
