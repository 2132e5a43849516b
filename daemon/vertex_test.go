package daemon

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumd/quorumd/policy"
	"github.com/quorumd/quorumd/policy/rules"
)

// newVertexHarness serves the API with the real policy layer (the embedded
// file source behind policy.Authorizer and PolicyBackend, the real rule
// server client) in place of the in-memory policy.
func newVertexHarness(t *testing.T) (*harness, *policy.FileSource) {
	t.Helper()
	ctx := context.Background()
	src, err := policy.OpenFile(filepath.Join(t.TempDir(), "policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ops []policy.Operation
	for _, op := range policy.Operations() {
		if !op.IsAdmin() {
			ops = append(ops, op)
		}
	}
	if err := src.PutPolicy(ctx, policy.Policy{Name: "default", AllowedOperations: ops, MaxN: 16, MinThreshold: 1,
		MaxThreshold: 16, KeyQuota: 100, AllowedRelayAddresses: []string{"relay.allowed:7000"}}); err != nil {
		t.Fatal(err)
	}
	adminKey, _, err := policy.BootstrapAdmin(ctx, src, "admin")
	if err != nil {
		t.Fatal(err)
	}
	auth, err := policy.NewAuthorizer(src, policy.DefaultAuthorizerConfig())
	if err != nil {
		t.Fatal(err)
	}
	pb := &PolicyBackend{Authorizer: auth, DefaultPolicy: "default", Rules: &rules.Checker{Timeout: 2 * time.Second}}
	h := newHarnessWith(t, nil, func(h *harness, b *Backends) {
		b.Auth, b.Admin, b.Policies, b.Rules = pb, pb, pb, pb
		h.adminKey = adminKey
	})
	return h, src
}

type vertexCase struct {
	name, method, path, key, body string
	status                        int
	errType                       string
}

func (h *harness) replay(cases []vertexCase) []resp {
	h.t.Helper()
	out := make([]resp, len(cases))
	for i, c := range cases {
		r := h.do(c.method, c.path, c.key, c.body)
		if c.errType == "" {
			if r.status != 200 {
				h.t.Fatalf("%s: %d %s, want 200", c.name, r.status, r.raw)
			}
		} else {
			h.t.Run(c.name, func(t *testing.T) { wantErr(t, r, c.status, c.errType) })
		}
		out[i] = r
	}
	return out
}

// TestVertexReplay replays Vertex-shaped requests (as its API reference
// and client SDKs send them) against every endpoint this compatibility
// work touched, expecting 200 or the documented error.
func TestVertexReplay(t *testing.T) {
	h, _ := newVertexHarness(t)
	adm := h.adminKey

	// create-user: optional name, alias label, printable UTF-8.
	r := h.replay([]vertexCase{
		{"create-user Vertex example name", "GET", "/admin/create-user?name=ETH%20Custody%20User", adm, "", 0, ""},
		{"create-user label alias", "GET", "/admin/create-user?label=Z%C3%BCrich%20desk", adm, "", 0, ""},
		{"create-user without name", "GET", "/admin/create-user", adm, "", 0, ""},
		{"create-user second unnamed", "GET", "/admin/create-user", adm, "", 0, ""},
		{"create-user duplicate", "GET", "/admin/create-user?name=ETH%20Custody%20User", adm, "", 400, ErrTypeUserNameAlreadyExists},
		{"create-user duplicate via label", "GET", "/admin/create-user?label=ETH%20Custody%20User", adm, "", 400, ErrTypeUserNameAlreadyExists},
		{"create-user name and label differ", "GET", "/admin/create-user?name=a&label=b", adm, "", 400, ErrTypeBadRequestParams},
		{"create-user control character", "GET", "/admin/create-user?name=a%0Ab", adm, "", 400, ErrTypeBadRequestParams},
		{"create-user too long", "GET", "/admin/create-user?name=" + strings.Repeat("x", 129), adm, "", 400, ErrTypeBadRequestParams},
	})
	alice, aliceID := r[0].str("api_key"), r[0].str("user_id")
	bob, carol := r[1].str("api_key"), r[2].str("api_key")

	// Keys, then signing with Vertex's optional fields.
	privHex, _ := randomKeyHex(t)
	slots, pubkey := h.importQuorum([]string{alice, bob, carol}, 2, privHex)
	msg := hex.EncodeToString(bytes.Repeat([]byte{0x5a}, 32))
	signBoth := func(extra string) [2]resp {
		room := h.newRoom(alice, 2)
		var out [2]resp
		var wg sync.WaitGroup
		for j, p := range []struct {
			key string
			s   slot
		}{{alice, slots[0]}, {bob, slots[1]}} {
			wg.Go(func() {
				out[j] = h.do("POST", "/bip340/sign", p.key, fmt.Sprintf(`{"room_uuid":%q,"key_id":%q,"msg":%q%s}`, room, p.s.keyID, msg, extra))
			})
		}
		wg.Wait()
		return out
	}
	for _, extra := range []string{
		`,"derivation_path":[44,60,0,0,0],"extra_data":"7b22746f223a22307831227d","hash_algo":"none"`,
		`,"derivation_path":"m/44/60/0/0/0","extra_data":"","hash_algo":null`,
		`,"derivation_path":[]`,
	} {
		for _, res := range signBoth(extra) {
			h.must(res)
		}
	}
	if logs := h.logs.String(); !strings.Contains(logs, `"extra_data":"7b22746f223a22307831227d"`) || !strings.Contains(logs, `"hash_algo":"none"`) {
		t.Fatal("extra_data and hash_algo not in the audit line")
	}
	room := h.newRoom(alice, 2)
	signBody := func(extra string) string {
		return fmt.Sprintf(`{"room_uuid":%q,"key_id":%q,"msg":%q%s}`, room, slots[0].keyID, msg, extra)
	}
	deriveBody := func(path string) string {
		return fmt.Sprintf(`{"key_id":%q,"derivation_path":%s}`, slots[0].keyID, path)
	}
	r = h.replay([]vertexCase{
		{"sign hash_algo sha256", "POST", "/bip340/sign", alice, signBody(`,"hash_algo":"sha256"`), 400, ErrTypeBadRequestParams},
		{"sign hardened index in array", "POST", "/bip340/sign", alice, signBody(`,"derivation_path":[2147483648]`), 400, ErrTypeBadRequestParams},
		{"sign negative index", "POST", "/bip340/sign", alice, signBody(`,"derivation_path":[-1]`), 400, ErrTypeBadRequestParams},
		{"sign fractional index", "POST", "/bip340/sign", alice, signBody(`,"derivation_path":[1.5]`), 400, ErrTypeBadRequestParams},
		{"sign extra_data not hex", "POST", "/bip340/sign", alice, signBody(`,"extra_data":"zz"`), 400, ErrTypeBadRequestParams},
		{"sign unknown field stays rejected", "POST", "/bip340/sign", alice, signBody(`,"chain":"eth"`), 400, ErrTypeBadRequestParams},
		{"derive array path", "POST", "/bip340/derive-tweak-pubkey", alice, deriveBody(`[44,60,0,0,0]`), 0, ""},
		{"derive string path", "POST", "/bip340/derive-tweak-pubkey", alice, deriveBody(`"m/44/60/0/0/0"`), 0, ""},
		{"derive empty array", "POST", "/bip340/derive-tweak-pubkey", alice, deriveBody(`[]`), 0, ""},
		{"derive array of strings", "POST", "/bip340/derive-tweak-pubkey", alice, deriveBody(`["44"]`), 400, ErrTypeBadRequestParams},
	})
	if r[6].str("pubkey") != r[7].str("pubkey") || r[8].str("pubkey") != pubkey || r[6].str("pubkey") == pubkey {
		t.Fatalf("array and string paths disagree: %s / %s / %s", r[6].raw, r[7].raw, r[8].raw)
	}

	// list-all-system-keys carries Vertex's key-type enum.
	h.newSlot(carol) // a slot never keyed
	all := h.must(h.do("GET", "/admin/list-all-system-keys", adm, ""))
	types := map[string]int{}
	for _, recs := range all.body["keys_by_user"].(map[string]any) {
		for _, rec := range recs.([]any) {
			types[rec.(map[string]any)["key_type"].(string)]++
		}
	}
	if types["BIP340"] != 3 || types["NotInititalizedYet"] != 1 || len(types) != 2 {
		t.Fatalf("key types %v", types)
	}

	// Rooms in batches.
	r = h.replay([]vertexCase{
		{"batch-create-rooms sizes", "POST", "/batch-create-rooms", alice, `{"room_sizes":[2,3,3]}`, 0, ""},
		{"batch-create-rooms size and count", "POST", "/batch-create-rooms", alice, `{"room_size":2,"count":4}`, 0, ""},
		{"batch-create-rooms too many", "POST", "/batch-create-rooms", alice, `{"room_size":2,"count":65}`, 400, ErrTypeBatchTooLarge},
		{"batch-create-rooms too many sizes", "POST", "/batch-create-rooms", alice, `{"room_sizes":[` + strings.Repeat("2,", 64) + `2]}`, 400, ErrTypeBatchTooLarge},
		{"batch-create-rooms both forms", "POST", "/batch-create-rooms", alice, `{"room_sizes":[2],"room_size":2,"count":1}`, 400, ErrTypeBadRequestParams},
		{"batch-create-rooms bad size", "POST", "/batch-create-rooms", alice, `{"room_sizes":[2,0]}`, 400, ErrTypeBadNAndTParams},
		{"batch-create-rooms empty", "POST", "/batch-create-rooms", alice, `{"room_sizes":[]}`, 400, ErrTypeBadRequestParams},
	})
	if ids := r[0].body["room_uuids"].([]any); len(ids) != 3 || len(r[1].body["room_uuids"].([]any)) != 4 || ids[0] == ids[1] {
		t.Fatalf("room ids %s %s", r[0].raw, r[1].raw)
	}

	// Revoke by lookup id alone, then re-activate with generate-api-key.
	lookup := alice[:strings.IndexByte(alice, '.')]
	h.replay([]vertexCase{
		{"revoke by lookup id", "DELETE", "/admin/revoke-api-key", adm, fmt.Sprintf(`{"user_id":%q,"api_key":%q}`, aliceID, lookup), 0, ""},
		{"revoked key refused", "GET", "/bip340/create", alice, "", 401, ErrTypeAccessDenied},
		{"generate-api-key unknown user", "GET", "/admin/generate-api-key?user_id=00000000-0000-4000-8000-000000000000", adm, "", 400, ErrTypeUserIDNotExists},
		{"generate-api-key by a user", "GET", "/admin/generate-api-key?user_id=" + aliceID, bob, "", 400, ErrTypeYouHaveToBeAdmin},
		{"generate-api-key missing user_id", "GET", "/admin/generate-api-key", adm, "", 400, ErrTypeBadRequestParams},
	})
	if m := h.must(h.do("GET", "/metrics", "", "")).raw; !strings.Contains(m, "\nquorumd_policy_cache_hits_total ") || !strings.Contains(m, "\nquorumd_policy_source_fetches_total ") {
		t.Fatal("/metrics lacks the policy cache counters")
	}
	alice2 := h.must(h.do("GET", "/admin/generate-api-key?user_id="+aliceID, adm, "")).str("api_key")
	if rec := h.do("GET", "/bip340/keys/"+slots[0].keyID, alice2, ""); rec.status != 200 || rec.str("key_type") != "BIP340" {
		t.Fatalf("re-activated user: %s", rec.raw)
	}

	// The rest of DESIGN §2's core endpoints, as a Vertex client calls them.
	unnamedID := unnamedUser(h, adm)
	h.replay([]vertexCase{
		{"export-id", "GET", "/bip340/export-id/" + slots[0].keyID, alice2, "", 0, ""},
		{"keys of another user", "GET", "/bip340/keys/" + slots[0].keyID, bob, "", 400, ErrTypeKeyIDNotExists},
		{"create-room", "POST", "/create-room", bob, `{"room_size":2}`, 0, ""},
		{"create", "GET", "/bip340/create", bob, "", 0, ""},
		{"delete-user with keys", "DELETE", "/admin/delete-user?user_id=" + aliceID, adm, "", 400, ErrTypeUserHasAssociatedKeys},
		{"delete-key-share", "DELETE", "/bip340/delete-key-share/" + slots[0].keyID, alice2, "", 0, ""},
		{"delete-user", "DELETE", "/admin/delete-user?user_id=" + unnamedID, adm, "", 0, ""},
		{"delete-user again", "DELETE", "/admin/delete-user?user_id=" + unnamedID, adm, "", 400, ErrTypeUserIDNotExists},
	})
}

// unnamedUser creates a user without a name and returns its id.
func unnamedUser(h *harness, adm string) string {
	return h.must(h.do("GET", "/admin/create-user", adm, "")).str("user_id")
}

// TestVertexPolicies drives the /admin/policies/... family with Vertex's
// shapes and every err_type it documents.
func TestVertexPolicies(t *testing.T) {
	h, _ := newVertexHarness(t)
	adm := h.adminKey
	userKey := h.newUser("dora")
	users := h.must(h.do("GET", "/admin/create-user?name=erin", adm, ""))
	erinKey, erinID := users.str("api_key"), users.str("user_id")
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(edPriv.Public())
	edPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))

	r := h.replay([]vertexCase{
		{"create-rule", "POST", "/admin/policies/create-rule", adm, `{"name":"signing","allowed_operations":["create_key","create_room","sign","get_key","export_id","import_key_recipient","import_key_importer","derive_tweak_pubkey","delete_key"],"max_n":5,"min_threshold":1,"max_threshold":5,"key_quota":10,"room_quota":50,"max_msg_bytes":64}`, 0, ""},
		{"create-rule backup export", "POST", "/admin/policies/create-rule", adm, `{"name":"backups","allow_backup_export":{"mode":"encrypted","recipient_pubkey":"` + strings.Repeat("ab", 32) + `"}}`, 0, ""},
		{"add-external-rule", "POST", "/admin/policies/add-external-rule", adm, fmt.Sprintf(`{"jwt_alg":"EdDSA","name":"ext","pubkey":%q,"url":"http://127.0.0.1:1/check"}`, edPEM), 0, ""},
		{"create-rule duplicate name", "POST", "/admin/policies/create-rule", adm, `{"name":"signing"}`, 400, ErrTypeUniqueViolation},
		{"create-rule admin op", "POST", "/admin/policies/create-rule", adm, `{"name":"x","allowed_operations":["create_user"]}`, 400, ErrTypeBadRequestParams},
		{"create-rule unknown member", "POST", "/admin/policies/create-rule", adm, `{"name":"x","max_m":1}`, 400, ErrTypeBadRequestParams},
		{"create-rule backup mode", "POST", "/admin/policies/create-rule", adm, `{"name":"x","allow_backup_export":{"mode":"cloud"}}`, 400, ErrTypeBadRequestParams},
		{"add-external-rule bad alg", "POST", "/admin/policies/add-external-rule", adm, fmt.Sprintf(`{"jwt_alg":"HS256","name":"e2","pubkey":%q,"url":"http://127.0.0.1:1"}`, edPEM), 400, ErrTypeBadRequestParams},
		{"add-external-rule missing url", "POST", "/admin/policies/add-external-rule", adm, `{"jwt_alg":"EdDSA","name":"e3","pubkey":"00"}`, 400, ErrTypeBadRequestParams},
		{"create-rule by a user", "POST", "/admin/policies/create-rule", userKey, `{"name":"y"}`, 400, ErrTypeYouHaveToBeAdmin},
	})
	signing, backups, ext := r[0].str("rule_id"), r[1].str("rule_id"), r[2].str("rule_id")
	if !validUUID(signing) || !validUUID(backups) || !validUUID(ext) {
		t.Fatalf("rule ids %q %q %q", signing, backups, ext)
	}
	r = h.replay([]vertexCase{
		{"create-policy", "POST", "/admin/policies/create-policy", adm, fmt.Sprintf(`{"name":"Custody policy","rules":[%q]}`, signing), 0, ""},
		{"create-policy duplicate", "POST", "/admin/policies/create-policy", adm, `{"name":"Custody policy","rules":[]}`, 400, ErrTypeUniqueViolation},
		{"create-policy unknown rule", "POST", "/admin/policies/create-policy", adm, `{"name":"p2","rules":["00000000-0000-4000-8000-000000000000"]}`, 400, ErrTypeRuleNotFound},
		{"create-policy no name", "POST", "/admin/policies/create-policy", adm, `{"rules":[]}`, 400, ErrTypeBadRequestParams},
		{"list-policies", "GET", "/admin/policies/list-policies", adm, "", 0, ""},
		{"list-rules", "GET", "/admin/policies/list-rules", adm, "", 0, ""},
		{"get-rule", "GET", "/admin/policies/get-rule/" + ext, adm, "", 0, ""},
		{"get-rule unknown", "GET", "/admin/policies/get-rule/00000000-0000-4000-8000-000000000000", adm, "", 400, ErrTypeRuleNotFound},
		{"get-policy unknown", "GET", "/admin/policies/get-policy/00000000-0000-4000-8000-000000000000", adm, "", 400, ErrTypePolicyNotFound},
	})
	pid := r[0].str("policy_id")
	if got := r[4].body["policies"].([]any); len(got) != 2 { // "default" and the new one
		t.Fatalf("list-policies %s", r[4].raw)
	}
	if got := r[5].body["rules"].([]any); len(got) != 3 {
		t.Fatalf("list-rules %s", r[5].raw)
	}
	if r[6].str("rule_id") != ext || r[6].body["external"].(map[string]any)["jwt_alg"] != "EdDSA" {
		t.Fatalf("get-rule %s", r[6].raw)
	}
	pr := func(p, rule string) string { return fmt.Sprintf(`{"policy_id":%q,"rule_id":%q}`, p, rule) }
	r = h.replay([]vertexCase{
		{"add-rule", "POST", "/admin/policies/add-rule", adm, pr(pid, backups), 0, ""},
		{"add-rule unknown rule", "POST", "/admin/policies/add-rule", adm, pr(pid, "00000000-0000-4000-8000-000000000000"), 400, ErrTypeRuleNotFound},
		{"add-rule unknown policy", "POST", "/admin/policies/add-rule", adm, pr("00000000-0000-4000-8000-000000000000", backups), 400, ErrTypePolicyNotFound},
		{"add-rule to a flat policy", "POST", "/admin/policies/add-rule", adm, pr("default", backups), 400, ErrTypeBadRequestParams},
		{"remove-rule not in policy", "POST", "/admin/policies/remove-rule", adm, pr(pid, ext), 400, ErrTypeRuleNotInPolicy},
		{"remove-rule", "POST", "/admin/policies/remove-rule", adm, pr(pid, backups), 0, ""},
		{"get-policy", "GET", "/admin/policies/get-policy/" + pid, adm, "", 0, ""},
		{"assign-policy", "POST", "/admin/policies/assign-policy", adm, fmt.Sprintf(`{"user_id":%q,"policy_id":%q}`, erinID, pid), 0, ""},
		{"assign-policy unknown user", "POST", "/admin/policies/assign-policy", adm, fmt.Sprintf(`{"user_id":"00000000-0000-4000-8000-000000000000","policy_id":%q}`, pid), 400, ErrTypeUserIDNotExists},
		{"assign-policy unknown policy", "POST", "/admin/policies/assign-policy", adm, fmt.Sprintf(`{"user_id":%q,"policy_id":"00000000-0000-4000-8000-000000000000"}`, erinID), 400, ErrTypePolicyNotFound},
		{"delete-rule in use", "DELETE", "/admin/policies/delete-rule/" + signing, adm, "", 400, ErrTypeRuleInUse},
		{"delete-rule", "DELETE", "/admin/policies/delete-rule/" + backups, adm, "", 0, ""},
		{"delete-rule again", "DELETE", "/admin/policies/delete-rule/" + backups, adm, "", 400, ErrTypeRuleNotFound},
		{"delete-policy in use by users", "DELETE", "/admin/policies/delete-policy/" + pid, adm, "", 400, ErrTypePolicyInUseByUsers},
	})
	if got := r[6]; got.str("name") != "Custody policy" || len(got.body["rules"].([]any)) != 1 {
		t.Fatalf("get-policy %s", got.raw)
	}
	// The assigned policy governs at once (this replica's cache dropped).
	h.must(h.do("GET", "/bip340/create", erinKey, ""))
	room := h.newRoom(erinKey, 2)
	long := hex.EncodeToString(make([]byte, 65))
	wantErr(t, h.do("POST", "/bip340/sign", erinKey, fmt.Sprintf(`{"room_uuid":%q,"key_id":"11111111-1111-4111-8111-111111111111","msg":%q}`, room, long)), 400, ErrTypePolicyValidationFailed)
	h.replay([]vertexCase{
		{"delete-policy in use by keys", "DELETE", "/admin/policies/delete-policy/" + pid, adm, "", 400, ErrTypePolicyInUseByKeys},
		{"unassign", "POST", "/admin/policies/assign-policy", adm, fmt.Sprintf(`{"user_id":%q,"policy_id":""}`, erinID), 0, ""},
		{"delete-policy", "DELETE", "/admin/policies/delete-policy/" + pid, adm, "", 0, ""},
		{"delete-policy again", "DELETE", "/admin/policies/delete-policy/" + pid, adm, "", 400, ErrTypePolicyNotFound},
	})
}

