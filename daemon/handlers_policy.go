package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/quorumd/quorumd/policy"
)

// Handlers of Vertex's admin extras (generate-api-key, the
// /admin/policies/... family), /batch-create-rooms and the external-rule
// hook of the sign path.

// Audit events of this file.
const (
	AuditAPIKeyGenerated AuditEvent = "apikey.generated"
	AuditPolicyChanged   AuditEvent = "policy.changed"
	AuditSignRefused     AuditEvent = "key.sign_refused"
)

var errNoPolicyAdmin = errors.New("daemon: no policy administration backend configured")

// adminCall decodes nothing, authorizes an admin and returns the policy
// backend with a request context.
func (s *Server) adminCall(rc *reqCtx, op Operation) (PolicyAdmin, context.Context, context.CancelFunc, error) {
	if err := s.authorize(rc, op, AuthParams{}); err != nil {
		return nil, nil, nil, err
	}
	if s.b.Policies == nil {
		return nil, nil, nil, errNoPolicyAdmin
	}
	ctx, cancel := s.requestContext(rc)
	return s.b.Policies, ctx, cancel, nil
}

func (s *Server) generateAPIKey(rc *reqCtx) error {
	if err := noBody(rc); err != nil {
		return err
	}
	userID, err := queryArg(rc, "user_id")
	if err != nil {
		return err
	}
	if err := checkUserID(userID); err != nil {
		return err
	}
	pa, ctx, cancel, err := s.adminCall(rc, OpGenerateAPIKey)
	if err != nil {
		return err
	}
	defer cancel()
	key, err := pa.GenerateAPIKey(ctx, userID)
	s.audit(rc, AuditAPIKeyGenerated, err, slog.String("target_user_id", userID))
	if err != nil {
		return err
	}
	return rc.writeJSON(map[string]string{"api_key": key})
}

// policyView is a policy as the API shows it.
type policyView struct {
	PolicyID  string   `json:"policy_id"`
	Name      string   `json:"name"`
	Rules     []string `json:"rules"`
	CreatedAt string   `json:"created_at,omitempty"`
}

func viewOf(p policy.Policy) policyView {
	v := policyView{PolicyID: p.ID(), Name: p.Title(), Rules: p.Rules}
	if v.Rules == nil {
		v.Rules = []string{}
	}
	if p.CreatedAt != nil {
		v.CreatedAt = p.CreatedAt.UTC().Format(time.RFC3339)
	}
	return v
}

// ruleView is a rule as the API shows it: its stored form plus its id.
type ruleView struct {
	RuleID string `json:"rule_id"`
	policy.Rule
}

func (s *Server) createPolicy(rc *reqCtx) error {
	req, err := decodeCreatePolicy(rc.body())
	rc.wipeBody()
	if err != nil {
		return err
	}
	pa, ctx, cancel, err := s.adminCall(rc, OpManagePolicies)
	if err != nil {
		return err
	}
	defer cancel()
	p, err := pa.CreatePolicy(ctx, req.Name, req.Rules)
	s.audit(rc, AuditPolicyChanged, err, slog.String("action", "create_policy"), slog.String("policy_id", p.ID()), slog.String("name", req.Name))
	if err != nil {
		return err
	}
	return rc.writeJSON(map[string]string{"policy_id": p.ID()})
}

func (s *Server) listPolicies(rc *reqCtx) error {
	if err := noBody(rc); err != nil {
		return err
	}
	pa, ctx, cancel, err := s.adminCall(rc, OpManagePolicies)
	if err != nil {
		return err
	}
	defer cancel()
	ps, err := pa.ListPolicies(ctx)
	if err != nil {
		return err
	}
	out := make([]policyView, 0, len(ps))
	for _, p := range ps {
		out = append(out, viewOf(p))
	}
	return rc.writeJSON(map[string]any{"policies": out})
}

// pathPolicyID validates the :policy_id path segment.
func pathPolicyID(rc *reqCtx) (string, error) {
	if err := checkPolicyID(rc.param); err != nil {
		return "", badRequest("policy_id in the path is not a policy id")
	}
	return rc.param, nil
}

func (s *Server) getPolicy(rc *reqCtx) error {
	if err := noBody(rc); err != nil {
		return err
	}
	id, err := pathPolicyID(rc)
	if err != nil {
		return err
	}
	pa, ctx, cancel, err := s.adminCall(rc, OpManagePolicies)
	if err != nil {
		return err
	}
	defer cancel()
	p, err := pa.PolicyRecord(ctx, id)
	if err != nil {
		return err
	}
	return rc.writeJSON(viewOf(p))
}

