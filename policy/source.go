package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Source stores users, API keys and policies. VaultSource and FileSource
// implement it with the same semantics; the contract tests run against both.
//
// Lookups return ErrNotFound (wrapped) for an absent record. Admin writes
// return *Error for the outcomes of DESIGN §2 (user_name_already_exists,
// user_id_not_exists, api_key_not_found, policy_not_found,
// bad_request_params) and wrapped ErrSourceUnavailable / ErrSourceDenied /
// ErrSourceInvalid for infrastructure failures.
type Source interface {
	// Name says which source this is, for the daemon's start-up log line.
	Name() string
	// Ping checks that the source is usable (for /readyz).
	Ping(ctx context.Context) error

	// LookupAPIKey returns the public record of an API key by lookup id.
	LookupAPIKey(ctx context.Context, lookupID string) (APIKeyRecord, error)
	// GetUser returns a user by id.
	GetUser(ctx context.Context, userID string) (User, error)
	// GetPolicy returns a policy by name.
	GetPolicy(ctx context.Context, name string) (Policy, error)
	// PutPolicy creates or replaces a policy after validating it. The
	// daemon's least-privilege Vault policy does not allow this: operators
	// manage policies.
	PutPolicy(ctx context.Context, p Policy) error

	// CreateUser adds a user with one fresh API key. The key is returned
	// once and only its digest is stored.
	CreateUser(ctx context.Context, name string, admin bool, policyName string) (apiKey, userID string, err error)
	// RevokeAPIKey marks the user's API key revoked (idempotent); apiKey
	// is the full key or its lookup id.
	RevokeAPIKey(ctx context.Context, userID, apiKey string) error
	// DeleteUser removes a user and its API keys. The caller (the daemon)
	// first checks that the user owns no keys (user_has_associated_keys).
	DeleteUser(ctx context.Context, userID string) error
	// ListUsers returns every user, ordered by creation time then id.
	ListUsers(ctx context.Context) ([]User, error)

	// PolicyAdmin: policies, rules, assignment and further API keys.
	PolicyAdmin

	// Close releases the source (stops token renewal for Vault).
	Close() error

	// createFirstAdmin implements BootstrapAdmin atomically for the source.
	createFirstAdmin(ctx context.Context, name string) (apiKey, userID string, err error)
}

// BootstrapAdmin creates the first admin user and returns its API key (the
// admin token), once: with an admin present it fails with ErrAdminExists.
// It is safe against concurrent bootstraps (the file source holds its lock;
// the Vault source claims <prefix>/bootstrap with a check-and-set write).
// Once every admin has been deleted, it works again.
func BootstrapAdmin(ctx context.Context, src Source, name string) (apiKey, userID string, err error) {
	apiKey, userID, err = src.createFirstAdmin(ctx, name)
	if err != nil {
		return "", "", fmt.Errorf("policy: bootstrap admin: %w", err)
	}
	return apiKey, userID, nil
}

func hasAdmin(us []User) bool {
	return slices.ContainsFunc(us, func(u User) bool { return u.Admin })
}

func sortUsers(us []User) {
	slices.SortFunc(us, func(a, b User) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// checkCreateUser validates CreateUser's inputs; name "" is a user
// without a name (Vertex's name is optional).
func checkCreateUser(name, policyName string) error {
	if name != "" && !ValidUserName(name) {
		return typed(ErrTypeBadRequestParams, fmt.Sprintf("user name must be 1-%d bytes of printable UTF-8", MaxUserName))
	}
	if policyName != "" && !validName(policyName) {
		return typed(ErrTypePolicyNotFound, "policy not found")
	}
	return nil
}

// parseRevoke validates RevokeAPIKey's inputs: the full API key, or its
// public lookup id alone (an admin revoking a stolen key never saw its
// secret). It returns the lookup id and, for a full key, the digest of the
// presented secret (constant-time alphabet check and SHA-256, as in
// Authorize; the secret is in no error); nil digest for a lookup id.
func parseRevoke(userID, apiKey string) (string, *[32]byte, error) {
	if !validUserID(userID) {
		return "", nil, typed(ErrTypeUserIDNotExists, "user_id does not exist")
	}
	if validLookupID(apiKey) {
		return apiKey, nil, nil
	}
	lookupID, secret, ok := parseAPIKey(apiKey)
	if !ok {
		return "", nil, typed(ErrTypeAPIKeyNotFound, "api key not found")
	}
	d := secretDigest(secret)
	return lookupID, &d, nil
}

// matchRevoke decides whether rec is userID's key and, when a secret was
// presented (d non-nil), whether its digest matches (constant time).
func matchRevoke(rec *APIKeyRecord, userID string, d *[32]byte) error {
	stored, err := rec.digest()
	if err != nil {
		return err
	}
	if rec.UserID != userID || (d != nil && !digestEqual(&stored, d)) {
		return typed(ErrTypeAPIKeyNotFound, "api key not found")
	}
	return nil
}

// now is the wall clock for records, truncated to microseconds so records
// round-trip through JSON and compare equal.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

var errUserNotFound = typed(ErrTypeUserIDNotExists, "user_id does not exist")

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
