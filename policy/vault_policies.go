package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/quorumd/quorumd/internal/uuid"
)

// Policy and rule administration on Vault (PolicyAdmin). Names are claimed
// in policynames/ and rulenames/ with check-and-set writes, as user names
// are; records are changed with check-and-set writes, re-read and retried
// on a conflict. Vault has no multi-key transactions, so the pairs that
// must exclude each other (add-rule / delete-rule, assign / delete-policy)
// each write, then look again and undo their own write if the other side
// slipped in: of two racing calls at least one sees the other.

// getRule reads rules/<id>.
func (v *VaultSource) getRule(ctx context.Context, id string) (Rule, int, error) {
	if !validUserID(id) {
		return Rule{}, 0, ErrNotFound
	}
	var r Rule
	ver, err := v.get(ctx, "rules/"+id, &r)
	if err != nil {
		return Rule{}, 0, err
	}
	r.ID = id
	if err := r.Validate(); err != nil {
		return Rule{}, 0, fmt.Errorf("%w: rule %s: %w", ErrSourceInvalid, id, err)
	}
	return r, ver, nil
}

// GetRule implements PolicyAdmin.
func (v *VaultSource) GetRule(ctx context.Context, id string) (Rule, error) {
	r, _, err := v.getRule(ctx, id)
	if isNotFound(err) {
		return Rule{}, errRuleNotFound
	}
	return r, err
}

// policyRecord reads policies/<id> as stored.
func (v *VaultSource) policyRecord(ctx context.Context, id string) (Policy, int, error) {
	if !validName(id) {
		return Policy{}, 0, ErrNotFound
	}
	var p Policy
	ver, err := v.get(ctx, "policies/"+id, &p)
	if err != nil {
		return Policy{}, 0, err
	}
	p.Name = id
	if err := p.Validate(); err != nil {
		return Policy{}, 0, fmt.Errorf("%w: %w", ErrSourceInvalid, err)
	}
	return p, ver, nil
}

// PolicyRecord implements PolicyAdmin.
func (v *VaultSource) PolicyRecord(ctx context.Context, id string) (Policy, error) {
	p, _, err := v.policyRecord(ctx, id)
	if isNotFound(err) {
		return Policy{}, errPolicyNotFound
	}
	return p, err
}

// CreatePolicy implements PolicyAdmin.
func (v *VaultSource) CreatePolicy(ctx context.Context, name string, ruleIDs []string) (Policy, error) {
	ids, err := checkNewPolicy(name, ruleIDs)
	if err != nil {
		return Policy{}, err
	}
	for _, id := range ids {
		if _, err := v.GetRule(ctx, id); err != nil {
			return Policy{}, err
		}
	}
	if validName(name) { // a flat policy may already be keyed by this name
		if _, _, err := v.policyRecord(ctx, name); err == nil {
			return Policy{}, errUnique("policy")
		} else if !isNotFound(err) && !errors.Is(err, ErrSourceInvalid) {
			return Policy{}, err
		}
	}
	id := uuid.New()
	if err := v.claim(ctx, "policynames/"+nameKey(name), id, "policy"); err != nil {
		return Policy{}, err
	}
	t := now()
	p := Policy{Name: id, DisplayName: name, Rules: ids, CreatedAt: &t}
	if _, err := v.put(ctx, "policies/"+id, &p, 0); err != nil {
		return Policy{}, fmt.Errorf("create policy %s: %w", id, err)
	}
	return p, nil
}

// claim takes names/<key>-style index entries for policies and rules: a
// check-and-set create, or a takeover when the entry, older than
// takeoverAge, points at a record that no longer exists (an interrupted
// create or delete).
func (v *VaultSource) claim(ctx context.Context, rel, id, what string) error {
	rec := nameRecord{UserID: id}
	_, err := v.put(ctx, rel, &rec, 0)
	if !errors.Is(err, errCAS) {
		return err
	}
	var cur nameRecord
	ver, created, err := v.getMeta(ctx, rel, &cur)
	if err != nil {
		return err
	}
	if time.Since(created) < v.takeoverAge {
		return errUnique(what) // the record may still be being written
	}
	coll := "policies/"
	if what == "rule" {
		coll = "rules/"
	}
	var probe map[string]any
	if _, err := v.get(ctx, coll+cur.UserID, &probe); err == nil || !isNotFound(err) {
		if err != nil {
			return err
		}
		return errUnique(what)
	}
	if _, err := v.put(ctx, rel, &rec, ver); errors.Is(err, errCAS) {
		return errUnique(what)
	} else if err != nil {
		return err
	}
	return nil
}

