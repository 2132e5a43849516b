package policy

import "context"

// KeyQuota returns the key_quota of the policy of apiKey's user, once
// Authorize has accepted OpCreateKey for it: the daemon hands the number to
// the key store, which counts and inserts in one transaction (DESIGN §6),
// instead of passing a count taken earlier as Params.KeyCount.
func (a *Authorizer) KeyQuota(ctx context.Context, apiKey string) (int, error) {
	if _, err := a.Authorize(ctx, apiKey, OpCreateKey, Params{}); err != nil {
		return 0, err
	}
	lookupID, _, _ := parseAPIKey(apiKey)
	p, err := a.principal(ctx, lookupID)
	if err != nil {
		return 0, err
	}
	if p == nil || p.policy == nil {
		return 0, denied("the user has no policy, so %s is denied", OpCreateKey)
	}
	return p.policy.KeyQuota, nil
}