// deletePolicy refuses while users hold the policy: policy_in_use_by_keys
// when one of them owns keys on this daemon (the policy governs live keys),
// else policy_in_use_by_users.
func (s *Server) deletePolicy(rc *reqCtx) error {
	if err := noBody(rc); err != nil {
		return err
	}
	id, err := pathPolicyID(rc)
	if err != nil {
		return err
	}
	pa, ctx, cancel, err := s.adminCall(rc, OpManagePolicies)
	if err != nil {
		return err
	}
	defer cancel()
	err = pa.DeletePolicy(ctx, id)
	var t Typed
	if errors.As(err, &t) && t.ErrType() == ErrTypePolicyInUseByUsers {
		if inUse, kerr := s.policyHasKeys(ctx, id); kerr != nil {
			err = kerr
		} else if inUse {
			err = fmt.Errorf("%w (%w)", Errorf(ErrTypePolicyInUseByKeys, "users holding this policy own keys; delete their keys or assign them another policy first"), err)
		}
	}
	s.audit(rc, AuditPolicyChanged, err, slog.String("action", "delete_policy"), slog.String("policy_id", id))
	if err != nil {
		return err
	}
	return rc.writeJSON(map[string]string{"policy_id": id})
}

// policyHasKeys reports whether a user holding policy id owns keys.
func (s *Server) policyHasKeys(ctx context.Context, id string) (bool, error) {
	all, err := s.b.Keys.ListAll(ctx)
	if err != nil {
		return false, err
	}
	us, err := s.b.Policies.ListUsers(ctx)
	if err != nil {
		return false, err
	}
	for _, u := range us {
		if u.Policy == id && len(all[u.ID]) > 0 {
			return true, nil
		}
	}
	return false, nil
}

func (s *Server) policyRuleChange(rc *reqCtx, add bool) error {
	req, err := decodePolicyRule(rc.body())
	rc.wipeBody()
	if err != nil {
		return err
	}
	pa, ctx, cancel, err := s.adminCall(rc, OpManagePolicies)
	if err != nil {
		return err
	}
	defer cancel()
	action := "remove_rule"
	if add {
		action = "add_rule"
		err = pa.AddPolicyRules(ctx, req.PolicyID, []string{req.RuleID})
	} else {
		err = pa.RemovePolicyRule(ctx, req.PolicyID, req.RuleID)
	}
	s.audit(rc, AuditPolicyChanged, err, slog.String("action", action), slog.String("policy_id", req.PolicyID), slog.String("rule_id", req.RuleID))
	if err != nil {
		return err
	}
	return rc.writeJSON(map[string]string{"policy_id": req.PolicyID, "rule_id": req.RuleID})
}

func (s *Server) addRule(rc *reqCtx) error    { return s.policyRuleChange(rc, true) }
func (s *Server) removeRule(rc *reqCtx) error { return s.policyRuleChange(rc, false) }

func (s *Server) createRule(rc *reqCtx) error {
	r, err := decodeCreateRule(rc.body())
	rc.wipeBody()
	if err != nil {
		return err
	}
	return s.storeRule(rc, r, "create_rule")
}

func (s *Server) addExternalRule(rc *reqCtx) error {
	r, err := decodeExternalRule(rc.body())
	rc.wipeBody()
	if err != nil {
		return err
	}
	return s.storeRule(rc, r, "add_external_rule")
}

func (s *Server) storeRule(rc *reqCtx, r *policy.Rule, action string) error {
	pa, ctx, cancel, err := s.adminCall(rc, OpManagePolicies)
	if err != nil {
		return err
	}
	defer cancel()
	out, err := pa.CreateRule(ctx, *r)
	s.audit(rc, AuditPolicyChanged, err, slog.String("action", action), slog.String("rule_id", out.ID), slog.String("name", r.Name))
	if err != nil {
		return err
	}
	return rc.writeJSON(map[string]string{"rule_id": out.ID})
}

func (s *Server) listRules(rc *reqCtx) error {
	if err := noBody(rc); err != nil {
		return err
	}
	pa, ctx, cancel, err := s.adminCall(rc, OpManagePolicies)
	if err != nil {
		return err
	}
	defer cancel()
	rs, err := pa.ListRules(ctx)
	if err != nil {
		return err
	}
	out := make([]ruleView, 0, len(rs))
	for _, r := range rs {
		out = append(out, ruleView{RuleID: r.ID, Rule: r})
	}
	return rc.writeJSON(map[string]any{"rules": out})
}

func pathRuleID(rc *reqCtx) (string, error) {
	if !validUUID(rc.param) {
		return "", badRequest("rule_id in the path must be a lowercase UUID")
	}
	return rc.param, nil
}

