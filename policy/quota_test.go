package policy

import (
	"context"
	"testing"
)

// TestKeyQuota: the quota number comes from the user's policy, only for a
// key that may create keys at all.
func TestKeyQuota(t *testing.T) {
	ctx := context.Background()
	src := fileSource(t)
	for _, p := range []Policy{
		{Name: "three", AllowedOperations: []Operation{OpCreateKey}, KeyQuota: 3},
		{Name: "none", AllowedOperations: []Operation{OpCreateKey}, KeyQuota: 0},
		{Name: "nocreate", AllowedOperations: []Operation{OpSign}, KeyQuota: 9},
	} {
		if err := src.PutPolicy(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	a, err := NewAuthorizer(src, DefaultAuthorizerConfig())
	if err != nil {
		t.Fatal(err)
	}
	key := func(policy string) string {
		k, _, err := a.CreateUser(ctx, "u-"+policy, false, policy)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	if q, err := a.KeyQuota(ctx, key("three")); q != 3 || err != nil {
		t.Fatalf("KeyQuota = %d, %v; want 3", q, err)
	}
	for _, p := range []string{"none", "nocreate"} {
		if _, err := a.KeyQuota(ctx, key(p)); err == nil || err.(*Error).Type != ErrTypePolicyValidationFailed {
			t.Fatalf("policy %s: %v", p, err)
		}
	}
	if _, err := a.KeyQuota(ctx, "nope"); err == nil || err.(*Error).Type != ErrTypeAccessDenied {
		t.Fatalf("bad key: %v", err)
	}
}
