package daemon

import (
	"bytes"
	"encoding/json"

	"github.com/quorumd/quorumd/policy"
)

// Decoders of the batch-room and /admin/policies/... bodies. Values are
// syntax-checked here; the policy package validates their meaning.

// maxBatchRooms bounds one /batch-create-rooms call (batch_too_large).
const maxBatchRooms = 64

// optIntField decodes an optional integer into a pointer (absent: nil).
func optIntField(name string, dst **int) field {
	var v int
	f := intField(name, false, &v, nil)
	inner := f.decode
	f.decode = func(raw []byte) error {
		if err := inner(raw); err != nil {
			return err
		}
		*dst = &v
		return nil
	}
	return f
}

// intListField decodes an array of integers.
func intListField(name string, required bool, dst *[]int) field {
	return field{name: name, required: required, decode: func(raw []byte) error {
		var v []int32
		if raw[0] != '[' || json.Unmarshal(raw, &v) != nil {
			return badRequest("field %q must be an array of integers", name)
		}
		out := make([]int, len(v))
		for i, x := range v {
			out[i] = int(x)
		}
		*dst = out
		return nil
	}}
}

// strictObjectField decodes a JSON object into dst, unknown members refused.
func strictObjectField(name string, dst any) field {
	return field{name: name, decode: func(raw []byte) error {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if raw[0] != '{' || dec.Decode(dst) != nil {
			return badRequest("field %q must be an object with the documented members", name)
		}
		return nil
	}}
}

// batchRoomsRequest is {room_sizes: [..]} or {room_size, count}.
type batchRoomsRequest struct {
	sizes    []int
	size     int
	count    int
	hasSize  bool
	hasCount bool
}

func batchRoomsFields(r *batchRoomsRequest) []field {
	return []field{
		intListField("room_sizes", false, &r.sizes),
		intField("room_size", false, &r.size, &r.hasSize),
		intField("count", false, &r.count, &r.hasCount),
	}
}

// decodeBatchRooms returns the room sizes asked for.
func decodeBatchRooms(body []byte, maxN int) ([]int, error) {
	var r batchRoomsRequest
	if err := decodeObject(body, batchRoomsFields(&r)); err != nil {
		return nil, err
	}
	sizes := r.sizes
	switch {
	case sizes != nil && (r.hasSize || r.hasCount):
		return nil, badRequest(`give either "room_sizes" or "room_size" with "count"`)
	case sizes == nil && !(r.hasSize && r.hasCount):
		return nil, badRequest(`give "room_sizes", or "room_size" with "count"`)
	case sizes == nil:
		if r.count < 1 {
			return nil, badRequest(`"count" must be at least 1`)
		}
		if r.count > maxBatchRooms {
			return nil, Errorf(ErrTypeBatchTooLarge, "at most %d rooms per call, asked for %d", maxBatchRooms, r.count)
		}
		for range r.count {
			sizes = append(sizes, r.size)
		}
	}
	if len(sizes) == 0 {
		return nil, badRequest(`"room_sizes" must not be empty`)
	}
	if len(sizes) > maxBatchRooms {
		return nil, Errorf(ErrTypeBatchTooLarge, "at most %d rooms per call, asked for %d", maxBatchRooms, len(sizes))
	}
	for i, n := range sizes {
		if n < 1 || n > maxN {
			return nil, badNT("room %d: room_size must satisfy 1 <= room_size <= %d, got %d", i, maxN, n)
		}
	}
	return sizes, nil
}

func checkName(s string) error {
	if !policy.ValidUserName(s) {
		return badRequest(`"name" must be 1-%d bytes of printable UTF-8`, policy.MaxUserName)
	}
	return nil
}

func checkUUIDField(name string) func(string) error {
	return func(s string) error {
		if !validUUID(s) {
			return badRequest("field %q must be a lowercase UUID", name)
		}
		return nil
	}
}

// checkPolicyID accepts a policy_id: a UUID, or the name of a flat policy
// an operator wrote (same alphabet as the source's keys).
func checkPolicyID(s string) error {
	if !validToken(s, 64, "._@-") || s == "." || s == ".." {
		return badRequest(`field "policy_id" is not a policy id`)
	}
	return nil
}

// createPolicyRequest is {name, rules}.
type createPolicyRequest struct {
	Name  string
	Rules []string
}

