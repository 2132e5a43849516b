package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// AuthorizerConfig tunes the lookup cache. Values are used as given (0 is a
// real value, not "default"); start from DefaultAuthorizerConfig.
type AuthorizerConfig struct {
	// TTL bounds how long a validated API key (with its user and policy)
	// is answered from memory: a revocation or policy change made on
	// another replica takes effect within TTL. Must be > 0.
	TTL time.Duration
	// NegativeTTL is how long an unknown lookup id is remembered as
	// unknown. Must be > 0.
	NegativeTTL time.Duration
	// StaleWindow is how long after its last successful validation a key
	// keeps working while the source is unavailable (network error,
	// timeout, 5xx, sealed). 0 disables stale serving: the daemon fails
	// closed as soon as TTL expires during an outage.
	StaleWindow time.Duration
	// RetryAfter is how long, after the source failed as unavailable,
	// lookups answer from the cache (or fail) without contacting it, so an
	// outage costs one timeout per RetryAfter, not one per request.
	RetryAfter time.Duration
	// MaxEntries caps the cache; past it, negative entries are evicted
	// first. Must be > 0.
	MaxEntries int
	// Logger receives source outage and recovery lines (nil: discard).
	Logger *slog.Logger
}

// DefaultAuthorizerConfig: TTL 15 s, negative TTL 5 s, stale window 5 min,
// retry after 2 s, 100 000 entries.
func DefaultAuthorizerConfig() AuthorizerConfig {
	return AuthorizerConfig{
		TTL:         15 * time.Second,
		NegativeTTL: 5 * time.Second,
		StaleWindow: 5 * time.Minute,
		RetryAfter:  2 * time.Second,
		MaxEntries:  100_000,
	}
}

// Authorizer authenticates API keys and decides operations, caching the
// source's answers. It is safe for concurrent use.
type Authorizer struct {
	src Source
	cfg AuthorizerConfig
	log *slog.Logger
	now func() time.Time // wall clock; tests substitute a fake one

	mu       sync.RWMutex
	entries  map[string]*entry
	flights  map[string]*flight
	epoch    uint64    // bumped by invalidations, so an older flight cannot re-insert
	down     bool      // the last fetch found the source unavailable
	retryAt  time.Time // while down and before retryAt, the source is not contacted
	downErr  error     // the failure that marked the source down
	loggedAt time.Time // last fail-closed log line (rate limit)

	hits, fetches, stale, failures atomic.Uint64

	roomMu sync.Mutex
	rooms  map[string][]time.Time // user id → room creations within roomWindow
}

// principal is a resolved API key: immutable once cached.
type principal struct {
	digest    [32]byte
	revoked   bool
	user      User
	policy    *Policy // nil when the user has none
	policyErr *Error  // the user names a policy that is missing or invalid
}

type entry struct {
	p       *principal // nil: unknown key (negative entry)
	fetched time.Time  // last successful validation against the source
	expires time.Time
}

type flight struct {
	done chan struct{}
	p    *principal
	err  error
}

