package policy

import (
	"context"
	"slices"
	"sync"
	"testing"
)

func intp(v int) *int { return &v }

// TestContractPolicyAdmin: Vertex's policy model (policies as named sets of
// rules) behaves alike on every source, with every err_type of DESIGN §2
// where it applies, and the Authorizer decides by the folded rules.
func TestContractPolicyAdmin(t *testing.T) {
	forEachSource(t, func(t *testing.T, k *kit) {
		ctx := context.Background()
		a := newTestAuthorizer(t, k.src, nil)
		ops := Rule{Name: "ops", AllowedOperations: []Operation{OpCreateRoom, OpCreateKey, OpImportKeyImporter, OpSign}, KeyQuota: intp(3)}
		bounds := Rule{Name: "n and t", MaxN: intp(4), MinThreshold: intp(2), MaxThreshold: intp(3)}
		shape := Rule{Name: "message shape", MaxMsgBytes: intp(40), MsgPrefixes: []string{"beef", "cafe"}}
		rooms := Rule{Name: "rooms", RoomQuota: intp(2), AllowedRelayAddresses: []string{"relay.example:7443"},
			AllowBackupExport: &BackupExport{Mode: "encrypted", RecipientPubkey: "02" + "11223344556677889900aabbccddeeff11223344556677889900aabbccddeeff"}}

		for _, bad := range []Rule{
			{Name: ""},
			{Name: "admin op", AllowedOperations: []Operation{OpCreateUser}},
			{Name: "unknown op", AllowedOperations: []Operation{"fly"}},
			{Name: "neg", MaxN: intp(-1)},
			{Name: "t", MinThreshold: intp(3), MaxThreshold: intp(2)},
			{Name: "relay", AllowedRelayAddresses: []string{"nohost"}},
			{Name: "prefix", MsgPrefixes: []string{"xyz"}},
			{Name: "backup", AllowBackupExport: &BackupExport{Mode: "encrypted"}},
			{Name: "backup mode", AllowBackupExport: &BackupExport{Mode: "cloud"}},
			{Name: "ext alg", External: &ExternalRule{JWTAlg: "HS256", URL: "http://127.0.0.1:1", Pubkey: "00"}},
			{Name: "ext url", External: &ExternalRule{JWTAlg: "EdDSA", URL: "ftp://x", Pubkey: "00"}},
		} {
			if _, err := k.src.CreateRule(ctx, bad); errType(err) != ErrTypeBadRequestParams {
				t.Fatalf("rule %q accepted: %v", bad.Name, err)
			}
		}
		var ids []string
		for _, r := range []Rule{ops, bounds, shape, rooms} {
			got, err := k.src.CreateRule(ctx, r)
			if err != nil || !validUserID(got.ID) || got.CreatedAt.IsZero() {
				t.Fatalf("create rule %q: %+v %v", r.Name, got, err)
			}
			ids = append(ids, got.ID)
		}
		if _, err := k.src.CreateRule(ctx, Rule{Name: "ops"}); errType(err) != ErrTypeUniqueViolation {
			t.Fatalf("duplicate rule name: %v", err)
		}
		if rs, err := k.src.ListRules(ctx); err != nil || len(rs) != 4 {
			t.Fatalf("list rules: %d %v", len(rs), err)
		}
		if r, err := k.src.GetRule(ctx, ids[1]); err != nil || r.Name != "n and t" || *r.MaxN != 4 {
			t.Fatalf("get rule: %+v %v", r, err)
		}
		for _, id := range []string{"00000000-0000-4000-8000-000000000000", "../x"} {
			if _, err := k.src.GetRule(ctx, id); errType(err) != ErrTypeRuleNotFound {
				t.Fatalf("get absent rule %s: %v", id, err)
			}
		}

		if _, err := k.src.CreatePolicy(ctx, "custody", []string{ids[0], "00000000-0000-4000-8000-000000000000"}); errType(err) != ErrTypeRuleNotFound {
			t.Fatalf("policy with unknown rule: %v", err)
		}
		pol, err := k.src.CreatePolicy(ctx, "custody", ids[:2])
		if err != nil || !validUserID(pol.Name) || pol.DisplayName != "custody" {
			t.Fatalf("create policy: %+v %v", pol, err)
		}
		if _, err := k.src.CreatePolicy(ctx, "custody", nil); errType(err) != ErrTypeUniqueViolation {
			t.Fatalf("duplicate policy name: %v", err)
		}
		if err := k.admin.PutPolicy(ctx, signerPolicy); err != nil {
			t.Fatal(err)
		}
		if _, err := k.src.CreatePolicy(ctx, "signer", nil); errType(err) != ErrTypeUniqueViolation {
			t.Fatalf("name of a flat policy: %v", err)
		}
		ps, err := k.src.ListPolicies(ctx)
		if err != nil || len(ps) != 2 || !slices.ContainsFunc(ps, func(p Policy) bool { return p.Name == pol.Name && slices.Equal(p.Rules, ids[:2]) }) {
			t.Fatalf("list policies: %+v %v", ps, err)
		}
		if _, err := k.src.PolicyRecord(ctx, "00000000-0000-4000-8000-000000000000"); errType(err) != ErrTypePolicyNotFound {
			t.Fatalf("absent policy: %v", err)
		}
		if err := k.src.AddPolicyRules(ctx, "signer", ids[2:3]); errType(err) != ErrTypeBadRequestParams {
			t.Fatalf("rules added to a flat policy: %v", err)
		}

		key, uid := mustCreate(t, k.src, "carol", false, "")
		if err := a.AssignPolicy(ctx, uid, "00000000-0000-4000-8000-000000000000"); errType(err) != ErrTypePolicyNotFound {
			t.Fatalf("assign unknown policy: %v", err)
		}
		if err := a.AssignPolicy(ctx, "00000000-0000-4000-8000-000000000000", pol.Name); errType(err) != ErrTypeUserIDNotExists {
			t.Fatalf("assign to unknown user: %v", err)
		}
		if err := a.AssignPolicy(ctx, uid, pol.Name); err != nil {
			t.Fatal(err)
		}
		decide := func(op Operation, p Params) string {
			t.Helper()
			_, err := a.Authorize(ctx, key, op, p)
			return errType(err)
		}
		msg := []byte{0xbe, 0xef, 1, 2}
		for _, tc := range []struct {
			op   Operation
			p    Params
			want string
		}{
			{OpImportKeyImporter, Params{N: 4, Threshold: 2}, ""},
			{OpImportKeyImporter, Params{N: 5, Threshold: 2}, ErrTypePolicyValidationFailed},
			{OpImportKeyImporter, Params{N: 3, Threshold: 1}, ErrTypePolicyValidationFailed},
			{OpImportKeyRecipient, Params{N: 3, Threshold: 2}, ErrTypePolicyValidationFailed}, // not granted
			{OpCreateKey, Params{KeyCount: 2}, ""},
			{OpCreateKey, Params{KeyCount: 3}, ErrTypePolicyValidationFailed},
			{OpSign, Params{Msg: []byte{0}}, ""}, // no shape rule yet
			{OpSign, Params{RelayAddress: "relay.example:7443"}, ErrTypePolicyValidationFailed},
		} {
			if got := decide(tc.op, tc.p); got != tc.want {
				t.Errorf("before add: %s %+v: %q, want %q", tc.op, tc.p, got, tc.want)
			}
		}
		if err := a.AddPolicyRules(ctx, pol.Name, ids[2:]); err != nil {
			t.Fatal(err)
		}
		if err := a.AddPolicyRules(ctx, pol.Name, ids[2:3]); err != nil { // idempotent
			t.Fatal(err)
		}
		if p, err := k.src.GetPolicy(ctx, pol.Name); err != nil || p.BackupExport == nil || p.BackupExport.Mode != "encrypted" || p.RoomQuota != 2 {
			t.Fatalf("folded policy: %+v %v", p, err)
		}
		if b, err := a.BackupExport(ctx, uid); err != nil || b == nil || b.RecipientPubkey != rooms.AllowBackupExport.RecipientPubkey {
			t.Fatalf("backup export setting: %+v %v", b, err)
		}
		for _, tc := range []struct {
			op   Operation
			p    Params
			want string
		}{
			{OpSign, Params{Msg: msg}, ""},
			{OpSign, Params{Msg: []byte{0xca, 0xfe}}, ""},
			{OpSign, Params{Msg: []byte{0}}, ErrTypePolicyValidationFailed},
			{OpSign, Params{Msg: append([]byte{0xbe, 0xef}, make([]byte, 40)...)}, ErrTypePolicyValidationFailed},
			{OpSign, Params{Msg: msg, RelayAddress: "relay.example:7443"}, ""},
			{OpCreateRoom, Params{N: 3, Rooms: 2}, ""},
			{OpCreateRoom, Params{N: 3}, ErrTypePolicyValidationFailed}, // room quota: 2 per minute
		} {
			if got := decide(tc.op, tc.p); got != tc.want {
				t.Errorf("after add: %s %+v: %q, want %q", tc.op, tc.p, got, tc.want)
			}
		}

		if err := k.src.RemovePolicyRule(ctx, pol.Name, "00000000-0000-4000-8000-000000000000"); errType(err) != ErrTypeRuleNotFound {
			t.Fatalf("remove unknown rule: %v", err)
		}
		extra, err := k.src.CreateRule(ctx, Rule{Name: "unused", MaxN: intp(9)})
		if err != nil {
			t.Fatal(err)
		}
		if err := k.src.RemovePolicyRule(ctx, pol.Name, extra.ID); errType(err) != ErrTypeRuleNotInPolicy {
			t.Fatalf("remove rule not in policy: %v", err)
		}
		if err := k.src.RemovePolicyRule(ctx, "00000000-0000-4000-8000-000000000000", ids[0]); errType(err) != ErrTypePolicyNotFound {
			t.Fatalf("remove from unknown policy: %v", err)
		}
		if err := k.src.DeleteRule(ctx, ids[2]); errType(err) != ErrTypeRuleInUse {
			t.Fatalf("delete rule in use: %v", err)
		}
		if err := a.RemovePolicyRule(ctx, pol.Name, ids[2]); err != nil {
			t.Fatal(err)
		}
		if got := decide(OpSign, Params{Msg: []byte{0}}); got != "" {
			t.Fatalf("shape rule removed, sign: %q", got)
		}
		if err := k.src.DeleteRule(ctx, ids[2]); err != nil {
			t.Fatal(err)
		}
		if err := k.src.DeleteRule(ctx, ids[2]); errType(err) != ErrTypeRuleNotFound {
			t.Fatalf("delete rule twice: %v", err)
		}
		if _, err := k.src.CreateRule(ctx, shape); err != nil { // its name is free again
			t.Fatalf("re-create deleted rule's name: %v", err)
		}

		if err := k.src.DeletePolicy(ctx, pol.Name); errType(err) != ErrTypePolicyInUseByUsers {
			t.Fatalf("delete policy in use: %v", err)
		}
		if err := a.AssignPolicy(ctx, uid, ""); err != nil {
			t.Fatal(err)
		}
		if got := decide(OpSign, Params{}); got != ErrTypePolicyValidationFailed {
			t.Fatalf("unassigned user signs: %q", got)
		}
		if b, err := a.BackupExport(ctx, uid); err != nil || b != nil {
			t.Fatalf("backup export without a policy: %+v %v", b, err)
		}
		if err := a.DeletePolicy(ctx, pol.Name); err != nil {
			t.Fatal(err)
		}
		if err := k.src.DeletePolicy(ctx, pol.Name); errType(err) != ErrTypePolicyNotFound {
			t.Fatalf("delete policy twice: %v", err)
		}
		if _, err := k.src.CreatePolicy(ctx, "custody", nil); err != nil {
			t.Fatalf("re-create deleted policy's name: %v", err)
		}
	})
}