// ListPolicies implements PolicyAdmin.
func (v *VaultSource) ListPolicies(ctx context.Context) ([]Policy, error) {
	ids, err := v.list(ctx, "policies")
	if err != nil {
		return nil, err
	}
	out := make([]Policy, 0, len(ids))
	for _, id := range ids {
		p, _, err := v.policyRecord(ctx, id)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	sortPolicies(out)
	return out, nil
}

// DeletePolicy implements PolicyAdmin.
func (v *VaultSource) DeletePolicy(ctx context.Context, id string) error {
	p, _, err := v.policyRecord(ctx, id)
	if isNotFound(err) {
		return errPolicyNotFound
	}
	if err != nil {
		return err
	}
	users, err := v.ListUsers(ctx)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(users, func(u User) bool { return u.Policy == id }) {
		return errPolicyInUse
	}
	if err := v.deleteAll(ctx, "policies/"+id); err != nil {
		return err
	}
	// An AssignPolicy may have run between the check and the delete: look
	// again and, if a user now holds the policy, restore it.
	if users, err = v.ListUsers(ctx); err != nil {
		return err
	}
	if slices.ContainsFunc(users, func(u User) bool { return u.Policy == id }) {
		if _, err := v.put(ctx, "policies/"+id, &p, 0); err != nil {
			return fmt.Errorf("policy %s: restoring after a concurrent assign: %w", id, err)
		}
		return errPolicyInUse
	}
	if p.DisplayName != "" {
		var n nameRecord
		if _, err := v.get(ctx, "policynames/"+nameKey(p.DisplayName), &n); err == nil && n.UserID == id {
			if err := v.deleteAll(ctx, "policynames/"+nameKey(p.DisplayName)); err != nil {
				return fmt.Errorf("policy %s deleted, name index left: %w", id, err)
			}
		}
	}
	return nil
}

// updatePolicy applies fn to policies/<id> with check-and-set, retrying
// when the record changed meanwhile.
func (v *VaultSource) updatePolicy(ctx context.Context, id string, fn func(*Policy) error) error {
	for attempt := 0; ; attempt++ {
		p, ver, err := v.policyRecord(ctx, id)
		if isNotFound(err) {
			return errPolicyNotFound
		}
		if err != nil {
			return err
		}
		if err := fn(&p); err != nil {
			return err
		}
		_, err = v.put(ctx, "policies/"+id, &p, ver)
		if errors.Is(err, errCAS) && attempt < 3 {
			continue
		}
		return err
	}
}

// AddPolicyRules implements PolicyAdmin.
func (v *VaultSource) AddPolicyRules(ctx context.Context, id string, ruleIDs []string) error {
	ids, err := checkRuleIDs(ruleIDs)
	if err != nil {
		return err
	}
	if _, _, err := v.policyRecord(ctx, id); isNotFound(err) {
		return errPolicyNotFound
	} else if err != nil {
		return err
	}
	for _, r := range ids {
		if _, err := v.GetRule(ctx, r); err != nil {
			return err
		}
	}
	if err := v.updatePolicy(ctx, id, func(p *Policy) error { return addRules(p, ids) }); err != nil {
		return err
	}
	// A DeleteRule may have run between the check above and the write:
	// look again, and take back what vanished (DeleteRule looks again
	// after its delete too, so one of the two always sees the other).
	var gone []string
	for _, r := range ids {
		if _, _, err := v.getRule(ctx, r); isNotFound(err) {
			gone = append(gone, r)
		} else if err != nil {
			return err
		}
	}
	if len(gone) == 0 {
		return nil
	}
	if err := v.updatePolicy(ctx, id, func(p *Policy) error {
		p.Rules = slices.DeleteFunc(p.Rules, func(r string) bool { return slices.Contains(gone, r) })
		return nil
	}); err != nil {
		return err
	}
	return errRuleNotFound
}

func addRules(p *Policy, ids []string) error {
	if p.inline() {
		return errFlatPolicy
	}
	for _, r := range ids {
		if !slices.Contains(p.Rules, r) {
			p.Rules = append(p.Rules, r)
		}
	}
	return nil
}

func removeRule(p *Policy, ruleID string) error {
	i := slices.Index(p.Rules, ruleID)
	if i < 0 {
		return errRuleNotInPolicy
	}
	p.Rules = slices.Delete(p.Rules, i, i+1)
	return nil
}

// RemovePolicyRule implements PolicyAdmin.
func (v *VaultSource) RemovePolicyRule(ctx context.Context, id, ruleID string) error {
	if _, err := v.GetRule(ctx, ruleID); err != nil {
		return err
	}
	return v.updatePolicy(ctx, id, func(p *Policy) error { return removeRule(p, ruleID) })
}

// CreateRule implements PolicyAdmin.
func (v *VaultSource) CreateRule(ctx context.Context, r Rule) (Rule, error) {
	if err := checkNewRule(&r); err != nil {
		return Rule{}, err
	}
	r.ID, r.CreatedAt = uuid.New(), now()
	if err := v.claim(ctx, "rulenames/"+nameKey(r.Name), r.ID, "rule"); err != nil {
		return Rule{}, err
	}
	if _, err := v.put(ctx, "rules/"+r.ID, &r, 0); err != nil {
		return Rule{}, fmt.Errorf("create rule %s: %w", r.ID, err)
	}
	return r, nil
}

// ListRules implements PolicyAdmin.
func (v *VaultSource) ListRules(ctx context.Context) ([]Rule, error) {
	ids, err := v.list(ctx, "rules")
	if err != nil {
		return nil, err
	}
	out := make([]Rule, 0, len(ids))
	for _, id := range ids {
		r, _, err := v.getRule(ctx, id)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sortRules(out)
	return out, nil
}

// DeleteRule implements PolicyAdmin.
func (v *VaultSource) DeleteRule(ctx context.Context, id string) error {
	r, _, err := v.getRule(ctx, id)
	if isNotFound(err) {
		return errRuleNotFound
	}
	if err != nil {
		return err
	}
	ps, err := v.ListPolicies(ctx)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(ps, func(p Policy) bool { return slices.Contains(p.Rules, id) }) {
		return errRuleInUse
	}
	if err := v.deleteAll(ctx, "rules/"+id); err != nil {
		return err
	}
	// An AddPolicyRules may have run between the check and the delete:
	// look again and, if a policy now holds the rule, restore it.
	if ps, err = v.ListPolicies(ctx); err != nil {
		return err
	}
	if slices.ContainsFunc(ps, func(p Policy) bool { return slices.Contains(p.Rules, id) }) {
		if _, err := v.put(ctx, "rules/"+id, &r, 0); err != nil {
			return fmt.Errorf("rule %s: restoring after a concurrent add-rule: %w", id, err)
		}
		return errRuleInUse
	}
	var n nameRecord
	if _, err := v.get(ctx, "rulenames/"+nameKey(r.Name), &n); err == nil && n.UserID == id {
		if err := v.deleteAll(ctx, "rulenames/"+nameKey(r.Name)); err != nil {
			return fmt.Errorf("rule %s deleted, name index left: %w", id, err)
		}
	}
	return nil
}

// AssignPolicy implements PolicyAdmin.
func (v *VaultSource) AssignPolicy(ctx context.Context, userID, policyID string) error {
	if policyID != "" {
		if _, err := v.PolicyRecord(ctx, policyID); err != nil {
			return err
		}
	}
	var prev string
	if err := v.updateUser(ctx, userID, func(u *userRecord) error { prev, u.Policy = u.Policy, policyID; return nil }); err != nil {
		return err
	}
	if policyID == "" {
		return nil
	}
	// A DeletePolicy may have run between the check and the write: look
	// again and, if the policy is gone, put the user back.
	if _, _, err := v.policyRecord(ctx, policyID); isNotFound(err) {
		if err := v.updateUser(ctx, userID, func(u *userRecord) error {
			if u.Policy == policyID {
				u.Policy = prev
			}
			return nil
		}); err != nil {
			return err
		}
		return errPolicyNotFound
	} else if err != nil {
		return err
	}
	return nil
}

// updateUser applies fn to users/<id> with check-and-set and retries.
func (v *VaultSource) updateUser(ctx context.Context, userID string, fn func(*userRecord) error) error {
	for attempt := 0; ; attempt++ {
		u, ver, err := v.getUser(ctx, userID)
		if isNotFound(err) {
			return errUserNotFound
		}
		if err != nil {
			return err
		}
		if err := fn(u); err != nil {
			return err
		}
		_, err = v.put(ctx, "users/"+userID, u, ver)
		if errors.Is(err, errCAS) && attempt < 3 {
			continue
		}
		return err
	}
}

// GenerateAPIKey implements PolicyAdmin. The user record lists the new
// lookup id before the key record exists, so DeleteUser always finds every
// key that can work.
func (v *VaultSource) GenerateAPIKey(ctx context.Context, userID string) (string, error) {
	if !validUserID(userID) {
		return "", errUserNotFound
	}
	key, lookupID, digest, err := newAPIKey()
	if err != nil {
		return "", err
	}
	if err := v.updateUser(ctx, userID, func(u *userRecord) error {
		u.APIKeys = append(u.APIKeys, lookupID)
		return nil
	}); err != nil {
		return "", err
	}
	k := APIKeyRecord{UserID: userID, SecretSHA256: digest, CreatedAt: now()}
	if _, err := v.put(ctx, "apikeys/"+lookupID, &k, 0); err != nil {
		return "", fmt.Errorf("create api key for user %s: %w", userID, err)
	}
	return key, nil
}