func createPolicyFields(r *createPolicyRequest) []field {
	return []field{
		stringField("name", true, policy.MaxUserName, checkName, &r.Name),
		stringListField("rules", false, &r.Rules),
	}
}

func decodeCreatePolicy(body []byte) (*createPolicyRequest, error) {
	r := &createPolicyRequest{}
	if err := decodeObject(body, createPolicyFields(r)); err != nil {
		return nil, err
	}
	if len(r.Rules) > 256 {
		return nil, badRequest(`at most 256 "rules"`)
	}
	return r, nil
}

// policyRuleRequest is {policy_id, rule_id} (add-rule, remove-rule).
type policyRuleRequest struct{ PolicyID, RuleID string }

func policyRuleFields(r *policyRuleRequest) []field {
	return []field{
		stringField("policy_id", true, 64, checkPolicyID, &r.PolicyID),
		stringField("rule_id", true, 36, checkUUIDField("rule_id"), &r.RuleID),
	}
}

func decodePolicyRule(body []byte) (*policyRuleRequest, error) {
	r := &policyRuleRequest{}
	return r, decodeObject(body, policyRuleFields(r))
}

// assignPolicyRequest is {user_id, policy_id}; policy_id "" unassigns.
type assignPolicyRequest struct{ UserID, PolicyID string }

func assignPolicyFields(r *assignPolicyRequest) []field {
	return []field{
		stringField("user_id", true, 128, checkUserID, &r.UserID),
		stringField("policy_id", true, 64, func(s string) error {
			if s == "" {
				return nil
			}
			return checkPolicyID(s)
		}, &r.PolicyID),
	}
}

func decodeAssignPolicy(body []byte) (*assignPolicyRequest, error) {
	r := &assignPolicyRequest{}
	return r, decodeObject(body, assignPolicyFields(r))
}

// operationListField decodes allowed_operations.
func operationListField(dst *[]policy.Operation) field {
	var ss []string
	f := stringListField("allowed_operations", false, &ss)
	inner := f.decode
	f.decode = func(raw []byte) error {
		if err := inner(raw); err != nil {
			return err
		}
		for _, s := range ss {
			*dst = append(*dst, policy.Operation(s))
		}
		return nil
	}
	return f
}

func createRuleFields(r *policy.Rule) []field {
	return []field{
		stringField("name", true, policy.MaxUserName, checkName, &r.Name),
		operationListField(&r.AllowedOperations),
		optIntField("max_n", &r.MaxN),
		optIntField("min_threshold", &r.MinThreshold),
		optIntField("max_threshold", &r.MaxThreshold),
		stringListField("allowed_relay_addresses", false, &r.AllowedRelayAddresses),
		optIntField("key_quota", &r.KeyQuota),
		optIntField("room_quota", &r.RoomQuota),
		optIntField("max_msg_bytes", &r.MaxMsgBytes),
		stringListField("msg_prefixes", false, &r.MsgPrefixes),
		strictObjectField("allow_backup_export", &backupExportBody{r: r}),
	}
}

// backupExportBody fills Rule.AllowBackupExport when the member is given.
type backupExportBody struct{ r *policy.Rule }

func (b *backupExportBody) UnmarshalJSON(raw []byte) error {
	var v struct {
		Mode            string `json:"mode"`
		RecipientPubkey string `json:"recipient_pubkey"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return err
	}
	b.r.AllowBackupExport = &policy.BackupExport{Mode: v.Mode, RecipientPubkey: v.RecipientPubkey}
	return nil
}

func decodeCreateRule(body []byte) (*policy.Rule, error) {
	r := &policy.Rule{}
	if err := decodeObject(body, createRuleFields(r)); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, badRequest("%s", err.Error())
	}
	return r, nil
}

func externalRuleFields(r *policy.Rule, e *policy.ExternalRule) []field {
	return []field{
		stringField("name", true, policy.MaxUserName, checkName, &r.Name),
		stringField("jwt_alg", true, 16, nil, &e.JWTAlg),
		stringField("pubkey", true, 4096, nil, &e.Pubkey),
		stringField("url", true, 2048, nil, &e.URL),
	}
}

func decodeExternalRule(body []byte) (*policy.Rule, error) {
	r := &policy.Rule{External: &policy.ExternalRule{}}
	if err := decodeObject(body, externalRuleFields(r, r.External)); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, badRequest("%s", err.Error())
	}
	return r, nil
}