// TestContractAPIKeys: revocation by lookup id alone, and further keys
// (Vertex's generate-api-key) that re-activate a user.
func TestContractAPIKeys(t *testing.T) {
	forEachSource(t, func(t *testing.T, k *kit) {
		ctx := context.Background()
		if err := k.admin.PutPolicy(ctx, signerPolicy); err != nil {
			t.Fatal(err)
		}
		a := newTestAuthorizer(t, k.src, nil)
		key, uid := mustCreate(t, k.src, "dave", false, "signer")
		_, other := mustCreate(t, k.src, "erin", false, "signer")
		if err := a.RevokeAPIKey(ctx, other, lookupOf(key)); errType(err) != ErrTypeAPIKeyNotFound {
			t.Fatalf("revoke another user's key by lookup id: %v", err)
		}
		if err := a.RevokeAPIKey(ctx, uid, lookupOf(key)); err != nil {
			t.Fatalf("revoke by lookup id: %v", err)
		}
		if _, err := a.Authorize(ctx, key, OpSign, Params{}); errType(err) != ErrTypeAccessDenied {
			t.Fatalf("revoked key: %v", err)
		}
		if _, err := a.GenerateAPIKey(ctx, "00000000-0000-4000-8000-000000000000"); errType(err) != ErrTypeUserIDNotExists {
			t.Fatalf("generate for unknown user: %v", err)
		}
		key2, err := a.GenerateAPIKey(ctx, uid)
		if err != nil {
			t.Fatal(err)
		}
		if u, err := a.Authorize(ctx, key2, OpSign, Params{}); err != nil || u.ID != uid {
			t.Fatalf("new key: %+v %v", u, err)
		}
		if _, err := a.Authorize(ctx, key, OpSign, Params{}); errType(err) != ErrTypeAccessDenied {
			t.Fatalf("old key after generate: %v", err)
		}
		if err := k.src.DeleteUser(ctx, uid); err != nil {
			t.Fatal(err)
		}
		if _, err := k.src.LookupAPIKey(ctx, lookupOf(key2)); !isNotFound(err) {
			t.Fatalf("generated key outlives its user: %v", err)
		}
	})
}

