package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The err_type values of the Vertex error envelope (DESIGN §2).
const (
	ErrTypeAlreadyPerformedKeygen      = "already_performed_keygen"
	ErrTypeAPIKeyNotFound              = "api_key_not_found"
	ErrTypeBadNAndTParams              = "bad_n_and_t_params"
	ErrTypeBadRequestParams            = "bad_request_params"
	ErrTypeBatchTooLarge               = "batch_too_large"
	ErrTypeExecutorResult              = "executor_result"
	ErrTypeKeyIDNotExists              = "key_id_not_exists"
	ErrTypeKeyOperationBeforeKeygen    = "key_operation_before_keygen"
	ErrTypePolicyInUseByKeys           = "policy_in_use_by_keys"
	ErrTypePolicyInUseByUsers          = "policy_in_use_by_users"
	ErrTypePolicyNotFound              = "policy_not_found"
	ErrTypePolicyValidationFailed      = "policy_validation_failed"
	ErrTypeRoomCreationProblem         = "room_creation_problem"
	ErrTypeRuleInUse                   = "rule_in_use"
	ErrTypeRuleNotFound                = "rule_not_found"
	ErrTypeRuleNotInPolicy             = "rule_not_in_policy"
	ErrTypeServerShareBackupSettingOff = "server_share_backup_setting_disabled"
	ErrTypeUniqueViolation             = "unique_violation"
	ErrTypeUserHasAssociatedKeys       = "user_has_associated_keys"
	ErrTypeUserIDNotExists             = "user_id_not_exists"
	ErrTypeUserNameAlreadyExists       = "user_name_already_exists"
	ErrTypeYouHaveToBeAdmin            = "you_have_to_be_admin"
	ErrTypeAccessDenied                = "access_denied"
	ErrTypeNotFound                    = "not_found"
	ErrTypeInternalProblem             = "internal_problem"
)

const (
	statusBadRequest   = 400
	statusUnauthorized = 401
	statusNotFound     = 404
	statusInternal     = 500
	// statusBusy answers the concurrency limit (with err_type
	// internal_problem, the table having no busy type) and an unready /readyz.
	statusBusy = 503
)

// errTypeStatus is DESIGN §2's table: the only err_type values this API
// answers, each with its one HTTP status.
var errTypeStatus = map[string]int{
	ErrTypeAlreadyPerformedKeygen:      statusBadRequest,
	ErrTypeAPIKeyNotFound:              statusBadRequest,
	ErrTypeBadNAndTParams:              statusBadRequest,
	ErrTypeBadRequestParams:            statusBadRequest,
	ErrTypeBatchTooLarge:               statusBadRequest,
	ErrTypeExecutorResult:              statusBadRequest,
	ErrTypeKeyIDNotExists:              statusBadRequest,
	ErrTypeKeyOperationBeforeKeygen:    statusBadRequest,
	ErrTypePolicyInUseByKeys:           statusBadRequest,
	ErrTypePolicyInUseByUsers:          statusBadRequest,
	ErrTypePolicyNotFound:              statusBadRequest,
	ErrTypePolicyValidationFailed:      statusBadRequest,
	ErrTypeRoomCreationProblem:         statusBadRequest,
	ErrTypeRuleInUse:                   statusBadRequest,
	ErrTypeRuleNotFound:                statusBadRequest,
	ErrTypeRuleNotInPolicy:             statusBadRequest,
	ErrTypeServerShareBackupSettingOff: statusBadRequest,
	ErrTypeUniqueViolation:             statusBadRequest,
	ErrTypeUserHasAssociatedKeys:       statusBadRequest,
	ErrTypeUserIDNotExists:             statusBadRequest,
	ErrTypeUserNameAlreadyExists:       statusBadRequest,
	ErrTypeYouHaveToBeAdmin:            statusBadRequest,
	ErrTypeAccessDenied:                statusUnauthorized,
	ErrTypeNotFound:                    statusNotFound,
	ErrTypeInternalProblem:             statusInternal,
}

// StatusOf returns the HTTP status of an err_type, and false for a value
// outside the table.
func StatusOf(errType string) (int, bool) {
	s, ok := errTypeStatus[errType]
	return s, ok
}

// ErrTypes lists every err_type of the table (for documentation and tests).
func ErrTypes() []string {
	out := make([]string, 0, len(errTypeStatus))
	for t := range errTypeStatus {
		out = append(out, t)
	}
	return out
}

// Typed is implemented by errors of other packages (policy, store,
// ceremonies) that carry their own err_type. Their Error() text is the
// client-facing err_msg, so it must never contain secrets or internals.
type Typed interface {
	error
	ErrType() string
}

// Error is an API error with its err_type and client-facing message.
type Error struct {
	Type string
	Msg  string
}

func (e *Error) Error() string { return e.Type + ": " + e.Msg }

// ErrType implements Typed.
func (e *Error) ErrType() string { return e.Type }

