package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// PolicyAdmin is the policy and rule administration of DESIGN §6 (the
// /admin/policies/... routes), implemented by both sources with the same
// outcomes. Errors are *Error for the outcomes of DESIGN §2:
// policy_not_found, rule_not_found, rule_in_use, rule_not_in_policy,
// policy_in_use_by_users, unique_violation, user_id_not_exists,
// bad_request_params; anything else is an infrastructure failure.
//
// Policies made here are sets of rules stored at policies/<policy_id> with
// a unique name; flat policies written by operators (PutPolicy) are listed
// and assignable too, their key serving as id.
type PolicyAdmin interface {
	// CreatePolicy stores a new policy named name holding ruleIDs.
	CreatePolicy(ctx context.Context, name string, ruleIDs []string) (Policy, error)
	// ListPolicies returns every policy as stored (rules not folded in),
	// ordered by id.
	ListPolicies(ctx context.Context) ([]Policy, error)
	// PolicyRecord returns one policy as stored.
	PolicyRecord(ctx context.Context, id string) (Policy, error)
	// DeletePolicy removes a policy no user is assigned to.
	DeletePolicy(ctx context.Context, id string) error
	// AddPolicyRules adds existing rules to a rule-set policy (idempotent
	// per rule).
	AddPolicyRules(ctx context.Context, id string, ruleIDs []string) error
	// RemovePolicyRule takes one rule out of a policy.
	RemovePolicyRule(ctx context.Context, id, ruleID string) error
	// CreateRule stores a validated rule under a fresh id; names are unique.
	CreateRule(ctx context.Context, r Rule) (Rule, error)
	// ListRules returns every rule, ordered by id.
	ListRules(ctx context.Context) ([]Rule, error)
	// GetRule returns one rule.
	GetRule(ctx context.Context, id string) (Rule, error)
	// DeleteRule removes a rule no policy holds.
	DeleteRule(ctx context.Context, id string) error
	// AssignPolicy sets (or, with id "", clears) a user's policy.
	AssignPolicy(ctx context.Context, userID, policyID string) error
	// GenerateAPIKey gives an existing user a further API key and returns
	// it (once); a user whose keys were all revoked is active again.
	GenerateAPIKey(ctx context.Context, userID string) (string, error)
}

var (
	errPolicyNotFound  = typed(ErrTypePolicyNotFound, "policy not found")
	errRuleNotFound    = typed(ErrTypeRuleNotFound, "rule not found")
	errRuleInUse       = typed(ErrTypeRuleInUse, "the rule belongs to a policy; remove it from every policy first")
	errRuleNotInPolicy = typed(ErrTypeRuleNotInPolicy, "the rule is not part of this policy")
	errPolicyInUse     = typed(ErrTypePolicyInUseByUsers, "users are assigned this policy; assign them another first")
	errFlatPolicy      = typed(ErrTypeBadRequestParams, "a policy with inline limits takes no rules; create a rule-set policy")
)

func errUnique(what string) error {
	return typed(ErrTypeUniqueViolation, what+" name already exists")
}

// checkNewPolicy validates CreatePolicy's inputs.
func checkNewPolicy(name string, ruleIDs []string) ([]string, error) {
	if !ValidUserName(name) {
		return nil, typed(ErrTypeBadRequestParams, fmt.Sprintf("policy name must be 1-%d bytes of printable UTF-8", MaxUserName))
	}
	return checkRuleIDs(ruleIDs)
}

// checkRuleIDs rejects malformed ids (as rule_not_found: no such rule can
// exist) and drops repeats.
func checkRuleIDs(ids []string) ([]string, error) {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !validUserID(id) {
			return nil, errRuleNotFound
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out, nil
}

// checkNewRule validates a rule for CreateRule.
func checkNewRule(r *Rule) error {
	if err := r.Validate(); err != nil {
		return &Error{Type: ErrTypeBadRequestParams, Msg: err.Error(), Err: err}
	}
	return nil
}

func sortPolicies(ps []Policy) {
	slices.SortFunc(ps, func(a, b Policy) int { return strings.Compare(a.Name, b.Name) })
}

func sortRules(rs []Rule) {
	slices.SortFunc(rs, func(a, b Rule) int { return strings.Compare(a.ID, b.ID) })
}

// resolvePolicy folds a rule-set policy's rules into its limits; get reads
// one rule. A rule that vanished makes the policy invalid (its users are
// denied), which DeleteRule's rule_in_use check prevents in normal use.
func resolvePolicy(p *Policy, get func(id string) (Rule, error)) error {
	if len(p.Rules) == 0 {
		return nil
	}
	rules := make([]Rule, 0, len(p.Rules))
	for _, id := range p.Rules {
		r, err := get(id)
		if isNotFound(err) {
			return fmt.Errorf("%w: policy %s: rule %s does not exist", ErrSourceInvalid, p.Name, id)
		}
		if err != nil {
			return err
		}
		rules = append(rules, r)
	}
	combine(p, rules)
	return nil
}
