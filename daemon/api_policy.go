package daemon

import (
	"context"

	"github.com/quorumd/quorumd/policy"
)

// PolicyAdmin performs the policy and rule administration of the
// /admin/policies routes and /admin/generate-api-key (DESIGN §6) on the
// policy source; the HTTP layer has authorized the caller as an admin.
// *policy.Authorizer implements it (through PolicyBackend); errors carry
// their err_type.
type PolicyAdmin interface {
	policy.PolicyAdmin
	// ListUsers lists every user (for policy_in_use_by_keys).
	ListUsers(ctx context.Context) ([]policy.User, error)
}

// SignCheck is a sign operation as external rule servers are shown it
// before the ceremony starts. All of it is public or client-chosen data.
type SignCheck struct {
	Owner     string
	Rules     []policy.NamedExternalRule // the caller's grant's (Caller.SignRules)
	KeyID     string
	Pubkey    []byte // the key's untweaked 32-byte x-only public key
	Msg       []byte
	Path      []uint32
	ExtraData []byte
	RequestID string
}

// RuleChecker asks the external rules of the caller's policy whether a
// signature may be made. nil means approved (or no external rule); a
// refusal is Typed policy_validation_failed. It runs before any ceremony
// message is sent, so a refused request costs the quorum nothing.
type RuleChecker interface {
	CheckSign(ctx context.Context, c SignCheck) error
}