// Errorf builds an *Error; the formatted message is shown to the client.
func Errorf(errType, format string, args ...any) *Error {
	return &Error{Type: errType, Msg: fmt.Sprintf(format, args...)}
}

// Sentinels that implementations of the backend interfaces may return
// (wrapped with %w) to select the err_type.
var (
	ErrKeyNotFound          = &Error{ErrTypeKeyIDNotExists, "key_id does not exist"}
	ErrKeyNotReady          = &Error{ErrTypeKeyOperationBeforeKeygen, "the key has no share yet: run an import first"}
	ErrKeyAlreadyImported   = &Error{ErrTypeAlreadyPerformedKeygen, "the key already holds a share"}
	ErrKeyPending           = &Error{ErrTypeAlreadyPerformedKeygen, "the key holds a pending share: recover it (POST /bip340/recover) or delete it"}
	ErrAccessDenied         = &Error{ErrTypeAccessDenied, "missing, unknown or revoked API key"}
	ErrUserHasAssociatedKey = &Error{ErrTypeUserHasAssociatedKeys, "the user still owns keys on this daemon"}
)

// Overload is DESIGN §2's one deviation from the error table: a request
// refused because a budget is full (the server's, or the caller's own share
// of it) is answered 503 internal_problem with Retry-After, and Msg (a fixed
// text naming the budget) is shown. Reason labels the rejection metric.
type Overload struct {
	Reason     string
	Msg        string
	RetryAfter time.Duration
}

func (o *Overload) Error() string { return "overload (" + o.Reason + "): " + o.Msg }

// retryAfter rounds up to whole seconds, at least one.
func (o *Overload) retryAfter() int {
	return max(1, int((o.RetryAfter+time.Second-1)/time.Second))
}

// ErrorMapping maps a foreign sentinel (matched with errors.Is) to an
// err_type and a fixed client-facing message.
type ErrorMapping struct {
	Target error
	Type   string
	Msg    string
}

// apiError is the envelope of every non-200 answer.
type apiError struct {
	ErrType string `json:"err_type"`
	ErrMsg  string `json:"err_msg"`
}

// classified is the outcome of mapping an error for the client.
type classified struct {
	status   int
	errType  string
	msg      string
	internal bool // the cause must be logged, never shown
	// retryAfter, in whole seconds, is sent as Retry-After (overload only).
	retryAfter int
}

// internalMsg is the only err_msg an internal_problem ever carries; the
// request id lets an operator find the logged cause.
const internalMsg = "internal error; see the daemon log for this request id"

// errorRules are the mappings beyond Typed errors a deployment adds (see
// Backends.Errors and Backends.Classify).
type errorRules struct {
	classify func(error) (errType, msg string, ok bool)
	mappings []ErrorMapping
}

// classify maps err to its envelope: *Error and other Typed errors first
// (innermost typed value wins over wrapping text, which may hold internal
// context), then the Classify hook, then the foreign sentinels, else
// internal_problem with the text hidden. An err_type outside the table, or
// internal_problem itself, is always answered as a hidden internal_problem.
func classify(err error, rules *errorRules) classified {
	hidden := classified{status: statusInternal, errType: ErrTypeInternalProblem, msg: internalMsg, internal: true}
	shown := func(typ, msg string) classified {
		status, ok := errTypeStatus[typ]
		if !ok || typ == ErrTypeInternalProblem {
			return hidden
		}
		return classified{status: status, errType: typ, msg: msg}
	}
	var o *Overload
	if errors.As(err, &o) {
		return classified{status: statusBusy, errType: ErrTypeInternalProblem, msg: o.Msg, retryAfter: o.retryAfter()}
	}
	var t Typed
	if errors.As(err, &t) {
		msg := t.Error()
		if e, isErr := t.(*Error); isErr {
			msg = e.Msg
		}
		return shown(t.ErrType(), msg)
	}
	if rules == nil {
		return hidden
	}
	if rules.classify != nil {
		if typ, msg, ok := rules.classify(err); ok {
			return shown(typ, msg)
		}
	}
	for _, m := range rules.mappings {
		if m.Target != nil && errors.Is(err, m.Target) {
			return shown(m.Type, m.Msg)
		}
	}
	return hidden
}

// envelope renders the JSON error body.
func envelope(errType, msg string) []byte {
	b, err := json.Marshal(apiError{ErrType: errType, ErrMsg: msg})
	if err != nil { // cannot happen for two strings; keep the contract anyway
		return []byte(`{"err_type":"internal_problem","err_msg":"` + internalMsg + `"}`)
	}
	return b
}

// badRequest is a bad_request_params error.
func badRequest(format string, args ...any) *Error {
	return Errorf(ErrTypeBadRequestParams, format, args...)
}

// badNT is a bad_n_and_t_params error.
func badNT(format string, args ...any) *Error {
	return Errorf(ErrTypeBadNAndTParams, format, args...)
}
