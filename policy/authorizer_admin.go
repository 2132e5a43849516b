package policy

import (
	"context"
	"time"
)

// The Authorizer's pass-throughs of PolicyAdmin: errors become *Error and
// every write drops the cached answers it could have changed, so this
// replica applies it at once (others within TTL).

// CreatePolicy see PolicyAdmin.
func (a *Authorizer) CreatePolicy(ctx context.Context, name string, ruleIDs []string) (Policy, error) {
	p, err := a.src.CreatePolicy(ctx, name, ruleIDs)
	return p, asError(err)
}

// ListPolicies see PolicyAdmin.
func (a *Authorizer) ListPolicies(ctx context.Context) ([]Policy, error) {
	ps, err := a.src.ListPolicies(ctx)
	return ps, asError(err)
}

// PolicyRecord see PolicyAdmin.
func (a *Authorizer) PolicyRecord(ctx context.Context, id string) (Policy, error) {
	p, err := a.src.PolicyRecord(ctx, id)
	return p, asError(err)
}

// DeletePolicy see PolicyAdmin.
func (a *Authorizer) DeletePolicy(ctx context.Context, id string) error {
	err := a.src.DeletePolicy(ctx, id)
	a.invalidatePolicy(id)
	return asError(err)
}

// AddPolicyRules see PolicyAdmin.
func (a *Authorizer) AddPolicyRules(ctx context.Context, id string, ruleIDs []string) error {
	err := a.src.AddPolicyRules(ctx, id, ruleIDs)
	a.invalidatePolicy(id)
	return asError(err)
}

// RemovePolicyRule see PolicyAdmin.
func (a *Authorizer) RemovePolicyRule(ctx context.Context, id, ruleID string) error {
	err := a.src.RemovePolicyRule(ctx, id, ruleID)
	a.invalidatePolicy(id)
	return asError(err)
}

// CreateRule see PolicyAdmin.
func (a *Authorizer) CreateRule(ctx context.Context, r Rule) (Rule, error) {
	out, err := a.src.CreateRule(ctx, r)
	return out, asError(err)
}

// ListRules see PolicyAdmin.
func (a *Authorizer) ListRules(ctx context.Context) ([]Rule, error) {
	rs, err := a.src.ListRules(ctx)
	return rs, asError(err)
}

// GetRule see PolicyAdmin.
func (a *Authorizer) GetRule(ctx context.Context, id string) (Rule, error) {
	r, err := a.src.GetRule(ctx, id)
	return r, asError(err)
}

// DeleteRule see PolicyAdmin.
func (a *Authorizer) DeleteRule(ctx context.Context, id string) error {
	return asError(a.src.DeleteRule(ctx, id))
}

// AssignPolicy see PolicyAdmin.
func (a *Authorizer) AssignPolicy(ctx context.Context, userID, policyID string) error {
	err := a.src.AssignPolicy(ctx, userID, policyID)
	a.invalidate(func(_ string, e *entry) bool { return e.p != nil && e.p.user.ID == userID })
	return asError(err)
}

// GenerateAPIKey see PolicyAdmin.
func (a *Authorizer) GenerateAPIKey(ctx context.Context, userID string) (string, error) {
	key, err := a.src.GenerateAPIKey(ctx, userID)
	if err != nil {
		return "", asError(err)
	}
	if id, _, ok := parseAPIKey(key); ok {
		a.invalidate(func(k string, _ *entry) bool { return k == id })
	}
	return key, nil
}

// invalidatePolicy drops cached keys of users holding policy id (or a
// policy that failed to load).
func (a *Authorizer) invalidatePolicy(id string) {
	a.invalidate(func(_ string, e *entry) bool {
		return e.p != nil && (e.p.user.Policy == id || e.p.policyErr != nil)
	})
}

// UserPolicy returns the current policy of a user, rules folded in, read
// from the source (not the cache: a sign's external rules must be the
// current ones). A user without a policy has none (nil, nil).
func (a *Authorizer) UserPolicy(ctx context.Context, userID string) (*Policy, error) {
	u, err := a.src.GetUser(ctx, userID)
	if err != nil {
		return nil, asError(err)
	}
	if u.Policy == "" {
		return nil, nil
	}
	p, err := a.src.GetPolicy(ctx, u.Policy)
	if err != nil {
		if isNotFound(err) {
			return nil, denied("policy %q of the user does not exist", u.Policy)
		}
		return nil, asError(err)
	}
	return &p, nil
}

// roomWindow is room_quota's accounting period.
const roomWindow = time.Minute

// takeRooms counts n rooms against the user's room_quota for the current
// window, atomically (check and count under one lock), and refuses when
// the quota would be exceeded. Per daemon: rooms live on its relay.
func (a *Authorizer) takeRooms(userID string, n, quota int) *Error {
	if n < 1 {
		n = 1
	}
	t := a.now()
	a.roomMu.Lock()
	defer a.roomMu.Unlock()
	if a.rooms == nil {
		a.rooms = map[string][]time.Time{}
	}
	recent := a.rooms[userID][:0]
	for _, at := range a.rooms[userID] {
		if t.Sub(at) < roomWindow {
			recent = append(recent, at)
		}
	}
	if len(recent)+n > quota {
		a.rooms[userID] = recent
		return denied("room quota of %d rooms per minute reached", quota)
	}
	for range n {
		recent = append(recent, t)
	}
	a.rooms[userID] = recent
	return nil
}

// BackupExport returns what the user's current policy allows for
// /bip340/backup/export-key-share (a rule's allow_backup_export), or nil
// when it allows no export (server_share_backup_setting_disabled).
func (a *Authorizer) BackupExport(ctx context.Context, userID string) (*BackupExport, error) {
	p, err := a.UserPolicy(ctx, userID)
	if err != nil || p == nil {
		return nil, err
	}
	return p.BackupExport, nil
}
