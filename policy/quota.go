package policy

import "context"

// KeyQuota returns the key_quota of the policy of apiKey's user, once
// Authorize has accepted OpCreateKey for it: the daemon hands the number to
// the key store, which counts and inserts in one transaction (DESIGN §6),
// instead of passing a count taken earlier as Params.KeyCount.
func (a *Authorizer) KeyQuota(ctx context.Context, apiKey string) (int, error) {
	_, p, err := a.Grant(ctx, apiKey, OpCreateKey, Params{})
	if err != nil {
		return 0, err
	}
	return p.KeyQuota, nil
}
