package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// reqCtx is one request as the handlers see it.
type reqCtx struct {
	fc        *fasthttp.RequestCtx
	route     *route
	param     string // the :key_id path segment
	requestID string
	caller    Caller
	status    int
	errType   string
	path      string // the raw request path, for the access log
	release   func() // gives back the caller's budget seat (see admit)
	idCtx     context.Context
	tails     requestTails // work started after the answer (tail.go)
}

type ctxKey int

const requestIDKey ctxKey = iota

// RequestID returns the request id carried by a context the HTTP layer
// handed to a backend, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// Handler is the whole middleware chain: request id, in-flight gauge,
// routing, concurrency limit, recover, the handler, body zeroing, metrics,
// the access log and the request's tail work, armed to start after the
// answer (tail.go).
func (s *Server) Handler(fc *fasthttp.RequestCtx) {
	startArmedTails(fc)
	start := time.Now()
	s.metrics.inFlight.Add(1)
	rc := &reqCtx{fc: fc, requestID: requestIDOf(fc)}
	rc.tails.g = &s.tails
	fc.Response.Header.Set("X-Request-Id", rc.requestID)
	s.dispatch(rc)
	// The body may have held a private key or an API key, the header an API
	// key; wipe them whatever happened above (wipe.go).
	wipeRequest(fc)
	wipeAfterAnswer(fc)
	s.metrics.inFlight.Add(-1)
	s.finish(rc, time.Since(start))
	armTails(rc)
}

// dispatch routes and runs the handler; a panic anywhere below is answered
// as internal_problem and the server keeps serving.
func (s *Server) dispatch(rc *reqCtx) {
	defer func() {
		if p := recover(); p != nil {
			s.logPanic(rc, p)
			rc.fc.Response.Reset()
			rc.fc.Response.Header.Set("X-Request-Id", rc.requestID)
			s.writeError(rc, statusInternal, ErrTypeInternalProblem, internalMsg)
		}
	}()
	method := string(rc.fc.Method())
	rc.path = rawPath(rc.fc.Request.Header.RequestURI())
	if err := checkPath(rc.path); err != nil {
		s.metrics.ObserveRejected(rejectBadPath)
		s.fail(rc, err)
		return
	}
	rt, param, allow := s.match(method, rc.path)
	if rt == nil {
		if len(allow) > 0 {
			rc.fc.Response.Header.Set("Allow", strings.Join(allow, ", "))
			s.writeError(rc, statusNotFound, ErrTypeNotFound, "this endpoint does not serve this method; allowed: "+strings.Join(allow, ", "))
			return
		}
		s.writeError(rc, statusNotFound, ErrTypeNotFound, "no such endpoint")
		return
	}
	rc.route, rc.param = rt, param
	if rt.class != classOpen {
		if !s.budgets.admission.take() {
			s.fail(rc, &Overload{Reason: rejectAdmission, RetryAfter: time.Second, Msg: "server busy: too many requests in flight, retry later"})
			return
		}
		defer s.budgets.admission.give()
		defer func() {
			if rc.release != nil {
				rc.release()
			}
		}()
	}
	if len(rc.fc.Request.Header.PeekAll("Authorization")) > 1 {
		// A proxy may read the other one: refuse rather than pick.
		s.metrics.ObserveRejected(rejectDuplicateAuth)
		s.fail(rc, badRequest("more than one Authorization header"))
		return
	}
	// Without a '?' there are no query arguments to check, and fasthttp's
	// URI parse (four allocations) is skipped.
	if !rt.anyQ && bytes.IndexByte(rc.fc.Request.Header.RequestURI(), '?') >= 0 {
		if err := s.checkQuery(rc); err != nil {
			s.fail(rc, err)
			return
		}
	}
	if err := rt.handle(rc); err != nil {
		s.fail(rc, err)
	}
}

// admit takes the authenticated caller's seat of the route's class (once
// per request); the seat is given back when the request ends.
func (s *Server) admit(rc *reqCtx) error {
	if rc.release != nil || rc.route == nil {
		return nil
	}
	release, err := s.budgets.admit(rc.caller, rc.route.class)
	if err != nil {
		return err
	}
	rc.release = release
	return nil
}

