package policy

import (
	"context"
	"strings"
	"testing"
)

// TestGrantCarriesExternalRules: the policy a call is authorized under comes
// with its external rules from the cached lookup, so a sign's rule check asks
// the source nothing more; a policy edit invalidates that grant.
func TestGrantCarriesExternalRules(t *testing.T) {
	ctx := context.Background()
	src := fileSource(t)
	ops, err := src.CreateRule(ctx, Rule{Name: "ops", AllowedOperations: []Operation{OpSign, OpCreateKey}, KeyQuota: intp(7)})
	if err != nil {
		t.Fatal(err)
	}
	ext, err := src.CreateRule(ctx, Rule{Name: "approver", External: &ExternalRule{JWTAlg: "EdDSA",
		URL: "http://127.0.0.1:1/approve", Pubkey: strings.Repeat("11", 32)}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := src.CreatePolicy(ctx, "with approver", []string{ops.ID, ext.ID})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := mustCreate(t, src, "u", false, pol.Name)
	a, err := NewAuthorizer(src, DefaultAuthorizerConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authorize(ctx, key, OpSign, Params{}); err != nil {
		t.Fatal(err)
	}
	fetches := a.Stats().Fetches
	_, p, err := a.Grant(ctx, key, OpSign, Params{})
	if err != nil || p == nil || len(p.External) != 1 || p.External[0].RuleID != ext.ID {
		t.Fatalf("grant: %+v %v", p, err)
	}
	if q, err := a.KeyQuota(ctx, key); err != nil || q != 7 {
		t.Fatalf("key quota %d %v", q, err)
	}
	if a.Stats().Fetches != fetches {
		t.Fatalf("grant and key quota went to the source: %d fetches, want %d", a.Stats().Fetches, fetches)
	}
	// Removing the rule through the Authorizer takes effect on the next grant.
	if err := a.RemovePolicyRule(ctx, pol.Name, ext.ID); err != nil {
		t.Fatal(err)
	}
	if _, p, err := a.Grant(ctx, key, OpSign, Params{}); err != nil || len(p.External) != 0 {
		t.Fatalf("after removing the rule: %+v %v", p, err)
	}
}
