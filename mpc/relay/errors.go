package relay

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes carried in the relay's JSON error body {"error": code, "message": text}.
const (
	CodeBadRequest       = "bad_request"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeUnknownRoom      = "unknown_room"
	CodeRoomExpired      = "room_expired"
	CodeRoomFull         = "room_full"
	CodePartyLeft        = "party_left"
	CodeTooLarge         = "envelope_too_large"
	CodeRoomMessageLimit = "room_message_limit"
	CodeTooManyRooms     = "too_many_rooms"
	CodeStorageFull      = "storage_full"
	CodeShuttingDown     = "shutting_down"
	CodeSeatRequired     = "seat_required"     // no or unknown seat token
	CodeBadSeatClaim     = "bad_seat_claim"    // signature does not verify for this relay and room
	CodeStaleSeatClaim   = "stale_seat_claim"  // replayed, outside the clock window, or not newer than the seat's last claim
	CodeRoomSetsFull     = "room_sets_full"    // the room already holds its maximum of distinct member sets
	CodeClientRoomLimit  = "client_room_limit" // this client holds its maximum of open rooms
	CodeClientRateLimit  = "client_rate_limit" // this client creates rooms faster than allowed
)

// Sentinel errors for the relay's answers; use errors.Is on anything the client returns.
var (
	ErrBadRequest       = errors.New("relay: bad request")
	ErrUnknownRoom      = errors.New("relay: unknown room")
	ErrRoomExpired      = errors.New("relay: room expired or closed")
	ErrRoomFull         = errors.New("relay: room full")
	ErrPartyLeft        = errors.New("relay: party already left the room")
	ErrTooLarge         = errors.New("relay: envelope too large")
	ErrRoomMessageLimit = errors.New("relay: room message limit reached")
	ErrTooManyRooms     = errors.New("relay: too many open rooms")
	// ErrSeat: the request carries no valid seat token, or a seat claim
	// was refused (bad signature, replayed or stale).
	ErrSeat = errors.New("relay: no valid seat")
	// ErrClientLimit: this client's room count or creation rate is exhausted.
	ErrClientLimit = errors.New("relay: client room limit")
	// ErrUnavailable: the relay is shutting down, out of envelope storage,
	// or a proxy in front of it failed.
	ErrUnavailable = errors.New("relay: unavailable")
	// ErrTransport marks network-level failures (dial, reset, timeout); the
	// underlying error stays reachable with errors.Is/As.
	ErrTransport = errors.New("relay: transport error")
	// ErrProtocol marks a relay answer that violates the wire contract
	// (undecodable JSON, messages out of order or not addressed to us).
	ErrProtocol = errors.New("relay: protocol violation")
)

// codeStatus is the HTTP status the server uses for each code.
var codeStatus = map[string]int{
	CodeBadRequest:       http.StatusBadRequest,
	CodeNotFound:         http.StatusNotFound,
	CodeMethodNotAllowed: http.StatusMethodNotAllowed,
	CodeUnknownRoom:      http.StatusNotFound,
	CodeRoomExpired:      http.StatusGone,
	CodeRoomFull:         http.StatusConflict,
	CodePartyLeft:        http.StatusConflict,
	CodeTooLarge:         http.StatusRequestEntityTooLarge,
	CodeRoomMessageLimit: http.StatusTooManyRequests,
	CodeTooManyRooms:     http.StatusServiceUnavailable,
	CodeStorageFull:      http.StatusServiceUnavailable,
	CodeShuttingDown:     http.StatusServiceUnavailable,
	CodeSeatRequired:     http.StatusUnauthorized,
	CodeBadSeatClaim:     http.StatusForbidden,
	CodeStaleSeatClaim:   http.StatusForbidden,
	CodeRoomSetsFull:     http.StatusConflict,
	CodeClientRoomLimit:  http.StatusTooManyRequests,
	CodeClientRateLimit:  http.StatusTooManyRequests,
}

var codeSentinel = map[string]error{
	CodeBadRequest:       ErrBadRequest,
	CodeMethodNotAllowed: ErrBadRequest,
	CodeUnknownRoom:      ErrUnknownRoom,
	CodeRoomExpired:      ErrRoomExpired,
	CodeRoomFull:         ErrRoomFull,
	CodePartyLeft:        ErrPartyLeft,
	CodeTooLarge:         ErrTooLarge,
	CodeRoomMessageLimit: ErrRoomMessageLimit,
	CodeTooManyRooms:     ErrTooManyRooms,
	CodeStorageFull:      ErrUnavailable,
	CodeShuttingDown:     ErrUnavailable,
	CodeSeatRequired:     ErrSeat,
	CodeBadSeatClaim:     ErrSeat,
	CodeStaleSeatClaim:   ErrSeat,
	CodeRoomSetsFull:     ErrRoomFull,
	CodeClientRoomLimit:  ErrClientLimit,
	CodeClientRateLimit:  ErrClientLimit,
}

// Error is a non-2xx answer from the relay. errors.Is matches it against the
// sentinel for its code (or, for an unknown code, for its status).
type Error struct {
	Status  int    // HTTP status
	Code    string // machine code from the body, may be empty
	Message string // human text from the body, truncated
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("HTTP %d %s", e.Status, e.Code)
	}
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// Is maps the wire code to the package sentinels.
func (e *Error) Is(target error) bool {
	if s, ok := codeSentinel[e.Code]; ok {
		return s == target
	}
	switch e.Status {
	case http.StatusBadRequest, http.StatusMethodNotAllowed:
		return target == ErrBadRequest
	case http.StatusNotFound:
		// A 404 without our code is a wrong base URL or path, not a room answer.
		return false
	case http.StatusUnauthorized, http.StatusForbidden:
		return target == ErrSeat
	case http.StatusGone:
		return target == ErrRoomExpired
	case http.StatusRequestEntityTooLarge:
		return target == ErrTooLarge
	case http.StatusTooManyRequests:
		return target == ErrRoomMessageLimit
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return target == ErrUnavailable
	}
	return false
}

// transportError wraps a network failure so that both ErrTransport and the
// cause (e.g. context.DeadlineExceeded) match with errors.Is.
type transportError struct {
	op  string
	err error
}

func (e *transportError) Error() string   { return e.op + ": " + e.err.Error() }
func (e *transportError) Unwrap() []error { return []error{ErrTransport, e.err} }