// NewAuthorizer wraps src with the cache described by cfg.
func NewAuthorizer(src Source, cfg AuthorizerConfig) (*Authorizer, error) {
	if src == nil {
		return nil, fmt.Errorf("%w: nil source", ErrConfig)
	}
	if cfg.TTL <= 0 || cfg.NegativeTTL <= 0 || cfg.StaleWindow < 0 || cfg.RetryAfter < 0 || cfg.MaxEntries <= 0 {
		return nil, fmt.Errorf("%w: cache: ttl and negative ttl must be > 0, stale window and retry-after ≥ 0, max entries > 0", ErrConfig)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Authorizer{
		src: src, cfg: cfg, log: log, now: time.Now,
		entries: make(map[string]*entry),
		flights: make(map[string]*flight),
	}, nil
}

// Source returns the wrapped source.
func (a *Authorizer) Source() Source { return a.src }

// Ping checks the source (for /readyz).
func (a *Authorizer) Ping(ctx context.Context) error { return a.src.Ping(ctx) }

// Authorize authenticates apiKey and decides op with params. It returns the
// user (shared with the cache: read only) or an *Error:
//
//   - access_denied: key missing, malformed, unknown, wrong secret, revoked,
//     or its user deleted (cause: ErrKeyMalformed, ErrKeyUnknown,
//     ErrKeyMismatch, ErrKeyRevoked);
//   - you_have_to_be_admin: an admin operation with a non-admin key;
//   - policy_validation_failed: the operation, N, threshold, relay_address
//     or key quota is outside the user's policy, or the user has no valid
//     policy (deny-all);
//   - bad_n_and_t_params / bad_request_params: N or threshold missing for an
//     operation that needs them, relay_address on one that takes none;
//   - internal_problem: the source is unavailable beyond the stale window
//     (cause ErrSourceUnavailable), refused the daemon's token
//     (ErrSourceDenied) or holds an invalid record (ErrSourceInvalid). An
//     unknown key is never accepted while the source is down.
//
// The secret part is checked for well-formedness in constant time, hashed
// with SHA-256 and compared to the stored digest in constant time; it
// appears in no error.
func (a *Authorizer) Authorize(ctx context.Context, apiKey string, op Operation, params Params) (*User, error) {
	u, _, err := a.Grant(ctx, apiKey, op, params)
	return u, err
}

// Grant is Authorize that also returns the policy the decision was made
// under (nil for admin operations), from the same cached lookup: callers
// that need the policy's numbers or external rules read them here instead
// of asking the source again on a hot path. Policy edits invalidate it.
func (a *Authorizer) Grant(ctx context.Context, apiKey string, op Operation, params Params) (*User, *Policy, error) {
	rule, ok := opRules[op]
	if !ok {
		return nil, nil, &Error{Type: ErrTypeInternalProblem, Msg: "unknown operation", Err: fmt.Errorf("policy: operation %q", op)}
	}
	lookupID, secret, ok := parseAPIKey(apiKey)
	if !ok {
		return nil, nil, accessDenied(ErrKeyMalformed)
	}
	p, err := a.principal(ctx, lookupID)
	if err != nil {
		return nil, nil, err
	}
	if p == nil {
		return nil, nil, accessDenied(ErrKeyUnknown)
	}
	d := secretDigest(secret)
	if !digestEqual(&d, &p.digest) {
		return nil, nil, accessDenied(ErrKeyMismatch)
	}
	if p.revoked {
		return nil, nil, accessDenied(ErrKeyRevoked)
	}
	if rule.admin {
		if !p.user.Admin {
			return nil, nil, &Error{Type: ErrTypeAdminRequired, Msg: "this operation needs an admin API key", Err: ErrOperationDenied}
		}
		return &p.user, nil, nil
	}
	if p.policyErr != nil {
		return nil, nil, p.policyErr
	}
	if p.policy == nil {
		return nil, nil, denied("the user has no policy, so %s is denied", op)
	}
	if e := p.policy.check(op, rule, params); e != nil {
		return nil, nil, e
	}
	if op == OpCreateRoom && p.policy.RoomQuota > 0 {
		if e := a.takeRooms(p.user.ID, params.Rooms, p.policy.RoomQuota); e != nil {
			return nil, nil, e
		}
	}
	return &p.user, p.policy, nil
}

// principal returns the cached resolution of lookupID, fetching it (once
// for all concurrent callers) when absent or expired.
func (a *Authorizer) principal(ctx context.Context, lookupID string) (*principal, error) {
	t := a.now()
	a.mu.RLock()
	e := a.entries[lookupID]
	a.mu.RUnlock()
	if e != nil && t.Before(e.expires) {
		a.hits.Add(1)
		return e.p, nil
	}

	a.mu.Lock()
	if e := a.entries[lookupID]; e != nil && t.Before(e.expires) {
		a.mu.Unlock()
		a.hits.Add(1)
		return e.p, nil
	}
	f := a.flights[lookupID]
	if f == nil {
		if a.down && t.Before(a.retryAt) {
			p, err := a.staleLocked(lookupID, t, a.downErr)
			a.mu.Unlock()
			return p, err
		}
		f = &flight{done: make(chan struct{})}
		a.flights[lookupID] = f
		go a.fetch(context.WithoutCancel(ctx), lookupID, f, a.epoch)
	}
	a.mu.Unlock()

	select {
	case <-f.done:
		return f.p, f.err
	case <-ctx.Done():
		return nil, &Error{Type: ErrTypeInternalProblem, Msg: "request cancelled during key lookup", Err: ctx.Err()}
	}
}

// fetch resolves lookupID from the source and settles the flight.
func (a *Authorizer) fetch(ctx context.Context, lookupID string, f *flight, epoch uint64) {
	a.fetches.Add(1)
	p, err := a.resolve(ctx, lookupID)
	t := a.now()

	a.mu.Lock()
	delete(a.flights, lookupID)
	switch {
	case err == nil:
		if a.down {
			a.log.Info("policy source available again", "source", a.src.Name())
			a.down, a.downErr = false, nil
		}
		ttl := a.cfg.TTL
		if p == nil {
			ttl = a.cfg.NegativeTTL
		}
		if epoch == a.epoch {
			a.storeLocked(lookupID, &entry{p: p, fetched: t, expires: t.Add(ttl)})
		}
		f.p = p
	case errors.Is(err, ErrSourceUnavailable):
		if !a.down {
			a.log.Warn("policy source unavailable; recently validated keys keep working within the stale window",
				"source", a.src.Name(), "stale_window", a.cfg.StaleWindow, "err", err)
		}
		a.down, a.retryAt, a.downErr = true, t.Add(a.cfg.RetryAfter), err
		f.p, f.err = a.staleLocked(lookupID, t, err)
	default:
		a.failures.Add(1)
		if t.Sub(a.loggedAt) >= 10*time.Second {
			a.loggedAt = t
			a.log.Error("policy source failed; failing closed", "source", a.src.Name(), "lookup_id", lookupID, "err", err)
		}
		f.err = internalError(err)
	}
	a.mu.Unlock()
	close(f.done)
}

// staleLocked answers lookupID while the source is unavailable: a key
// validated within StaleWindow keeps working; anything else (unknown keys
// included) fails closed.
func (a *Authorizer) staleLocked(lookupID string, t time.Time, cause error) (*principal, error) {
	if e := a.entries[lookupID]; e != nil && e.p != nil && t.Sub(e.fetched) <= a.cfg.StaleWindow {
		a.stale.Add(1)
		return e.p, nil
	}
	a.failures.Add(1)
	if cause == nil {
		cause = ErrSourceUnavailable
	}
	return nil, internalError(cause)
}

// resolve reads the API key, its user and the user's policy. A missing key
// or user resolves to nil (unknown key). A missing or invalid policy is
// recorded as a denial of every policy-governed operation, not as a failure
// of the key.
func (a *Authorizer) resolve(ctx context.Context, lookupID string) (*principal, error) {
	rec, err := a.src.LookupAPIKey(ctx, lookupID)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	d, err := rec.digest()
	if err != nil {
		return nil, err
	}
	p := &principal{digest: d, revoked: rec.Revoked}
	u, err := a.src.GetUser(ctx, rec.UserID)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p.user = u
	if rec.Revoked || u.Policy == "" {
		return p, nil
	}
	pol, err := a.src.GetPolicy(ctx, u.Policy)
	switch {
	case err == nil:
		p.policy = &pol
	case isNotFound(err):
		p.policyErr = denied("policy %q of the user does not exist", u.Policy)
	case errors.Is(err, ErrSourceInvalid):
		a.log.Error("invalid policy record; its users are denied", "policy", u.Policy, "err", err)
		p.policyErr = denied("policy %q of the user is invalid", u.Policy)
	default:
		return nil, err
	}
	return p, nil
}

// storeLocked inserts e, evicting expired entries, then negative ones, then
// arbitrary ones when the cache is full.
func (a *Authorizer) storeLocked(lookupID string, e *entry) {
	if _, ok := a.entries[lookupID]; !ok && len(a.entries) >= a.cfg.MaxEntries {
		t := e.fetched
		for k, old := range a.entries {
			if t.After(old.expires) && (old.p == nil || t.Sub(old.fetched) > a.cfg.StaleWindow) {
				delete(a.entries, k)
			}
		}
		for k, old := range a.entries {
			if len(a.entries) < a.cfg.MaxEntries {
				break
			}
			if old.p == nil {
				delete(a.entries, k)
			}
		}
		for k := range a.entries {
			if len(a.entries) < a.cfg.MaxEntries {
				break
			}
			delete(a.entries, k)
		}
	}
	a.entries[lookupID] = e
}

// invalidate drops cached answers for the given lookup ids (all when
// match is nil) and stops in-flight lookups from caching their answers.
func (a *Authorizer) invalidate(match func(id string, e *entry) bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.epoch++
	for k, e := range a.entries {
		if match == nil || match(k, e) {
			delete(a.entries, k)
		}
	}
}

// CreateUser creates a user on the source (see Source.CreateUser). Errors
// are *Error.
func (a *Authorizer) CreateUser(ctx context.Context, name string, admin bool, policyName string) (apiKey, userID string, err error) {
	apiKey, userID, err = a.src.CreateUser(ctx, name, admin, policyName)
	if err != nil {
		return "", "", asError(err)
	}
	// A negative entry may exist for the new lookup id only by a 2^-64
	// chance, but dropping it is cheap and makes the key usable at once.
	if id, _, ok := parseAPIKey(apiKey); ok {
		a.invalidate(func(k string, _ *entry) bool { return k == id })
	}
	return apiKey, userID, nil
}

// RevokeAPIKey revokes the key on the source and drops it from this cache
// at once; other replicas notice within TTL. Errors are *Error.
func (a *Authorizer) RevokeAPIKey(ctx context.Context, userID, apiKey string) error {
	if err := a.src.RevokeAPIKey(ctx, userID, apiKey); err != nil {
		return asError(err)
	}
	id := apiKey // revoked by its lookup id alone
	if !validLookupID(id) {
		id, _, _ = parseAPIKey(apiKey)
	}
	a.invalidate(func(k string, _ *entry) bool { return k == id })
	return nil
}

// DeleteUser deletes the user on the source and drops its keys from this
// cache. The daemon checks user_has_associated_keys before calling it.
// Errors are *Error.
func (a *Authorizer) DeleteUser(ctx context.Context, userID string) error {
	if err := a.src.DeleteUser(ctx, userID); err != nil {
		return asError(err)
	}
	a.invalidate(func(_ string, e *entry) bool { return e.p != nil && e.p.user.ID == userID })
	return nil
}

// ListUsers lists users from the source. Errors are *Error.
func (a *Authorizer) ListUsers(ctx context.Context) ([]User, error) {
	us, err := a.src.ListUsers(ctx)
	return us, asError(err)
}

// Stats are cumulative cache counters (for /metrics).
type Stats struct {
	Hits     uint64 // answered from a fresh cache entry
	Fetches  uint64 // lookups sent to the source (coalesced)
	Stale    uint64 // answered from a stale entry while the source was down
	Failures uint64 // lookups failed closed (source down beyond the window, denied, invalid)
}

// Stats returns the cache counters.
func (a *Authorizer) Stats() Stats {
	return Stats{Hits: a.hits.Load(), Fetches: a.fetches.Load(), Stale: a.stale.Load(), Failures: a.failures.Load()}
}
