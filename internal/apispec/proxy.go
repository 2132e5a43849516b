package apispec

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

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
