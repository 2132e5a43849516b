package relay

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// The client's own HTTP/1.1 transport. net/http's Transport runs a read
// and a write goroutine per connection and hands every request across
// both (three goroutine switches and a context timer per request); on a
// relay delivery that was two thirds of the client's CPU. Here the calling
// goroutine writes the request and reads the answer on a pooled keep-alive
// connection itself, with one reused buffer each way; fasthttp parses the
// (untrusted) answer, bounded like before. Requests net/http still serves:
// a caller-supplied Transport, a base URL behind a proxy, and bodies large
// enough to announce Expect: 100-continue.

// wirePool is the pool of keep-alive connections to one relay instance.
type wirePool struct {
	addr    string      // host:port to dial
	host    string      // Host header
	prefix  string      // path prefix of the base URL
	tls     *tls.Config // nil for http
	maxIdle int
	idleFor time.Duration
	slots   chan struct{} // MaxConnsPerHost; nil = unlimited

	mu   sync.Mutex
	idle []*wireConn // most recently used last
}

type wireConn struct {
	c    net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	used time.Time // when it went idle
}

// wireIdleTimeout matches the net/http transport's: below the relay's
// 120 s, so the client closes an idle connection first.
const wireIdleTimeout = 60 * time.Second

// newWirePool returns the pool for base (normalised), or nil when net/http
// must serve it (a proxy applies).
func newWirePool(base string, cfg *ClientConfig) (*wirePool, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("relay: base URL: %w", err)
	}
	if p, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err != nil || p != nil {
		return nil, nil
	}
	p := &wirePool{host: u.Host, prefix: u.EscapedPath(), maxIdle: cfg.MaxIdleConnsPerHost, idleFor: wireIdleTimeout}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	p.addr = net.JoinHostPort(u.Hostname(), port)
	if u.Scheme == "https" {
		tc := &tls.Config{}
		if cfg.TLS != nil {
			tc = cfg.TLS.Clone()
		}
		if tc.ServerName == "" {
			tc.ServerName = u.Hostname()
		}
		tc.NextProtos = nil // HTTP/1.1 only
		p.tls = tc
	}
	if cfg.MaxConnsPerHost > 0 {
		p.slots = make(chan struct{}, cfg.MaxConnsPerHost)
	}
	return p, nil
}

