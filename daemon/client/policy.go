package client

import (
	"context"
	"net/http"
	"net/url"
)

// The /admin/policies/... routes (admin key; DESIGN §6): policies are
// named sets of rules, assigned to users.

// Policy is a policy record.
type Policy struct {
	PolicyID  string   `json:"policy_id"`
	Name      string   `json:"name"`
	Rules     []string `json:"rules"`
	CreatedAt string   `json:"created_at,omitempty"`
}

// Rule is a rule: it constrains only what it sets. RuleID and CreatedAt
// are the daemon's (ignored by CreateRule); External is set on rules made
// by AddExternalRule.
type Rule struct {
	RuleID                string        `json:"rule_id,omitempty"`
	Name                  string        `json:"name"`
	AllowedOperations     []string      `json:"allowed_operations,omitempty"`
	MaxN                  *int          `json:"max_n,omitempty"`
	MinThreshold          *int          `json:"min_threshold,omitempty"`
	MaxThreshold          *int          `json:"max_threshold,omitempty"`
	AllowedRelayAddresses []string      `json:"allowed_relay_addresses,omitempty"`
	KeyQuota              *int          `json:"key_quota,omitempty"`
	RoomQuota             *int          `json:"room_quota,omitempty"`
	MaxMsgBytes           *int          `json:"max_msg_bytes,omitempty"`
	MsgPrefixes           []string      `json:"msg_prefixes,omitempty"`
	AllowBackupExport     *BackupExport `json:"allow_backup_export,omitempty"`
	External              *ExternalRule `json:"external,omitempty"`
	CreatedAt             string        `json:"created_at,omitempty"`
}

// BackupExport lets a rule's users export backups: Mode "encrypted" (to
// RecipientPubkey, the operator's X25519 key in hex) or "plaintext".
type BackupExport struct {
	Mode            string `json:"mode"`
	RecipientPubkey string `json:"recipient_pubkey,omitempty"`
}

// ExternalRule is a rule server consulted before each signature: its
// answer must be a JWT signed with Pubkey (PEM, or hex Ed25519) under
// JWTAlg (ES256 or EdDSA).
type ExternalRule struct {
	Name   string `json:"name,omitempty"` // AddExternalRule only
	JWTAlg string `json:"jwt_alg"`
	URL    string `json:"url"`
	Pubkey string `json:"pubkey"`
}

// PolicyRule names a rule of a policy (add-rule, remove-rule).
type PolicyRule struct {
	PolicyID string `json:"policy_id"`
	RuleID   string `json:"rule_id"`
}

// CreatePolicy makes a policy of the given rules and returns its id.
func (c *Client) CreatePolicy(ctx context.Context, name string, ruleIDs []string) (string, error) {
	if ruleIDs == nil {
		ruleIDs = []string{}
	}
	var out struct {
		PolicyID string `json:"policy_id"`
	}
	err := c.adminPost(ctx, "/admin/policies/create-policy", map[string]any{"name": name, "rules": ruleIDs}, &out)
	return out.PolicyID, err
}

// ListPolicies lists every policy.
func (c *Client) ListPolicies(ctx context.Context) ([]Policy, error) {
	var out struct {
		Policies []Policy `json:"policies"`
	}
	err := c.do(ctx, get("/admin/policies/list-policies"), &out)
	return out.Policies, err
}

// GetPolicy fetches one policy.
func (c *Client) GetPolicy(ctx context.Context, policyID string) (Policy, error) {
	var out Policy
	err := c.do(ctx, get("/admin/policies/get-policy/"+url.PathEscape(policyID)), &out)
	return out, err
}

// DeletePolicy deletes a policy no user holds.
func (c *Client) DeletePolicy(ctx context.Context, policyID string) error {
	return c.do(ctx, call{method: http.MethodDelete, path: "/admin/policies/delete-policy/" + url.PathEscape(policyID)}, nil)
}

// AddRule adds a rule to a policy.
func (c *Client) AddRule(ctx context.Context, policyID, ruleID string) error {
	return c.adminPost(ctx, "/admin/policies/add-rule", PolicyRule{policyID, ruleID}, nil)
}

// RemoveRule removes a rule from a policy.
func (c *Client) RemoveRule(ctx context.Context, policyID, ruleID string) error {
	return c.adminPost(ctx, "/admin/policies/remove-rule", PolicyRule{policyID, ruleID}, nil)
}

// CreateRule makes a rule (r's RuleID, External and CreatedAt must be
// empty) and returns its id.
func (c *Client) CreateRule(ctx context.Context, r Rule) (string, error) {
	var out struct {
		RuleID string `json:"rule_id"`
	}
	err := c.adminPost(ctx, "/admin/policies/create-rule", r, &out)
	return out.RuleID, err
}

// AddExternalRule registers a rule server (r.Name names the rule) and
// returns the rule's id.
func (c *Client) AddExternalRule(ctx context.Context, r ExternalRule) (string, error) {
	var out struct {
		RuleID string `json:"rule_id"`
	}
	err := c.adminPost(ctx, "/admin/policies/add-external-rule", r, &out)
	return out.RuleID, err
}

// ListRules lists every rule.
func (c *Client) ListRules(ctx context.Context) ([]Rule, error) {
	var out struct {
		Rules []Rule `json:"rules"`
	}
	err := c.do(ctx, get("/admin/policies/list-rules"), &out)
	return out.Rules, err
}

// GetRule fetches one rule.
func (c *Client) GetRule(ctx context.Context, ruleID string) (Rule, error) {
	var out Rule
	err := c.do(ctx, get("/admin/policies/get-rule/"+url.PathEscape(ruleID)), &out)
	return out, err
}

// DeleteRule deletes a rule no policy holds.
func (c *Client) DeleteRule(ctx context.Context, ruleID string) error {
	return c.do(ctx, call{method: http.MethodDelete, path: "/admin/policies/delete-rule/" + url.PathEscape(ruleID)}, nil)
}

// AssignPolicy gives userID the policy ("" leaves the user without one:
// deny-all).
func (c *Client) AssignPolicy(ctx context.Context, userID, policyID string) error {
	return c.adminPost(ctx, "/admin/policies/assign-policy", map[string]string{"user_id": userID, "policy_id": policyID}, nil)
}

func (c *Client) adminPost(ctx context.Context, path string, body, out any) error {
	r, err := postJSON(path, body)
	if err != nil {
		return err
	}
	return c.do(ctx, r, out)
}
