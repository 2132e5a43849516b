package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Errors of the client's own checks (match them with errors.Is).
var (
	// ErrUsage: a call or driver was given arguments that cannot work
	// (the caller's mistake, found before anything was sent).
	ErrUsage = errors.New("usage")
	// ErrBadResponse: a daemon answered 200 with a body that is not what
	// the API promises.
	ErrBadResponse = errors.New("malformed daemon response")
	// ErrMismatch: the daemons of one ceremony disagree (pubkey,
	// signature, key record).
	ErrMismatch = errors.New("daemons disagree")
	// ErrInvalidSignature: a signature does not verify.
	ErrInvalidSignature = errors.New("invalid signature")
)

func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

// APIError is a non-200 answer of a daemon: the {"err_type","err_msg"}
// envelope of DESIGN §2, or a description of whatever else came back.
type APIError struct {
	Daemon  string // base URL
	Method  string
	Path    string
	Status  int
	ErrType string // "" when the body was not an error envelope
	ErrMsg  string
	// RetryAfter is the Retry-After of an overload answer (503), else 0.
	RetryAfter time.Duration
	// overload: the answer carried Retry-After, so the daemon refused the
	// call before doing any work.
	overload bool
}

func (e *APIError) Error() string {
	if e.ErrType == "" {
		return fmt.Sprintf("%s %s%s: HTTP %d: %s", e.Method, e.Daemon, e.Path, e.Status, e.ErrMsg)
	}
	return fmt.Sprintf("%s %s%s: %d %s: %s", e.Method, e.Daemon, e.Path, e.Status, e.ErrType, e.ErrMsg)
}

// ErrType classifies err for tallies and decisions: the err_type of an
// *APIError ("http_<status>" for an answer without an envelope),
// "transport" for connection-level failures, "timeout"/"cancelled" for
// context ends, "bad_response", "mismatch" and "invalid_signature" for the
// client's own checks, "" for nil and "other" otherwise.
func ErrType(err error) string {
	var ae *APIError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ae):
		if ae.ErrType != "" {
			return ae.ErrType
		}
		return fmt.Sprintf("http_%d", ae.Status)
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, ErrMismatch):
		return "mismatch"
	case errors.Is(err, ErrInvalidSignature):
		return "invalid_signature"
	case errors.Is(err, ErrBadResponse):
		return "bad_response"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return "transport"
	}
	return "other"
}

// dialFailed reports whether err is a failure to connect: the request was
// never sent, so another replica may take it whatever its method.
func dialFailed(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// printable returns at most n bytes of b with control characters replaced.
func printable(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, string(b))
}