func (s *Server) getRule(rc *reqCtx) error {
	if err := noBody(rc); err != nil {
		return err
	}
	id, err := pathRuleID(rc)
	if err != nil {
		return err
	}
	pa, ctx, cancel, err := s.adminCall(rc, OpManagePolicies)
	if err != nil {
		return err
	}
	defer cancel()
	r, err := pa.GetRule(ctx, id)
	if err != nil {
		return err
	}
	return rc.writeJSON(ruleView{RuleID: r.ID, Rule: r})
}

func (s *Server) deleteRule(rc *reqCtx) error {
	if err := noBody(rc); err != nil {
		return err
	}
	id, err := pathRuleID(rc)
	if err != nil {
		return err
	}
	pa, ctx, cancel, err := s.adminCall(rc, OpManagePolicies)
	if err != nil {
		return err
	}
	defer cancel()
	err = pa.DeleteRule(ctx, id)
	s.audit(rc, AuditPolicyChanged, err, slog.String("action", "delete_rule"), slog.String("rule_id", id))
	if err != nil {
		return err
	}
	return rc.writeJSON(map[string]string{"rule_id": id})
}

func (s *Server) assignPolicy(rc *reqCtx) error {
	req, err := decodeAssignPolicy(rc.body())
	rc.wipeBody()
	if err != nil {
		return err
	}
	pa, ctx, cancel, err := s.adminCall(rc, OpManagePolicies)
	if err != nil {
		return err
	}
	defer cancel()
	err = pa.AssignPolicy(ctx, req.UserID, req.PolicyID)
	s.audit(rc, AuditPolicyChanged, err, slog.String("action", "assign_policy"), slog.String("target_user_id", req.UserID), slog.String("policy_id", req.PolicyID))
	if err != nil {
		return err
	}
	return rc.writeJSON(map[string]string{"user_id": req.UserID, "policy_id": req.PolicyID})
}

// batchCreateRooms makes every room or none it reports: rooms are
// one-time and unused ones expire on the relay, so a failure part-way
// answers the error and the rooms already made simply lapse.
func (s *Server) batchCreateRooms(rc *reqCtx) error {
	sizes, err := decodeBatchRooms(rc.body(), s.cfg.Limits.MaxParties)
	rc.wipeBody()
	if err != nil {
		return err
	}
	maxN := 0
	for _, n := range sizes {
		maxN = max(maxN, n)
	}
	if err := s.authorize(rc, OpCreateRoom, AuthParams{N: maxN, Rooms: len(sizes)}); err != nil {
		return err
	}
	// Every room counts against the daemon's per-user room limits
	// (roomquota.go) like a /create-room; all are reserved first, so a
	// batch over the limit makes none.
	undos := make([]func(), 0, len(sizes))
	for range sizes {
		undo, err := s.rooms.reserve(rc.caller.UserID)
		if err != nil {
			for _, u := range undos {
				u()
			}
			var o *Overload
			if !errors.As(err, &o) {
				s.metrics.ObserveRejected(rejectRoomQuota)
			}
			return err
		}
		undos = append(undos, undo)
	}
	ctx, cancel := s.requestContext(rc)
	defer cancel()
	ids := make([]string, 0, len(sizes))
	for i, n := range sizes {
		room, err := s.b.Rooms.CreateRoom(ctx, n)
		if err != nil {
			for _, u := range undos[i:] {
				u()
			}
			var t Typed
			if !errors.As(err, &t) {
				s.log.Warn("room creation failed", "request_id", rc.requestID, "error", err.Error())
				return fmt.Errorf("%w (%v)", Errorf(ErrTypeRoomCreationProblem, "the relay could not create room %d of %d", len(ids)+1, len(sizes)), err)
			}
			return err
		}
		if !validUUID(room) {
			return fmt.Errorf("relay returned a malformed room id")
		}
		ids = append(ids, room)
	}
	return rc.writeJSON(map[string][]string{"room_uuids": ids})
}

// checkSignRules runs the external rules of the caller's policy for a
// sign request, before the ceremony; a refusal is audited.
func (s *Server) checkSignRules(rc *reqCtx, req *signRequest, info KeyInfo) error {
	if s.b.Rules == nil {
		return nil
	}
	ctx, cancel := s.requestContext(rc)
	defer cancel()
	err := s.b.Rules.CheckSign(ctx, SignCheck{Owner: rc.caller.UserID, Rules: rc.caller.SignRules, KeyID: req.KeyID, Pubkey: info.Pubkey,
		Msg: req.Msg, Path: req.Tweaks.Path, ExtraData: req.ExtraData, RequestID: rc.requestID})
	if err != nil {
		s.audit(rc, AuditSignRefused, err, slog.String("key_id", req.KeyID), slog.String("room_uuid", req.RoomUUID))
		return fmt.Errorf("external rules: %w", err)
	}
	return nil
}