// TestExternalRuleGatesSign: with an external rule in the caller's policy,
// a signature happens only on the rule server's approval; a deny or a
// silent rule server is policy_validation_failed before any ceremony.
func TestExternalRuleGatesSign(t *testing.T) {
	h, _ := newVertexHarness(t)
	adm := h.adminKey
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ex := &rules.PrefixServer{Key: edPriv, Prefixes: [][]byte{{0x5a, 0x5a}}}
	var calls atomic.Int32
	var silent atomic.Bool
	rs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if silent.Load() {
			io.Copy(io.Discard, r.Body) // the server notices the client leaving only after the body
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
		ex.ServeHTTP(w, r)
	}))
	defer rs.Close()
	der, _ := x509.MarshalPKIXPublicKey(edPriv.Public())
	edPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))

	var users, ids []string
	for _, name := range []string{"u1", "u2"} {
		r := h.must(h.do("GET", "/admin/create-user?name="+name, adm, ""))
		users, ids = append(users, r.str("api_key")), append(ids, r.str("user_id"))
	}
	privHex, _ := randomKeyHex(t)
	slots, _ := h.importQuorum(users, 2, privHex)

	ops := h.must(h.do("POST", "/admin/policies/create-rule", adm, `{"name":"ops","allowed_operations":["sign","create_room"],"max_n":4}`)).str("rule_id")
	ext := h.must(h.do("POST", "/admin/policies/add-external-rule", adm, fmt.Sprintf(`{"jwt_alg":"EdDSA","name":"prefix allowlist","pubkey":%q,"url":%q}`, edPEM, rs.URL))).str("rule_id")
	pid := h.must(h.do("POST", "/admin/policies/create-policy", adm, fmt.Sprintf(`{"name":"gated","rules":[%q,%q]}`, ops, ext))).str("policy_id")
	for _, id := range ids {
		h.must(h.do("POST", "/admin/policies/assign-policy", adm, fmt.Sprintf(`{"user_id":%q,"policy_id":%q}`, id, pid)))
	}

	sign := func(msg []byte) [2]resp {
		room := h.newRoom(users[0], 2)
		var out [2]resp
		var wg sync.WaitGroup
		for i := range users {
			wg.Go(func() {
				out[i] = h.do("POST", "/bip340/sign", users[i], fmt.Sprintf(`{"room_uuid":%q,"key_id":%q,"msg":%q,"extra_data":"01"}`, room, slots[i].keyID, hex.EncodeToString(msg)))
			})
		}
		wg.Wait()
		return out
	}
	ok := append([]byte{0x5a, 0x5a}, make([]byte, 30)...)
	for _, r := range sign(ok) {
		h.must(r)
		if sb, _ := hex.DecodeString(r.str("signature")); len(sb) != 64 {
			t.Fatalf("signature %s", r.raw)
		}
	}
	if calls.Load() != 2 {
		t.Fatalf("rule server called %d times, want once per party", calls.Load())
	}
	denied := append([]byte{0x00}, make([]byte, 31)...)
	start := time.Now()
	for _, r := range sign(denied) {
		wantErr(t, r, 400, ErrTypePolicyValidationFailed)
	}
	silent.Store(true)
	for _, r := range sign(ok) {
		wantErr(t, r, 400, ErrTypePolicyValidationFailed)
	}
	if d := time.Since(start); d > 2*h.cfg.Ceremony.Timeout+5*time.Second {
		t.Fatalf("refusals took %s", d)
	}
	if !strings.Contains(h.logs.String(), `"event":"key.sign_refused"`) {
		t.Fatal("refusal not audited")
	}
}