// checkQuery rejects query parameters the route does not take, and repeats.
func (s *Server) checkQuery(rc *reqCtx) error {
	var err error
	seen := map[string]bool{}
	for k := range rc.fc.QueryArgs().All() {
		name := string(k)
		switch {
		case err != nil:
		case !slices.Contains(rc.route.query, name):
			err = badRequest("unknown query parameter %q", echo(name))
		case seen[name]:
			err = badRequest("duplicate query parameter %q", echo(name))
		}
		seen[name] = true
	}
	return err
}

// fail answers err with its envelope; an internal error's text goes to the
// log with the request id, never to the client.
func (s *Server) fail(rc *reqCtx, err error) {
	c := classify(err, s.rules())
	if c.internal {
		s.log.Error("internal error", "request_id", rc.requestID, "route", routeLabel(rc), "error", err.Error())
	}
	var o *Overload
	if errors.As(err, &o) {
		s.metrics.ObserveRejected(o.Reason)
	}
	if c.retryAfter > 0 {
		rc.fc.Response.Header.Set("Retry-After", strconv.Itoa(c.retryAfter))
	}
	s.writeError(rc, c.status, c.errType, c.msg)
}

func (s *Server) writeError(rc *reqCtx, status int, errType, msg string) {
	rc.status, rc.errType = status, errType
	rc.fc.SetStatusCode(status)
	rc.fc.SetContentType("application/json")
	rc.fc.SetBody(envelope(errType, msg))
}

// logPanic logs a recovered panic without its arguments: only the value's
// type (and the text of a runtime error, whose format is fixed) and the
// stack's function names and lines, never argument words, which could hold
// secret material.
func (s *Server) logPanic(rc *reqCtx, p any) {
	attrs := []any{"request_id", rc.requestID, "route", routeLabel(rc), "panic_type", fmt.Sprintf("%T", p)}
	if re, ok := p.(runtime.Error); ok {
		attrs = append(attrs, "panic", re.Error())
	}
	pcs := make([]uintptr, 32)
	n := runtime.Callers(3, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	var stack []string
	for {
		f, more := frames.Next()
		stack = append(stack, fmt.Sprintf("%s:%d", f.Function, f.Line))
		if !more {
			break
		}
	}
	attrs = append(attrs, "stack", stack)
	s.log.Error("panic recovered", attrs...)
}

// parseError answers requests fasthttp could not read (body over the limit,
// malformed HTTP, read timeout) with the JSON envelope.
func (s *Server) parseError(fc *fasthttp.RequestCtx, err error) {
	rc := &reqCtx{fc: fc, requestID: newRequestID(), path: rawPath(fc.Request.Header.RequestURI())}
	wipeRequest(fc)
	fc.Response.Header.Set("X-Request-Id", rc.requestID)
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		s.writeError(rc, statusBadRequest, ErrTypeBadRequestParams, fmt.Sprintf("the request body exceeds %d bytes", s.cfg.Server.MaxBodyBytes))
	case errors.As(err, &small):
		s.writeError(rc, statusBadRequest, ErrTypeBadRequestParams, "the request headers are too large")
	default:
		s.writeError(rc, statusBadRequest, ErrTypeBadRequestParams, "the HTTP request could not be read")
	}
	s.finish(rc, 0)
}

// finish records metrics and writes the access log line: method, raw path
// (truncated), route pattern, status, duration, request id, user id,
// err_type; never a body, a header or the query string.
func (s *Server) finish(rc *reqCtx, d time.Duration) {
	status := rc.fc.Response.StatusCode()
	route := routeLabel(rc)
	method := string(rc.fc.Method())
	s.metrics.ObserveRequest(route, method, status, d)
	level := slog.LevelInfo
	if rc.route != nil && rc.route.quiet && status == 200 {
		level = slog.LevelDebug
	}
	var arr [10]slog.Attr // the most a line has: no heap slice per request
	attrs := append(arr[:0],
		slog.String("request_id", rc.requestID),
		slog.String("method", method),
		slog.String("path", s.logPath(rc.path)),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.String("remote", rc.fc.RemoteIP().String()),
	)
	if ValidKeyID(rc.param) {
		attrs = append(attrs, slog.String("key_id", rc.param))
	}
	if rc.caller.UserID != "" {
		attrs = append(attrs, slog.String("user_id", rc.caller.UserID))
	}
	if rc.errType != "" {
		attrs = append(attrs, slog.String("err_type", rc.errType))
	}
	s.log.LogAttrs(context.Background(), level, "request", attrs...)
}

