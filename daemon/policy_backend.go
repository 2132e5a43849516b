package daemon

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quorumd/quorumd/policy"
	"github.com/quorumd/quorumd/policy/rules"
)

// PolicyBackend joins the policy package to the HTTP layer: it is the
// Authorizer, Admin, PolicyAdmin and RuleChecker of Backends.
type PolicyBackend struct {
	*policy.Authorizer
	// DefaultPolicy is given to users made by /admin/create-user.
	DefaultPolicy string
	// Rules posts sign requests to external rule servers.
	Rules *rules.Checker
}

// Authorize implements Authorizer.
func (b *PolicyBackend) Authorize(ctx context.Context, apiKey string, op Operation, p AuthParams) (Caller, error) {
	u, pol, err := b.Authorizer.Grant(ctx, apiKey, policy.Operation(op), policy.Params{
		N: p.N, Threshold: p.Threshold, RelayAddress: p.RelayAddress, KeyCount: p.KeyCount, Msg: p.Msg, Rooms: p.Rooms})
	if err != nil {
		return Caller{}, err
	}
	c := Caller{UserID: u.ID, Name: u.Name, Admin: u.Admin}
	if pol != nil {
		// The policy's number (the key store enforces it atomically) and
		// its external rules, from the one cached lookup.
		c.KeyQuota, c.SignRules = pol.KeyQuota, pol.External
	}
	return c, nil
}

// CreateUser implements Admin: API users get the default policy.
func (b *PolicyBackend) CreateUser(ctx context.Context, name string) (NewUser, error) {
	key, id, err := b.Authorizer.CreateUser(ctx, name, false, b.DefaultPolicy)
	return NewUser{UserID: id, APIKey: key}, err
}

// CheckSign implements RuleChecker with the external rules of the policy
// the call was authorized under (edits to it invalidate that grant).
func (b *PolicyBackend) CheckSign(ctx context.Context, c SignCheck) error {
	if len(c.Rules) == 0 {
		return nil
	}
	chk := b.Rules
	if chk == nil {
		chk = &rules.Checker{}
	}
	return chk.CheckAll(ctx, c.Rules, rules.Sign{KeyID: c.KeyID, Pubkey: c.Pubkey, Msg: c.Msg,
		DerivationPath: c.Path, ExtraData: c.ExtraData, RequestID: c.RequestID})
}

// Collectors exports the policy cache's counters; New registers the
// collectors of any backend that has them.
func (b *PolicyBackend) Collectors() []prometheus.Collector {
	counter := func(name, help string, v func(policy.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v(b.Stats())) })
	}
	return []prometheus.Collector{
		counter("quorumd_policy_cache_hits_total", "API key lookups answered from the policy cache.", func(s policy.Stats) uint64 { return s.Hits }),
		counter("quorumd_policy_source_fetches_total", "API key lookups sent to the policy source (coalesced).", func(s policy.Stats) uint64 { return s.Fetches }),
		counter("quorumd_policy_stale_answers_total", "API key lookups answered from a stale entry while the source was down.", func(s policy.Stats) uint64 { return s.Stale }),
		counter("quorumd_policy_failures_total", "API key lookups failed closed.", func(s policy.Stats) uint64 { return s.Failures }),
	}
}