// TestContractPolicyRaces: racing add-rule / delete-rule and assign /
// delete-policy never leave a policy holding a deleted rule or a user
// holding a deleted policy.
func TestContractPolicyRaces(t *testing.T) {
	forEachSource(t, func(t *testing.T, k *kit) {
		ctx := context.Background()
		_, uid := mustCreate(t, k.src, "racer", false, "")
		for i := range 8 {
			r, err := k.src.CreateRule(ctx, Rule{Name: "r" + string(rune('a'+i)), MaxN: intp(2)})
			if err != nil {
				t.Fatal(err)
			}
			p, err := k.src.CreatePolicy(ctx, "p"+string(rune('a'+i)), nil)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			wg.Go(func() { k.src.AddPolicyRules(ctx, p.Name, []string{r.ID}) })
			wg.Go(func() { k.admin.DeleteRule(ctx, r.ID) })
			wg.Go(func() { k.src.AssignPolicy(ctx, uid, p.Name) })
			wg.Go(func() { k.admin.DeletePolicy(ctx, p.Name) })
			wg.Wait()
			if got, err := k.src.PolicyRecord(ctx, p.Name); err == nil && slices.Contains(got.Rules, r.ID) {
				if _, err := k.src.GetRule(ctx, r.ID); err != nil {
					t.Fatalf("round %d: policy holds deleted rule: %v", i, err)
				}
			}
			if u, err := k.src.GetUser(ctx, uid); err != nil {
				t.Fatal(err)
			} else if u.Policy != "" {
				if _, err := k.src.PolicyRecord(ctx, u.Policy); err != nil {
					t.Fatalf("round %d: user holds deleted policy: %v", i, err)
				}
			}
		}
	})
}
