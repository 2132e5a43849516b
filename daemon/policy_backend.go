package daemon

import (
	"context"

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
	u, err := b.Authorizer.Authorize(ctx, apiKey, policy.Operation(op), policy.Params{
		N: p.N, Threshold: p.Threshold, RelayAddress: p.RelayAddress, KeyCount: p.KeyCount, Msg: p.Msg, Rooms: p.Rooms})
	if err != nil {
		return Caller{}, err
	}
	return Caller{UserID: u.ID, Name: u.Name, Admin: u.Admin}, nil
}

// CreateUser implements Admin: API users get the default policy.
func (b *PolicyBackend) CreateUser(ctx context.Context, name string) (NewUser, error) {
	key, id, err := b.Authorizer.CreateUser(ctx, name, false, b.DefaultPolicy)
	return NewUser{UserID: id, APIKey: key}, err
}

// CheckSign implements RuleChecker with the user's current policy.
func (b *PolicyBackend) CheckSign(ctx context.Context, c SignCheck) error {
	pol, err := b.UserPolicy(ctx, c.Owner)
	if err != nil || pol == nil || len(pol.External) == 0 {
		return err
	}
	chk := b.Rules
	if chk == nil {
		chk = &rules.Checker{}
	}
	return chk.CheckAll(ctx, pol.External, rules.Sign{KeyID: c.KeyID, Pubkey: c.Pubkey, Msg: c.Msg,
		DerivationPath: c.Path, ExtraData: c.ExtraData, RequestID: c.RequestID})
}
