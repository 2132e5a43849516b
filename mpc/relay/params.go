package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// MaxPartyLen is the longest party name the relay accepts, in hex characters.
const MaxPartyLen = 130

// maxWaitMsCap is the wire contract's upper bound for wait_ms.
const maxWaitMsCap = 30000

// ValidParty reports whether s is an acceptable party name: 1..130 lowercase
// hex characters (in practice a 66-char compressed identity key).
func ValidParty(s string) bool {
	if len(s) == 0 || len(s) > MaxPartyLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ValidRoomID reports whether s is a canonical lowercase UUID version 4 with
// the RFC 4122 variant, the only form the relay issues.
func ValidRoomID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return s[14] == '4' && (s[19] == '8' || s[19] == '9' || s[19] == 'a' || s[19] == 'b')
}

// paramError is a 400 with a human explanation.
type paramError struct{ msg string }

func (e *paramError) Error() string { return e.msg }

func badParam(format string, a ...any) error { return &paramError{fmt.Sprintf(format, a...)} }

// createRequest is the POST /v1/rooms body.
type createRequest struct {
	Size       *int   `json:"size"`
	TTLSeconds *int64 `json:"ttl_seconds,omitempty"`
}

// parseCreate decodes and bounds-checks a room creation body.
func parseCreate(body []byte, cfg *Config) (size int, ttl time.Duration, err error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return 0, 0, badParam(`body must be JSON {"size": N, "ttl_seconds": optional}`)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req createRequest
	if err := dec.Decode(&req); err != nil {
		return 0, 0, badParam("invalid JSON body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return 0, 0, badParam("trailing data after JSON body")
	}
	if req.Size == nil {
		return 0, 0, badParam("size is required")
	}
	size = *req.Size
	if size < 1 || size > cfg.MaxRoomSize {
		return 0, 0, badParam("size %d out of range 1..%d", size, cfg.MaxRoomSize)
	}
	ttl = cfg.DefaultRoomTTL
	if req.TTLSeconds != nil {
		maxSec := int64(cfg.MaxRoomTTL / time.Second)
		if *req.TTLSeconds < 1 || *req.TTLSeconds > maxSec {
			return 0, 0, badParam("ttl_seconds %d out of range 1..%d", *req.TTLSeconds, maxSec)
		}
		ttl = time.Duration(*req.TTLSeconds) * time.Second
	}
	return size, ttl, nil
}

// singleArg returns the value of a query parameter that may appear at most once.
func singleArg(args *fasthttp.Args, key string) (val string, present bool, err error) {
	vals := args.PeekMulti(key)
	switch len(vals) {
	case 0:
		return "", false, nil
	case 1:
		return string(vals[0]), true, nil
	default:
		return "", true, badParam("query parameter %q given %d times", key, len(vals))
	}
}

// requiredParty reads a mandatory party-name parameter.
func requiredParty(args *fasthttp.Args, key string) (string, error) {
	v, ok, err := singleArg(args, key)
	if err != nil {
		return "", err
	}
	if !ok || v == "" {
		return "", badParam("query parameter %q is required", key)
	}
	if !ValidParty(v) {
		return "", badParam("query parameter %q must be 1..%d lowercase hex characters", key, MaxPartyLen)
	}
	return v, nil
}

// parsePostParams reads ?to=<party, or empty for broadcast>. The sender
// is the seat the request's token names.
func parsePostParams(args *fasthttp.Args) (to string, err error) {
	to, _, err = singleArg(args, "to")
	if err != nil {
		return "", err
	}
	if to != "" && !ValidParty(to) {
		return "", badParam(`query parameter "to" must be empty (broadcast) or 1..%d lowercase hex characters`, MaxPartyLen)
	}
	return to, nil
}

// minFetchBytes is the smallest answer budget a fetch may ask for.
const minFetchBytes = 1024

// parseFetchParams reads ?after=<seq>&wait_ms=<ms>&max_bytes=<n>; waits are
// capped at maxWait and answer budgets at maxBytes (max_bytes absent: maxBytes).
func parseFetchParams(args *fasthttp.Args, maxWait time.Duration, maxBytes int) (after uint64, wait time.Duration, budget int, err error) {
	a, ok, err := singleArg(args, "after")
	if err != nil {
		return 0, 0, 0, err
	}
	if ok {
		if after, err = strconv.ParseUint(a, 10, 64); err != nil {
			return 0, 0, 0, badParam(`query parameter "after" must be a decimal sequence number`)
		}
	}
	w, ok, err := singleArg(args, "wait_ms")
	if err != nil {
		return 0, 0, 0, err
	}
	if ok {
		ms, perr := strconv.ParseInt(w, 10, 64)
		if perr != nil || ms < 0 || ms > maxWaitMsCap {
			return 0, 0, 0, badParam(`query parameter "wait_ms" must be an integer in 0..%d`, maxWaitMsCap)
		}
		// Within the wire bound, a relay configured for shorter waits just
		// answers earlier: an empty list is always a valid long-poll answer.
		wait = min(time.Duration(ms)*time.Millisecond, maxWait)
	}
	budget = maxBytes
	b, ok, err := singleArg(args, "max_bytes")
	if err != nil {
		return 0, 0, 0, err
	}
	if ok {
		n, perr := strconv.ParseInt(b, 10, 64)
		if perr != nil || n < minFetchBytes {
			return 0, 0, 0, badParam(`query parameter "max_bytes" must be an integer of at least %d`, minFetchBytes)
		}
		budget = int(min(n, int64(maxBytes)))
	}
	return after, wait, budget, nil
}

// parseLeaveAfter reads ?leave_after=<k>: the seat leaves with an answer
// that holds at least k envelopes (0, or absent: never).
func parseLeaveAfter(args *fasthttp.Args) (int, error) {
	v, ok, err := singleArg(args, "leave_after")
	if err != nil || !ok {
		return 0, err
	}
	k, perr := strconv.ParseUint(v, 10, 31)
	if perr != nil {
		return 0, badParam(`query parameter "leave_after" must be a count of envelopes`)
	}
	return int(k), nil
}

// seatToken reads the "Authorization: Seat <token>" header; ok is false
// when it is absent or not a well-formed token.
func seatToken(h *fasthttp.RequestHeader) (tok string, ok bool) {
	v := h.Peek(fasthttp.HeaderAuthorization)
	rest, found := bytes.CutPrefix(v, []byte("Seat "))
	if !found || len(rest) != 2*seatTokenBytes || !isLowerHex(string(rest)) {
		return "", false
	}
	return string(rest), true
}

// fetchArgs are a fetch's query parameters. On a post or a seat claim
// they ask the same request to fetch afterwards, which it does only when
// wait_ms is given (asked).
type fetchArgs struct {
	after      uint64
	wait       time.Duration
	budget     int
	leaveAfter int
	asked      bool
}

// parseFetch reads a fetch's parameters: after, wait_ms, max_bytes (see
// parseFetchParams) and leave_after.
func parseFetch(args *fasthttp.Args, maxWait time.Duration, maxBytes int) (fa fetchArgs, err error) {
	if fa.after, fa.wait, fa.budget, err = parseFetchParams(args, maxWait, maxBytes); err != nil {
		return fa, err
	}
	if fa.leaveAfter, err = parseLeaveAfter(args); err != nil {
		return fa, err
	}
	fa.asked = args.Has("wait_ms")
	return fa, nil
}
