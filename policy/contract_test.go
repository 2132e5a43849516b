package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// kit is one source under test: the daemon's view (src) and an operator's
// or another replica's view (admin) of the same data.
type kit struct {
	name  string
	src   Source
	admin Source
	env   *vaultEnv // nil for the file source
	path  string    // the file source's file
}

// forEachSource runs body against the file source, the in-process Vault
// server and, when configured, a real Vault/OpenBao server.
func forEachSource(t *testing.T, body func(t *testing.T, k *kit)) {
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		p := filepath.Join(t.TempDir(), "policy.json")
		src, err := OpenFile(p)
		if err != nil {
			t.Fatal(err)
		}
		admin, err := OpenFile(p)
		if err != nil {
			t.Fatal(err)
		}
		body(t, &kit{name: "file", src: src, admin: admin, path: p})
	})
	for _, target := range vaultTargets(t) {
		t.Run(target.name, func(t *testing.T) {
			t.Parallel()
			e := newVaultEnv(t, target)
			body(t, &kit{name: target.name, src: e.approleSource(t, "1h", "2h", nil), admin: e.adminSource(t), env: e})
		})
	}
}

// writeRawPolicy stores a policy record as given, bypassing validation.
func (k *kit) writeRawPolicy(t *testing.T, name string, rec map[string]any) {
	t.Helper()
	if k.env != nil {
		k.env.writeRaw(t, "policies/"+name, rec)
		return
	}
	k.editFile(t, func(m map[string]any) { m["policies"].(map[string]any)[name] = rec })
}

// deleteRawPolicy removes a policy behind the source's back.
func (k *kit) deleteRawPolicy(t *testing.T, name string) {
	t.Helper()
	if k.env != nil {
		if _, err := k.env.root.Logical().Delete(k.env.mount + "/metadata/" + k.env.prefix + "/policies/" + name); err != nil {
			t.Fatal(err)
		}
		return
	}
	k.editFile(t, func(m map[string]any) { delete(m["policies"].(map[string]any), name) })
}

