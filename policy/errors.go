package policy

import (
	"errors"
	"fmt"
	"net/http"
)

// The err_type values this package produces (DESIGN §2).
const (
	ErrTypeAccessDenied           = "access_denied"
	ErrTypeAdminRequired          = "you_have_to_be_admin"
	ErrTypePolicyValidationFailed = "policy_validation_failed"
	ErrTypePolicyNotFound         = "policy_not_found"
	ErrTypeAPIKeyNotFound         = "api_key_not_found"
	ErrTypeUserIDNotExists        = "user_id_not_exists"
	ErrTypeUserNameAlreadyExists  = "user_name_already_exists"
	ErrTypeUserHasAssociatedKeys  = "user_has_associated_keys"
	ErrTypeBadRequestParams       = "bad_request_params"
	ErrTypeBadNAndTParams         = "bad_n_and_t_params"
	ErrTypeInternalProblem        = "internal_problem"
	ErrTypeRuleNotFound           = "rule_not_found"
	ErrTypeRuleInUse              = "rule_in_use"
	ErrTypeRuleNotInPolicy        = "rule_not_in_policy"
	ErrTypePolicyInUseByUsers     = "policy_in_use_by_users"
	ErrTypePolicyInUseByKeys      = "policy_in_use_by_keys"
	ErrTypeUniqueViolation        = "unique_violation"
)

// Error is a decision or failure with its err_type. Error() is the
// client-facing err_msg (never secret material, never internals for types
// other than internal_problem); the cause, for logs and errors.Is, is
// reachable through Unwrap.
type Error struct {
	Type string
	Msg  string
	Err  error
}

// Error returns the client-facing message. For internal_problem it appends
// the cause, which the daemon logs and never shows to a client.
func (e *Error) Error() string {
	if e.Type == ErrTypeInternalProblem && e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

// ErrType returns the err_type (daemon.Typed).
func (e *Error) ErrType() string { return e.Type }

// Unwrap exposes the cause (e.g. ErrKeyRevoked, ErrSourceUnavailable).
func (e *Error) Unwrap() error { return e.Err }

// HTTPStatus maps the err_type to the status of DESIGN §2's table:
// access_denied 401, internal_problem 500, every other type 400.
func (e *Error) HTTPStatus() int {
	switch e.Type {
	case ErrTypeAccessDenied:
		return http.StatusUnauthorized
	case ErrTypeInternalProblem:
		return http.StatusInternalServerError
	default:
		return http.StatusBadRequest
	}
}

// Causes wrapped by *Error, for logs, audit lines and errors.Is. None of
// their texts carries secret material.
var (
	// ErrKeyMalformed: the API key is missing or not "<lookup_id>.<secret>".
	ErrKeyMalformed = errors.New("policy: malformed api key")
	// ErrKeyUnknown: no API key with this lookup id (or its user is gone).
	ErrKeyUnknown = errors.New("policy: unknown api key")
	// ErrKeyMismatch: the lookup id exists but the secret does not match.
	ErrKeyMismatch = errors.New("policy: api key secret mismatch")
	// ErrKeyRevoked: the API key was revoked.
	ErrKeyRevoked = errors.New("policy: api key revoked")
	// ErrOperationDenied: the user's policy does not allow the operation or
	// its parameters, or the user has no (valid) policy.
	ErrOperationDenied = errors.New("policy: operation denied by policy")

	// ErrNotFound is what Source lookups return for an absent record.
	ErrNotFound = errors.New("policy: record not found")
	// ErrSourceUnavailable: the source could not be reached or answered
	// with a transient failure (network error, timeout, 5xx, sealed,
	// 429). Recently validated keys may be served from the cache for the
	// configured stale window.
	ErrSourceUnavailable = errors.New("policy: source unavailable")
	// ErrSourceDenied: Vault refused the daemon's token on a path (403).
	// This is a configuration fault, so the Authorizer fails closed at once.
	ErrSourceDenied = errors.New("policy: source denied access")
	// ErrSourceInvalid: the source returned a record that does not decode
	// or validate; the Authorizer fails closed.
	ErrSourceInvalid = errors.New("policy: invalid record in source")
	// ErrAdminExists: BootstrapAdmin found an admin user already.
	ErrAdminExists = errors.New("policy: an admin user already exists; bootstrap runs only once")
	// ErrConfig: a configuration value is missing or invalid.
	ErrConfig = errors.New("policy: invalid configuration")
)

// accessDenied is the one client-facing answer for every authentication
// failure, so a caller cannot tell an unknown key from a revoked one.
func accessDenied(cause error) *Error {
	return &Error{Type: ErrTypeAccessDenied, Msg: "missing, unknown or revoked API key", Err: cause}
}

func denied(format string, args ...any) *Error {
	return &Error{Type: ErrTypePolicyValidationFailed, Msg: fmt.Sprintf(format, args...), Err: ErrOperationDenied}
}

func typed(typ, msg string) *Error { return &Error{Type: typ, Msg: msg} }

// internalError wraps a source failure as internal_problem, with a message
// naming the class of failure.
func internalError(err error) *Error {
	msg := "policy source error"
	switch {
	case errors.Is(err, ErrSourceUnavailable):
		msg = "policy source unavailable"
	case errors.Is(err, ErrSourceDenied):
		msg = "policy source denied access"
	case errors.Is(err, ErrSourceInvalid):
		msg = "policy source holds an invalid record"
	}
	return &Error{Type: ErrTypeInternalProblem, Msg: msg, Err: err}
}

// asError returns err as an *Error: typed errors unchanged, anything else
// as internal_problem.
func asError(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return internalError(err)
}
