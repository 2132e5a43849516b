package policy

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func fileSource(t *testing.T) *FileSource {
	t.Helper()
	s, err := OpenFile(filepath.Join(t.TempDir(), "policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAuthorizerConfig(t *testing.T) {
	src := fileSource(t)
	if _, err := NewAuthorizer(nil, DefaultAuthorizerConfig()); !errors.Is(err, ErrConfig) {
		t.Fatalf("nil source: %v", err)
	}
	cases := []func(*AuthorizerConfig){
		func(c *AuthorizerConfig) { c.TTL = 0 },
		func(c *AuthorizerConfig) { c.NegativeTTL = 0 },
		func(c *AuthorizerConfig) { c.StaleWindow = -1 },
		func(c *AuthorizerConfig) { c.RetryAfter = -1 },
		func(c *AuthorizerConfig) { c.MaxEntries = 0 },
	}
	for i, edit := range cases {
		c := DefaultAuthorizerConfig()
		edit(&c)
		if _, err := NewAuthorizer(src, c); !errors.Is(err, ErrConfig) {
			t.Errorf("case %d: %v", i, err)
		}
	}
	c := DefaultAuthorizerConfig()
	c.StaleWindow, c.RetryAfter = 0, 0
	if _, err := NewAuthorizer(src, c); err != nil {
		t.Fatalf("zero stale window and retry-after must be allowed: %v", err)
	}
}

func TestAuthorizerEviction(t *testing.T) {
	ctx := context.Background()
	src := fileSource(t)
	if err := src.PutPolicy(ctx, signerPolicy); err != nil {
		t.Fatal(err)
	}
	key, _ := mustCreate(t, src, "u", false, "signer")
	c := DefaultAuthorizerConfig()
	c.MaxEntries = 3
	a, err := NewAuthorizer(src, c)
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	a.now = clock.Now
	if _, err := a.Authorize(ctx, key, OpSign, Params{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		k := fmt.Sprintf("%016x", i+1) + "." + strings.Repeat("A", secretLen)
		if _, err := a.Authorize(ctx, k, OpSign, Params{}); !errors.Is(err, ErrKeyUnknown) {
			t.Fatal(err)
		}
		a.mu.RLock()
		n := len(a.entries)
		_, kept := a.entries[lookupOf(key)]
		a.mu.RUnlock()
		if n > c.MaxEntries || !kept {
			t.Fatalf("after %d unknown keys: %d entries, valid key kept %v", i+1, n, kept)
		}
	}
	fetches := a.Stats().Fetches
	if _, err := a.Authorize(ctx, key, OpSign, Params{}); err != nil || a.Stats().Fetches != fetches {
		t.Fatalf("valid key evicted by unknown ones: %v", err)
	}
}

// TestVaultInvalidateDuringFlight: a lookup in flight while the key is
// revoked through the Authorizer must not re-insert the pre-revocation
// answer.
func TestVaultInvalidateDuringFlight(t *testing.T) {
	forEachVault(t, func(t *testing.T, e *vaultEnv) {
		ctx := context.Background()
		v := e.approleSource(t, "1h", "2h", nil)
		admin := e.adminSource(t)
		if err := admin.PutPolicy(ctx, signerPolicy); err != nil {
			t.Fatal(err)
		}
		key, id := mustCreate(t, admin, "u", false, "signer")
		a := newTestAuthorizer(t, v, newFakeClock())
		path := e.mount + "/data/" + e.prefix + "/users/"
		e.proxy.Delay(path, 400*time.Millisecond)
		done := make(chan error, 1)
		go func() {
			_, err := a.Authorize(ctx, key, OpSign, Params{})
			done <- err
		}()
		waitFor(t, 5*time.Second, "the lookup to be in flight", func() bool {
			return e.proxy.Count("GET", path) >= 1
		})
		e.proxy.Delay(path, 0)
		if err := a.RevokeAPIKey(ctx, id, key); err != nil {
			t.Fatal(err)
		}
		<-done // concurrent with the revocation: either answer is fine
		if _, err := a.Authorize(ctx, key, OpSign, Params{}); !errors.Is(err, ErrKeyRevoked) {
			t.Fatalf("after revocation: %v, want revoked", err)
		}
	})
}
