package daemon

import (
	"crypto/tls"
	"net"
	"sync/atomic"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// Secrets arrive in requests: an API key in every Authorization header, a
// whole private key in key-importer's body, an API key in revoke-api-key's.
// fasthttp copies a request three times: the connection's read buffer (a
// bufio.Reader that goes back to a pool with the connection), the parsed
// header (raw header bytes and one buffer per value) and the body buffer
// (also pooled). None of them is cleared by fasthttp, so a memory
// disclosure long after the request would still find the secrets.
//
//   - wipingConn zeroes every buffer fasthttp reads into just before the
//     read. bufio passes only the free part of its buffer (unread bytes are
//     first moved to its front), so everything already consumed is zeroed at
//     the next read on that connection: when the connection goes idle
//     between requests (fasthttp is then blocked reading the next one), and,
//     for a pooled reader, when another connection takes it.
//   - A connection that ends after its request (Connection: close, or an
//     answer that closes) gets no next read before fasthttp pools its
//     reader: the handler marks it (wipeAfterAnswer) and the connection
//     zeroes its whole read buffer once the answer is written, while
//     fasthttp is certain to read no more from it.
//   - wipeRequest clears the header and body copies after the handler.
//   - Secret values are never converted to Go strings (immutable, not
//     wipeable): aliasString views them in place for the call that needs
//     them; nothing may keep such a string beyond the request.
//
// With TLS, crypto/tls decrypts each record in place in its own
// per-connection buffer; a wipingConn under the TLS layer zeroes that
// buffer the same ways.
//
// Left uncovered: a TLS record buffer that crypto/tls outgrows is dropped
// to the garbage collector unzeroed; a request that fasthttp fails to
// parse (ErrorHandler path) or that times out mid-read leaves its bytes in
// the pooled reader until another connection reuses it.

// wipingListener wraps every accepted connection in a wipingConn.
type wipingListener struct{ net.Listener }

func (l wipingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*tls.Conn); ok {
		return &wipingTLSConn{wipingConn: wipingConn{Conn: tc}, tc: tc}, nil
	}
	return &wipingConn{Conn: c}, nil
}

// wipingConn zeroes the caller's buffer before each read and, once marked,
// the whole read buffer after each write. It also starts a request's tail
// work once the answer is written (tail.go).
type wipingConn struct {
	net.Conn
	// buf is the widest region of the reader's buffer a Read was given: a
	// Read after a reset gets all of it. Only the connection's goroutine
	// touches it.
	buf       []byte
	wipeAfter atomic.Bool
	// armed is the tail work of the request whose answer is being written.
	armed atomic.Pointer[requestTails]
}

func (c *wipingConn) Read(p []byte) (int, error) {
	clear(p)
	if full := p[:cap(p)]; len(full) > 0 && (len(c.buf) == 0 || len(full) > len(c.buf) || !sameEnd(full, c.buf)) {
		c.buf = full
	}
	return c.Conn.Read(p)
}

func (c *wipingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if c.wipeAfter.Load() {
		clear(c.buf)
	}
	c.startArmed()
	return n, err
}

// Close closes the connection and starts tail work still armed on it: the
// answer will not be written.
func (c *wipingConn) Close() error {
	err := c.Conn.Close()
	c.startArmed()
	return err
}

// arm holds t until the connection's next write, read of a request or close.
func (c *wipingConn) arm(t *requestTails) {
	if prev := c.armed.Swap(t); prev != nil {
		prev.start()
	}
}

// startArmed starts the armed tail work, if any.
func (c *wipingConn) startArmed() {
	if c.armed.Load() == nil {
		return
	}
	if t := c.armed.Swap(nil); t != nil {
		t.start()
	}
}

// sameEnd reports whether two non-empty slices end at the same address,
// i.e. are tails of one buffer.
func sameEnd(a, b []byte) bool { return &a[len(a)-1] == &b[len(b)-1] }

// wipingTLSConn keeps what fasthttp asks of a TLS connection (its
// handshake and state, e.g. for client certificates).
type wipingTLSConn struct {
	wipingConn
	tc *tls.Conn
}

func (c *wipingTLSConn) Handshake() error                     { return c.tc.Handshake() }
func (c *wipingTLSConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// wipeRequest clears the request's copies of its secrets: the body, the
// raw header bytes and the Authorization value, in place.
func wipeRequest(fc *fasthttp.RequestCtx) {
	clear(fc.Request.Body())
	clear(fc.Request.Header.Peek("Authorization"))
	clear(fc.Request.Header.RawHeaders())
}

// wipeAfterAnswer marks a connection that fasthttp closes after this
// request (it decided so from the request's header before the handler, or
// does from the answer's) to zero its read buffers once the answer is
// written: fasthttp reads nothing more from it, and pools its reader.
func wipeAfterAnswer(fc *fasthttp.RequestCtx) {
	if !fc.Request.Header.ConnectionClose() && !fc.Response.Header.ConnectionClose() {
		return
	}
	switch c := fc.Conn().(type) {
	case *wipingConn:
		c.wipeAfter.Store(true)
	case *wipingTLSConn:
		c.wipeAfter.Store(true)
		if raw, ok := c.tc.NetConn().(*wipingConn); ok {
			raw.wipeAfter.Store(true)
		}
	}
}

// wipingOf returns the wipingConn fasthttp serves fc on (under TLS, the
// one above the TLS layer, which sees the answer's plaintext writes), or
// nil.
func wipingOf(fc *fasthttp.RequestCtx) *wipingConn {
	switch c := fc.Conn().(type) {
	case *wipingConn:
		return c
	case *wipingTLSConn:
		return &c.wipingConn
	}
	return nil
}

// aliasString views b as a string without copying, so a secret is never
// duplicated into an unwipeable string. The caller keeps b alive and
// unchanged while the string is in use and lets nothing retain it.
func aliasString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