// logPath is the raw path as the access log shows it (%2f and .. included,
// so an operator sees what was asked), bounded, with every long run of
// base64url characters that is not a UUID or a route's own segment
// replaced: a confused client may put a key or an API key in a path.
func (s *Server) logPath(p string) string {
	const maxLen, longRun = 256, 20
	if len(p) <= maxLen && s.keepsPath(p, longRun) {
		return p // the usual path: shown whole, no copy
	}
	return s.redactPath(p, maxLen, longRun)
}

func (s *Server) redactPath(p string, maxLen, longRun int) string {
	var b strings.Builder
	for len(p) > 0 && b.Len() < maxLen {
		n := 0
		for n < len(p) && base64URLByte(p[n]) {
			n++
		}
		switch run := p[:n]; {
		case n == 0:
			b.WriteByte(p[0])
			n = 1
		case n >= longRun && !validUUID(run) && !s.segments[run]:
			b.WriteString("<redacted>")
		default:
			b.WriteString(run)
		}
		p = p[n:]
	}
	if len(p) > 0 {
		b.WriteString("…")
	}
	return b.String()
}

// keepsPath reports whether logPath would show p unchanged: none of its
// runs of base64url characters needs redacting.
func (s *Server) keepsPath(p string, longRun int) bool {
	for len(p) > 0 {
		n := 0
		for n < len(p) && base64URLByte(p[n]) {
			n++
		}
		if run := p[:n]; n >= longRun && !validUUID(run) && !s.segments[run] {
			return false
		}
		p = p[max(n, 1):]
	}
	return true
}

func base64URLByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func routeLabel(rc *reqCtx) string {
	if rc.route == nil {
		return "unmatched"
	}
	return rc.route.pattern
}

// requestIDOf takes a well-formed X-Request-Id from the client (so ids
// follow a call across daemons) or makes one.
func requestIDOf(fc *fasthttp.RequestCtx) string {
	id := fc.Request.Header.Peek("X-Request-Id")
	if len(id) > 0 && len(id) <= 128 && validToken(string(id), 128, "._:-") {
		return string(id)
	}
	return newRequestID()
}

func newRequestID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// AuditEvent names a key or user lifecycle event.
type AuditEvent string

// Audit events; one line each, outcome ok or error.
const (
	AuditKeyCreated    AuditEvent = "key.created"
	AuditKeyImported   AuditEvent = "key.imported"
	AuditKeySigned     AuditEvent = "key.signed"
	AuditKeyDeleted    AuditEvent = "key.deleted"
	AuditKeyRecovered  AuditEvent = "key.recovered"
	AuditUserCreated   AuditEvent = "user.created"
	AuditUserDeleted   AuditEvent = "user.deleted"
	AuditAPIKeyRevoked AuditEvent = "apikey.revoked"
)

// Audit writes one audit line (msg "audit", attribute audit=true) for a key
// or user event. attrs must be public data (ids, roles, digests), never a
// key, share or API key.
func Audit(l *slog.Logger, ev AuditEvent, requestID, userID string, err error, attrs ...slog.Attr) {
	var arr [16]slog.Attr // one slice, on the stack for the usual line
	all := append(arr[:0],
		slog.Bool("audit", true),
		slog.String("event", string(ev)),
		slog.String("request_id", requestID),
		slog.String("user_id", userID),
	)
	if err == nil {
		all = append(all, slog.String("outcome", "ok"))
	} else {
		all = append(all, slog.String("outcome", "error"), slog.String("err_type", classify(err, nil).errType))
	}
	l.LogAttrs(context.Background(), slog.LevelInfo, "audit", append(all, attrs...)...)
}

func (s *Server) audit(rc *reqCtx, ev AuditEvent, err error, attrs ...slog.Attr) {
	if err != nil {
		// Use the same mapping as the answer so audit and response agree.
		c := classify(err, s.rules())
		err = &Error{Type: c.errType, Msg: c.msg}
	}
	Audit(s.log, ev, rc.requestID, rc.caller.UserID, err, attrs...)
}