// get returns an idle connection (reused = true) or dials a new one.
func (p *wirePool) get(ctx context.Context, deadline time.Time) (wc *wireConn, reused bool, err error) {
	if p.slots != nil {
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	now := time.Now()
	p.mu.Lock()
	for len(p.idle) > 0 {
		wc = p.idle[len(p.idle)-1]
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
		if now.Sub(wc.used) < p.idleFor {
			p.mu.Unlock()
			return wc, true, nil
		}
		_ = wc.c.Close()
	}
	p.mu.Unlock()
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	var c net.Conn
	if p.tls != nil {
		c, err = (&tls.Dialer{NetDialer: d, Config: p.tls}).DialContext(dctx, "tcp", p.addr)
	} else {
		c, err = d.DialContext(dctx, "tcp", p.addr)
	}
	if err != nil {
		p.release()
		return nil, false, err
	}
	return &wireConn{c: c, br: bufio.NewReaderSize(c, 8<<10), bw: bufio.NewWriterSize(c, 4<<10)}, false, nil
}

// put returns a healthy connection to the pool.
func (p *wirePool) put(wc *wireConn) {
	wc.used = time.Now()
	p.mu.Lock()
	if len(p.idle) < p.maxIdle {
		p.idle = append(p.idle, wc)
		wc = nil
	}
	p.mu.Unlock()
	if wc != nil {
		_ = wc.c.Close()
	}
	p.release()
}

// drop closes a connection that may not be reused.
func (p *wirePool) drop(wc *wireConn) {
	_ = wc.c.Close()
	p.release()
}

func (p *wirePool) release() {
	if p.slots != nil {
		<-p.slots
	}
}

func (p *wirePool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, wc := range idle {
		_ = wc.c.Close()
	}
}

// wireRequest is one request for wirePool.do.
type wireRequest struct {
	method, pathQuery, token, contentType, postID string
	body                                          []byte
}

// longAgo is a deadline in the past: it interrupts a blocked read or write.
var longAgo = time.Unix(1, 0)

// do performs r and returns the status and a copy of the answer's body.
// A request that failed on a reused connection before any answer byte
// arrived is sent once more on a new connection: the relay closed that
// connection while it was idle, so it never processed the request.
func (p *wirePool) do(ctx context.Context, r *wireRequest, timeout time.Duration, maxBody int64) (int, []byte, error) {
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	for try := 0; ; try++ {
		wc, reused, err := p.get(ctx, deadline)
		if err != nil {
			return 0, nil, wireErr(ctx, err, timeout)
		}
		status, body, answered, err := p.roundTrip(ctx, wc, r, deadline, maxBody)
		if err == nil || errors.Is(err, ErrProtocol) {
			return status, body, err
		}
		if !reused || answered || try > 0 || ctx.Err() != nil || !time.Now().Before(deadline) {
			return 0, nil, wireErr(ctx, err, timeout)
		}
	}
}

// roundTrip writes r on wc and reads the answer; answered reports whether
// any byte of it arrived. wc goes back to the pool or is closed.
func (p *wirePool) roundTrip(ctx context.Context, wc *wireConn, r *wireRequest, deadline time.Time, maxBody int64) (status int, body []byte, answered bool, err error) {
	if err := wc.c.SetDeadline(deadline); err != nil {
		p.drop(wc)
		return 0, nil, false, err
	}
	// A cancelled context interrupts the connection's I/O; no goroutine
	// waits for it (AfterFunc runs only if ctx ends first).
	stop := func() bool { return true }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { _ = wc.c.SetDeadline(longAgo) })
	}
	reuse := false
	defer func() {
		if !stop() || !reuse {
			p.drop(wc) // ctx ended mid-request: the connection's state is unknown
		} else {
			p.put(wc)
		}
	}()
	if err := p.writeRequest(wc.bw, r); err != nil {
		return 0, nil, false, err
	}
	if _, err := wc.br.Peek(1); err != nil {
		return 0, nil, false, err
	}
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	if err := resp.ReadLimitBody(wc.br, int(maxBody)); err != nil {
		if errors.Is(err, fasthttp.ErrBodyTooLarge) {
			return 0, nil, true, fmt.Errorf("%w: answer exceeds %d bytes", ErrProtocol, maxBody)
		}
		return 0, nil, true, err
	}
	reuse = !resp.ConnectionClose()
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), true, nil
}

// writeRequest writes r. Header values are validated hex, digits and
// fixed strings (see Client.do), so they need no escaping.
func (p *wirePool) writeRequest(w *bufio.Writer, r *wireRequest) error {
	w.WriteString(r.method)
	w.WriteByte(' ')
	w.WriteString(p.prefix)
	w.WriteString(r.pathQuery)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(p.host)
	w.WriteString("\r\nUser-Agent: quorumd-relay-client\r\nAccept: application/json\r\n")
	if r.contentType != "" {
		w.WriteString("Content-Type: ")
		w.WriteString(r.contentType)
		w.WriteString("\r\n")
	}
	if r.body != nil || r.method == http.MethodPost {
		w.WriteString("Content-Length: ")
		var n [20]byte
		w.Write(strconv.AppendInt(n[:0], int64(len(r.body)), 10))
		w.WriteString("\r\n")
	}
	if r.token != "" {
		w.WriteString("Authorization: Seat ")
		w.WriteString(r.token)
		w.WriteString("\r\n")
	}
	if r.postID != "" {
		w.WriteString(postIDHeader + ": ")
		w.WriteString(r.postID)
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	w.Write(r.body)
	return w.Flush()
}

// wireErr reports a failed request like net/http's did: a context's end
// or the request timeout as such, everything else as it came.
func wireErr(ctx context.Context, err error, timeout time.Duration) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("no answer within %v: %w", timeout, context.DeadlineExceeded)
	}
	return err
}
