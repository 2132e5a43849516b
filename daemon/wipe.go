package daemon

import (
	"crypto/tls"
	"net"
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
//   - wipeRequest clears the header and body copies after the handler.
//   - keepReading stops a request's "Connection: close" from ending the
//     connection without that next read (fasthttp would pool the reader
//     with the request still in it); the client closes its side instead
//     and the read that sees the EOF has zeroed the buffer.
//   - Secret values are never converted to Go strings (immutable, not
//     wipeable): aliasString views them in place for the call that needs
//     them; nothing may keep such a string beyond the request.
//
// Left uncovered: with TLS, crypto/tls decrypts records in its own
// per-connection buffer, which it neither zeroes nor exposes; a request
// that fasthttp fails to parse (ErrorHandler path) or that times out
// mid-read leaves its bytes in the pooled reader until another connection
// reuses it.

// wipingListener wraps every accepted connection in a wipingConn.
type wipingListener struct{ net.Listener }

func (l wipingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*tls.Conn); ok {
		return &wipingTLSConn{wipingConn{tc}, tc}, nil
	}
	return &wipingConn{c}, nil
}

// wipingConn zeroes the caller's buffer before each read.
type wipingConn struct{ net.Conn }

func (c *wipingConn) Read(p []byte) (int, error) {
	clear(p)
	return c.Conn.Read(p)
}

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

// keepReading undoes the request's "Connection: close" so that fasthttp
// reads (and wipingConn zeroes) once more before it pools the reader.
func keepReading(fc *fasthttp.RequestCtx) {
	if fc.Request.Header.ConnectionClose() && !fc.Response.ConnectionClose() {
		fc.Request.Header.ResetConnectionClose()
	}
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