// editFile edits the file source's JSON in place, as an operator would.
func (k *kit) editFile(t *testing.T, edit func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(k.path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func newTestAuthorizer(t *testing.T, src Source, clock *fakeClock) *Authorizer {
	t.Helper()
	a, err := NewAuthorizer(src, DefaultAuthorizerConfig())
	if err != nil {
		t.Fatal(err)
	}
	if clock != nil {
		a.now = clock.Now
	}
	return a
}

var signerPolicy = Policy{
	Name: "signer",
	AllowedOperations: []Operation{OpCreateRoom, OpCreateKey, OpImportKeyImporter, OpImportKeyRecipient,
		OpSign, OpDeriveTweakPubkey, OpExportID, OpGetKey, OpDeleteKey},
	MaxN: 5, MinThreshold: 2, MaxThreshold: 3,
	AllowedRelayAddresses: []string{"relay.example:7443"},
	KeyQuota:              2,
}

func mustCreate(t *testing.T, src Source, name string, admin bool, policy string) (string, string) {
	t.Helper()
	key, id, err := src.CreateUser(context.Background(), name, admin, policy)
	if err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
	return key, id
}

func lookupOf(key string) string { return key[:lookupIDLen] }

// otherSecret returns key with a different, well-formed secret.
func otherSecret(key string) string {
	b := []byte(key)
	if b[len(b)-1] == 'A' {
		b[len(b)-1] = 'B'
	} else {
		b[len(b)-1] = 'A'
	}
	return string(b)
}

func TestContractAdminWrites(t *testing.T) {
	forEachSource(t, func(t *testing.T, k *kit) {
		ctx := context.Background()
		if _, _, err := k.src.CreateUser(ctx, "alice", false, "signer"); errType(err) != ErrTypePolicyNotFound {
			t.Fatalf("unknown policy: %v", err)
		}
		for _, bad := range []string{strings.Repeat("x", MaxUserName+1), "tab\there", "nul\x00", "bad utf8 \xff", "zw\u200bsp"} {
			if _, _, err := k.src.CreateUser(ctx, bad, false, ""); errType(err) != ErrTypeBadRequestParams {
				t.Fatalf("name %q: %v", bad, err)
			}
		}
		// Vertex's names: printable UTF-8 up to 128 bytes, optional.
		for _, name := range []string{"ETH Custody User", "a/b", "..", "Zürich ops ✓", strings.Repeat("é", MaxUserName/2)} {
			_, uid := mustCreate(t, k.src, name, false, "")
			if _, _, err := k.src.CreateUser(ctx, name, false, ""); errType(err) != ErrTypeUserNameAlreadyExists {
				t.Fatalf("duplicate name %q: %v", name, err)
			}
			if u, err := k.src.GetUser(ctx, uid); err != nil || u.Name != name {
				t.Fatalf("user %q: %+v %v", name, u, err)
			}
			if err := k.src.DeleteUser(ctx, uid); err != nil {
				t.Fatal(err)
			}
			_, uid = mustCreate(t, k.src, name, false, "") // the name is free again
			if err := k.src.DeleteUser(ctx, uid); err != nil {
				t.Fatal(err)
			}
		}
		for range 2 { // unnamed users do not collide
			_, uid := mustCreate(t, k.src, "", false, "")
			if err := k.src.DeleteUser(ctx, uid); err != nil {
				t.Fatal(err)
			}
		}
		if err := k.admin.PutPolicy(ctx, signerPolicy); err != nil {
			t.Fatal(err)
		}
		if err := k.admin.PutPolicy(ctx, Policy{Name: "bad", AllowedOperations: []Operation{OpCreateUser}}); errType(err) != ErrTypeBadRequestParams {
			t.Fatalf("invalid policy stored: %v", err)
		}
		got, err := k.src.GetPolicy(ctx, "signer")
		if err != nil || got.MaxN != 5 || !slices.Equal(got.AllowedOperations, signerPolicy.AllowedOperations) {
			t.Fatalf("get policy: %+v %v", got, err)
		}

		key, id := mustCreate(t, k.src, "alice", false, "signer")
		if _, _, ok := parseAPIKey(key); !ok || !validUserID(id) {
			t.Fatalf("bad key or id: %q", id)
		}
		if _, _, err := k.src.CreateUser(ctx, "alice", true, ""); errType(err) != ErrTypeUserNameAlreadyExists {
			t.Fatalf("duplicate name: %v", err)
		}
		u, err := k.src.GetUser(ctx, id)
		if err != nil || u.Name != "alice" || u.Admin || u.Policy != "signer" || u.ID != id || u.CreatedAt.IsZero() {
			t.Fatalf("get user: %+v %v", u, err)
		}
		rec, err := k.src.LookupAPIKey(ctx, lookupOf(key))
		want := sha256.Sum256([]byte(key[lookupIDLen+1:]))
		if err != nil || rec.UserID != id || rec.SecretSHA256 != hex.EncodeToString(want[:]) || rec.Revoked {
			t.Fatalf("api key record: %+v %v", rec, err)
		}
		for _, f := range []func() error{
			func() error { _, err := k.src.LookupAPIKey(ctx, "0123456789abcdef"); return err },
			func() error { _, err := k.src.LookupAPIKey(ctx, "../users"); return err },
			func() error { _, err := k.src.GetUser(ctx, "00000000-0000-4000-8000-000000000000"); return err },
			func() error { _, err := k.src.GetUser(ctx, "not-a-uuid"); return err },
			func() error { _, err := k.src.GetPolicy(ctx, "nope"); return err },
		} {
			if err := f(); !errors.Is(err, ErrNotFound) {
				t.Fatalf("absent record: %v, want ErrNotFound", err)
			}
		}

		keyB, idB := mustCreate(t, k.src, "bob", true, "")
		users, err := k.src.ListUsers(ctx)
		if err != nil || len(users) != 2 || users[0].ID != id || users[1].ID != idB || !users[1].Admin {
			t.Fatalf("list users: %+v %v", users, err)
		}

		revokeCases := []struct {
			name, userID, key, want string
		}{
			{"other user's key", idB, key, ErrTypeAPIKeyNotFound},
			{"unknown user", "00000000-0000-4000-8000-000000000000", key, ErrTypeUserIDNotExists},
			{"malformed user id", "../../x", key, ErrTypeUserIDNotExists},
			{"malformed key", id, "garbage", ErrTypeAPIKeyNotFound},
			{"wrong secret", id, otherSecret(key), ErrTypeAPIKeyNotFound},
			{"unknown lookup id", id, "0123456789abcdef" + key[lookupIDLen:], ErrTypeAPIKeyNotFound},
		}
		for _, tc := range revokeCases {
			if err := k.src.RevokeAPIKey(ctx, tc.userID, tc.key); errType(err) != tc.want {
				t.Errorf("revoke %s: %v, want %s", tc.name, err, tc.want)
			}
		}
		for i := 0; i < 2; i++ { // idempotent
			if err := k.src.RevokeAPIKey(ctx, id, key); err != nil {
				t.Fatalf("revoke #%d: %v", i, err)
			}
		}
		if rec, err := k.src.LookupAPIKey(ctx, lookupOf(key)); err != nil || !rec.Revoked || rec.RevokedAt == nil {
			t.Fatalf("revoked record: %+v %v", rec, err)
		}

		if err := k.src.DeleteUser(ctx, "00000000-0000-4000-8000-000000000000"); errType(err) != ErrTypeUserIDNotExists {
			t.Fatalf("delete unknown: %v", err)
		}
		if err := k.src.DeleteUser(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := k.src.GetUser(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted user: %v", err)
		}
		if _, err := k.src.LookupAPIKey(ctx, lookupOf(key)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted user's key: %v", err)
		}
		if users, _ := k.src.ListUsers(ctx); len(users) != 1 || users[0].ID != idB {
			t.Fatalf("list after delete: %+v", users)
		}
		if _, id2 := mustCreate(t, k.src, "alice", false, ""); id2 == id {
			t.Fatal("user id reused")
		}
		if _, err := k.src.LookupAPIKey(ctx, lookupOf(keyB)); err != nil {
			t.Fatalf("bob's key lost: %v", err)
		}
		if err := k.src.Ping(ctx); err != nil {
			t.Fatalf("ping: %v", err)
		}
		if !strings.Contains(k.src.Name(), map[bool]string{true: "vault", false: "file:"}[k.env != nil]) {
			t.Fatalf("name %q", k.src.Name())
		}
	})
}

func TestContractAuthorize(t *testing.T) {
	forEachSource(t, func(t *testing.T, k *kit) {
		ctx := context.Background()
		for _, p := range []Policy{signerPolicy, {Name: "readonly", AllowedOperations: []Operation{OpGetKey, OpExportID}}, {Name: "temp"}} {
			if err := k.admin.PutPolicy(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		admin, _ := mustCreate(t, k.src, "admin", true, "")
		adminSigner, _ := mustCreate(t, k.src, "admin-signer", true, "signer")
		signer, _ := mustCreate(t, k.src, "signer", false, "signer")
		reader, _ := mustCreate(t, k.src, "reader", false, "readonly")
		nopolicy, _ := mustCreate(t, k.src, "nopolicy", false, "")
		ghost, _ := mustCreate(t, k.src, "ghost", false, "temp")
		k.deleteRawPolicy(t, "temp")
		k.writeRawPolicy(t, "broken", map[string]any{"allowed_operations": []string{"get_key"}, "max_nn": 3})
		k.writeRawPolicy(t, "temp2", map[string]any{"allowed_operations": []string{"get_key"}})
		broken, _ := mustCreate(t, k.src, "broken", false, "temp2")
		k.writeRawPolicy(t, "temp2", map[string]any{"allowed_operations": []string{"get_key", "create_user"}})
		revoked, revokedID := mustCreate(t, k.src, "revoked", false, "signer")
		if err := k.src.RevokeAPIKey(ctx, revokedID, revoked); err != nil {
			t.Fatal(err)
		}
		deleted, deletedID := mustCreate(t, k.src, "deleted", false, "signer")
		if err := k.src.DeleteUser(ctx, deletedID); err != nil {
			t.Fatal(err)
		}
		relay := "relay.example:7443"
		cases := []struct {
			name  string
			key   string
			op    Operation
			p     Params
			want  string // err_type, "" = allowed
			cause error
		}{
			{"admin op by admin", admin, OpCreateUser, Params{}, "", nil},
			{"all admin ops", admin, OpListAllSystemKeys, Params{}, "", nil},
			{"user op by admin without policy", admin, OpSign, Params{}, ErrTypePolicyValidationFailed, ErrOperationDenied},
			{"admin with policy: admin op", adminSigner, OpDeleteUser, Params{}, "", nil},
			{"admin with policy: user op", adminSigner, OpSign, Params{}, "", nil},
			{"admin op by user", signer, OpCreateUser, Params{}, ErrTypeAdminRequired, ErrOperationDenied},
			{"revoke op by user", signer, OpRevokeAPIKey, Params{}, ErrTypeAdminRequired, nil},
			{"sign default relay", signer, OpSign, Params{}, "", nil},
			{"sign allowed relay", signer, OpSign, Params{RelayAddress: relay}, "", nil},
			{"sign other relay", signer, OpSign, Params{RelayAddress: "evil.example:7443"}, ErrTypePolicyValidationFailed, ErrOperationDenied},
			{"relay match is exact", signer, OpSign, Params{RelayAddress: "RELAY.example:7443"}, ErrTypePolicyValidationFailed, nil},
			{"relay on op without relay", signer, OpGetKey, Params{RelayAddress: relay}, ErrTypeBadRequestParams, nil},
			{"import within bounds", signer, OpImportKeyRecipient, Params{N: 3, Threshold: 2, RelayAddress: relay}, "", nil},
			{"import max bounds", signer, OpImportKeyImporter, Params{N: 5, Threshold: 3}, "", nil},
			{"import N too large", signer, OpImportKeyImporter, Params{N: 6, Threshold: 2}, ErrTypePolicyValidationFailed, nil},
			{"import t below min", signer, OpImportKeyRecipient, Params{N: 3, Threshold: 1}, ErrTypePolicyValidationFailed, nil},
			{"import t above max", signer, OpImportKeyRecipient, Params{N: 5, Threshold: 4}, ErrTypePolicyValidationFailed, nil},
			{"import N missing", signer, OpImportKeyRecipient, Params{Threshold: 2}, ErrTypeBadNAndTParams, nil},
			{"import t missing", signer, OpImportKeyRecipient, Params{N: 3}, ErrTypeBadNAndTParams, nil},
			{"room within max", signer, OpCreateRoom, Params{N: 5}, "", nil},
			{"room too large", signer, OpCreateRoom, Params{N: 6}, ErrTypePolicyValidationFailed, nil},
			{"room size missing", signer, OpCreateRoom, Params{}, ErrTypeBadNAndTParams, nil},
			{"create key under quota", signer, OpCreateKey, Params{KeyCount: 1}, "", nil},
			{"create key at quota", signer, OpCreateKey, Params{KeyCount: 2}, ErrTypePolicyValidationFailed, nil},
			{"reader get", reader, OpGetKey, Params{}, "", nil},
			{"reader sign", reader, OpSign, Params{}, ErrTypePolicyValidationFailed, nil},
			{"reader create key (quota 0)", reader, OpCreateKey, Params{}, ErrTypePolicyValidationFailed, nil},
			{"no policy: deny all", nopolicy, OpGetKey, Params{}, ErrTypePolicyValidationFailed, nil},
			{"missing policy", ghost, OpGetKey, Params{}, ErrTypePolicyValidationFailed, nil},
			{"invalid policy", broken, OpGetKey, Params{}, ErrTypePolicyValidationFailed, nil},
			{"empty key", "", OpGetKey, Params{}, ErrTypeAccessDenied, ErrKeyMalformed},
			{"garbage key", "Bearer xyz", OpGetKey, Params{}, ErrTypeAccessDenied, ErrKeyMalformed},
			{"bad secret alphabet", signer[:len(signer)-1] + "=", OpGetKey, Params{}, ErrTypeAccessDenied, ErrKeyMalformed},
			{"unknown lookup id", "0123456789abcdef" + signer[lookupIDLen:], OpGetKey, Params{}, ErrTypeAccessDenied, ErrKeyUnknown},
			{"wrong secret", otherSecret(signer), OpGetKey, Params{}, ErrTypeAccessDenied, ErrKeyMismatch},
			{"revoked", revoked, OpGetKey, Params{}, ErrTypeAccessDenied, ErrKeyRevoked},
			{"deleted user", deleted, OpGetKey, Params{}, ErrTypeAccessDenied, ErrKeyUnknown},
			{"unknown operation", signer, Operation("launch"), Params{}, ErrTypeInternalProblem, nil},
		}
		a := newTestAuthorizer(t, k.src, newFakeClock())
		for _, tc := range cases {
			u, err := a.Authorize(ctx, tc.key, tc.op, tc.p)
			if errType(err) != tc.want || (tc.want == "" && err != nil) {
				t.Errorf("%s: err %v (type %q), want %q", tc.name, err, errType(err), tc.want)
				continue
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Errorf("%s: cause %v, want %v", tc.name, err, tc.cause)
			}
			if tc.want == "" && (u == nil || u.ID == "") {
				t.Errorf("%s: no user", tc.name)
			}
			if err != nil && len(tc.key) == apiKeyLen && strings.Contains(err.Error(), tc.key[lookupIDLen+1:]) {
				t.Errorf("%s: error text contains the secret", tc.name)
			}
		}
		_ = deletedID
	})
}

func TestContractPolicyChangeWithinTTL(t *testing.T) {
	forEachSource(t, func(t *testing.T, k *kit) {
		ctx := context.Background()
		if err := k.admin.PutPolicy(ctx, signerPolicy); err != nil {
			t.Fatal(err)
		}
		key, _ := mustCreate(t, k.src, "u", false, "signer")
		clock := newFakeClock()
		a := newTestAuthorizer(t, k.src, clock)
		ttl := a.cfg.TTL
		newRelay := Params{RelayAddress: "relay2.example:7443"}
		if _, err := a.Authorize(ctx, key, OpSign, newRelay); errType(err) != ErrTypePolicyValidationFailed {
			t.Fatalf("before change: %v", err)
		}
		changed := signerPolicy
		changed.AllowedRelayAddresses = []string{"relay2.example:7443"}
		changed.AllowedOperations = []Operation{OpSign}
		if err := k.admin.PutPolicy(ctx, changed); err != nil {
			t.Fatal(err)
		}
		clock.Advance(ttl - time.Second)
		if _, err := a.Authorize(ctx, key, OpSign, newRelay); errType(err) != ErrTypePolicyValidationFailed {
			t.Fatalf("cached within TTL: %v", err)
		}
		if _, err := a.Authorize(ctx, key, OpGetKey, Params{}); err != nil {
			t.Fatalf("cached within TTL (old ops): %v", err)
		}
		clock.Advance(time.Second + time.Millisecond)
		if _, err := a.Authorize(ctx, key, OpSign, newRelay); err != nil {
			t.Fatalf("after TTL: %v", err)
		}
		if _, err := a.Authorize(ctx, key, OpGetKey, Params{}); errType(err) != ErrTypePolicyValidationFailed {
			t.Fatalf("removed operation still allowed: %v", err)
		}
	})
}

func TestContractRevocationAndDeletion(t *testing.T) {
	forEachSource(t, func(t *testing.T, k *kit) {
		ctx := context.Background()
		if err := k.admin.PutPolicy(ctx, signerPolicy); err != nil {
			t.Fatal(err)
		}
		key1, id1 := mustCreate(t, k.src, "u1", false, "signer")
		key2, id2 := mustCreate(t, k.src, "u2", false, "signer")
		clock := newFakeClock()
		a := newTestAuthorizer(t, k.src, clock)
		for _, key := range []string{key1, key2} {
			if _, err := a.Authorize(ctx, key, OpGetKey, Params{}); err != nil {
				t.Fatal(err)
			}
		}
		// Revoked on another replica: effective once the TTL expires.
		if err := k.admin.RevokeAPIKey(ctx, id1, key1); err != nil {
			t.Fatal(err)
		}
		clock.Advance(a.cfg.TTL - time.Millisecond)
		if _, err := a.Authorize(ctx, key1, OpGetKey, Params{}); err != nil {
			t.Fatalf("within TTL: %v", err)
		}
		clock.Advance(2 * time.Millisecond)
		if _, err := a.Authorize(ctx, key1, OpGetKey, Params{}); !errors.Is(err, ErrKeyRevoked) {
			t.Fatalf("after TTL: %v, want revoked", err)
		}
		// Deleted through this Authorizer: effective at once.
		if _, err := a.Authorize(ctx, key2, OpGetKey, Params{}); err != nil {
			t.Fatal(err)
		}
		if err := a.DeleteUser(ctx, id2); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Authorize(ctx, key2, OpGetKey, Params{}); !errors.Is(err, ErrKeyUnknown) {
			t.Fatalf("deleted user: %v", err)
		}
		// Revoked through this Authorizer: effective at once.
		key3, id3 := mustCreate(t, k.src, "u3", false, "signer")
		if _, err := a.Authorize(ctx, key3, OpGetKey, Params{}); err != nil {
			t.Fatal(err)
		}
		if err := a.RevokeAPIKey(ctx, id3, key3); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Authorize(ctx, key3, OpGetKey, Params{}); !errors.Is(err, ErrKeyRevoked) {
			t.Fatalf("locally revoked: %v", err)
		}
		if err := a.RevokeAPIKey(ctx, id3, otherSecret(key3)); errType(err) != ErrTypeAPIKeyNotFound {
			t.Fatalf("authorizer revoke error type: %v", err)
		}
		// Created through this Authorizer: usable at once.
		key4, _, err := a.CreateUser(ctx, "u4", false, "signer")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Authorize(ctx, key4, OpGetKey, Params{}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.CreateUser(ctx, "u4", false, "signer"); errType(err) != ErrTypeUserNameAlreadyExists {
			t.Fatalf("duplicate via authorizer: %v", err)
		}
		if us, err := a.ListUsers(ctx); err != nil || len(us) != 3 { // u1 (revoked), u3, u4
			t.Fatalf("list: %d %v", len(us), err)
		}
	})
}

func TestContractNegativeCache(t *testing.T) {
	forEachSource(t, func(t *testing.T, k *kit) {
		ctx := context.Background()
		clock := newFakeClock()
		a := newTestAuthorizer(t, k.src, clock)
		unknown := "0123456789abcdef." + strings.Repeat("A", secretLen)
		for i := 0; i < 3; i++ {
			if _, err := a.Authorize(ctx, unknown, OpGetKey, Params{}); !errors.Is(err, ErrKeyUnknown) {
				t.Fatalf("unknown key: %v", err)
			}
		}
		if s := a.Stats(); s.Fetches != 1 || s.Hits != 2 {
			t.Fatalf("stats %+v, want 1 fetch and 2 hits", s)
		}
		clock.Advance(a.cfg.NegativeTTL + time.Millisecond)
		if _, err := a.Authorize(ctx, unknown, OpGetKey, Params{}); !errors.Is(err, ErrKeyUnknown) {
			t.Fatalf("unknown key: %v", err)
		}
		if s := a.Stats(); s.Fetches != 2 {
			t.Fatalf("negative entry outlived its TTL: %+v", s)
		}
	})
}

func TestContractBootstrapAdmin(t *testing.T) {
	forEachSource(t, func(t *testing.T, k *kit) {
		ctx := context.Background()
		mustCreate(t, k.src, "plain", false, "")
		// Concurrent bootstraps through both views: exactly one wins.
		var wg sync.WaitGroup
		var mu sync.Mutex
		var wins []string
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				src := []Source{k.src, k.admin}[i%2]
				key, id, err := BootstrapAdmin(ctx, src, "root-"+string(rune('a'+i)))
				if err != nil {
					if !errors.Is(err, ErrAdminExists) {
						t.Errorf("bootstrap %d: %v", i, err)
					}
					return
				}
				mu.Lock()
				wins = append(wins, key+" "+id)
				mu.Unlock()
			}(i)
		}
		wg.Wait()
		if len(wins) != 1 {
			t.Fatalf("%d bootstraps succeeded, want 1", len(wins))
		}
		key, id, _ := strings.Cut(wins[0], " ")
		users, err := k.src.ListUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		admins := 0
		for _, u := range users {
			if u.Admin {
				admins++
			}
		}
		if admins != 1 {
			t.Fatalf("%d admins, want 1", admins)
		}
		a := newTestAuthorizer(t, k.src, nil)
		if u, err := a.Authorize(ctx, key, OpCreateUser, Params{}); err != nil || u.ID != id {
			t.Fatalf("bootstrap key: %v", err)
		}
		if _, _, err := BootstrapAdmin(ctx, k.src, "again"); !errors.Is(err, ErrAdminExists) {
			t.Fatalf("second bootstrap: %v", err)
		}
		// With every admin gone, bootstrap works again.
		if err := k.src.DeleteUser(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, _, err := BootstrapAdmin(ctx, k.src, "again"); err != nil {
			t.Fatalf("bootstrap after the admin was deleted: %v", err)
		}
	})
}
