package policy

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/quorumd/quorumd/policy/vaulttest"
)

// reportPercentiles records per-operation durations and reports p50/p99 next
// to ns/op (the timer calls add a few tens of ns to each sample).
func reportPercentiles(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(d[len(d)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkAuthorizeWarm: a cached key, a policy-checked operation with
// relay, N and threshold checks: parse, SHA-256, constant-time compare,
// policy decision. Target p50 ≤ 5 µs.
func BenchmarkAuthorizeWarm(b *testing.B) {
	ctx := context.Background()
	src, err := OpenFile(filepath.Join(b.TempDir(), "policy.json"))
	if err != nil {
		b.Fatal(err)
	}
	if err := src.PutPolicy(ctx, signerPolicy); err != nil {
		b.Fatal(err)
	}
	key, _, err := src.CreateUser(ctx, "bench", false, "signer")
	if err != nil {
		b.Fatal(err)
	}
	a, err := NewAuthorizer(src, DefaultAuthorizerConfig())
	if err != nil {
		b.Fatal(err)
	}
	params := Params{N: 3, Threshold: 2, RelayAddress: "relay.example:7443"}
	if _, err := a.Authorize(ctx, key, OpImportKeyRecipient, params); err != nil {
		b.Fatal(err)
	}
	d := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := a.Authorize(ctx, key, OpImportKeyRecipient, params); err != nil {
			b.Fatal(err)
		}
		d[i] = time.Since(t0)
	}
	b.StopTimer()
	reportPercentiles(b, d)
}

// BenchmarkAuthorizeCold: every call misses the cache and resolves the key
// through the in-process Vault-compatible server over HTTP (three KV v2
// reads: api key, user, policy).
func BenchmarkAuthorizeCold(b *testing.B) {
	ctx := context.Background()
	s, err := vaulttest.New()
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	cfg := DefaultVaultConfig()
	cfg.Address = s.Addr()
	cfg.Auth = VaultAuthConfig{Method: "token", Token: s.RootToken()}
	v, err := OpenVault(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	if err := v.PutPolicy(ctx, signerPolicy); err != nil {
		b.Fatal(err)
	}
	key, _, err := v.CreateUser(ctx, "bench", false, "signer")
	if err != nil {
		b.Fatal(err)
	}
	a, err := NewAuthorizer(v, DefaultAuthorizerConfig())
	if err != nil {
		b.Fatal(err)
	}
	d := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.invalidate(nil)
		t0 := time.Now()
		if _, err := a.Authorize(ctx, key, OpSign, Params{}); err != nil {
			b.Fatal(err)
		}
		d[i] = time.Since(t0)
	}
	b.StopTimer()
	reportPercentiles(b, d)
}
