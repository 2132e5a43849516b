package client_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumd/quorumd/daemon/client"
	"github.com/quorumd/quorumd/daemon/quorumtest"
	"github.com/quorumd/quorumd/internal/apispec"
	"github.com/quorumd/quorumd/policy"
)

// recorder is a RoundTripper noting every answered request as the
// operation of docs/openapi.yaml it matched ("METHOD /path/{param}").
type recorder struct {
	next     http.RoundTripper
	patterns map[string]*regexp.Regexp // "METHOD /path/{p}" → its regexp
	mu       sync.Mutex
	seen     map[string]bool
}

// newRecorder records the exchanges of next against the operations of
// docs/openapi.yaml, as kin-openapi loads it.
func newRecorder(t *testing.T, next http.RoundTripper) *recorder {
	t.Helper()
	doc, err := apispec.Load()
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{next: next, patterns: map[string]*regexp.Regexp{}, seen: map[string]bool{}}
	for path, item := range doc.Paths.Map() {
		segs := strings.Split(path, "/")
		for i, seg := range segs {
			if strings.HasPrefix(seg, "{") {
				segs[i] = `[^/]+`
			} else {
				segs[i] = regexp.QuoteMeta(seg)
			}
		}
		for method := range item.Operations() {
			r.patterns[method+" "+path] = regexp.MustCompile("^" + method + " " + strings.Join(segs, "/") + "$")
		}
	}
	if len(r.patterns) < 40 {
		t.Fatalf("only %d operations in docs/openapi.yaml", len(r.patterns))
	}
	return r
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err == nil {
		key := req.Method + " " + req.URL.Path
		r.mu.Lock()
		for op, re := range r.patterns {
			if re.MatchString(key) {
				r.seen[op] = true
			}
		}
		r.mu.Unlock()
	}
	return resp, err
}

func (r *recorder) missing() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for op := range r.patterns {
		if !r.seen[op] {
			out = append(out, op)
		}
	}
	sort.Strings(out)
	return out
}

// newClient is a client of base with key over hc, failing t on error.
func newClient(t *testing.T, base, key string, hc *http.Client) *client.Client {
	t.Helper()
	c, err := client.New(base, key, client.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func must[T any](t *testing.T, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

func wantErrType(t *testing.T, what string, err error, status int, errType string) {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != status || ae.ErrType != errType || client.ErrType(err) != errType {
		t.Errorf("%s: %v, want %d %s", what, err, status, errType)
	}
}

func newKey(t *testing.T) []byte {
	for {
		k := make([]byte, 32)
		rand.Read(k)
		if _, err := client.XOnlyPubkey(k); err == nil {
			return k
		}
	}
}

// TestEndpoints drives every operation of docs/openapi.yaml through the
// client against a real quorum of three daemons (quorumtest: SoftHSM
// tokens, a relay, the daemons; backups exportable in plaintext) — the
// Quorum drivers for the ceremonies — and fails if any documented
// operation was never called. Every exchange is validated against the
// document by quorumtest's HTTP client, under the recorder.
func TestEndpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three daemons")
	}
	q := quorumtest.Start(t, quorumtest.Options{Parties: 3, Policy: func(p *policy.Policy) {
		p.BackupExport = &policy.BackupExport{Mode: "plaintext"}
	}})
	rec := newRecorder(t, q.HTTPClient().Transport)
	hc := &http.Client{Transport: rec}
	users := make([]*client.Client, q.N())
	for i := range users {
		users[i] = newClient(t, q.DirectURL(i), q.UserKey(i), hc)
	}
	admin := newClient(t, q.DirectURL(0), q.AdminKey(0), hc)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	qu := &client.Quorum{Parties: users, Log: t.Logf}

	// Operations.
	must[struct{}](t, "healthz")(struct{}{}, users[0].Healthz(ctx))
	if r := must[client.Readiness](t, "readyz")(users[1].Readyz(ctx)); r.Status != "ready" || r.Checks["hsm"] != "ok" {
		t.Errorf("readyz %+v", r)
	}
	if m := must[string](t, "metrics")(users[2].Metrics(ctx)); !strings.Contains(m, "# TYPE") {
		t.Errorf("metrics: %.200q", m)
	}
	for _, kem := range []string{"", "DHKEM-P256"} {
		ik := must[client.ImportKeyInfo](t, "import-key")(users[0].GetImportKey(ctx, kem))
		if len(ik.PublicKey) == 0 || ik.Label == "" || (kem != "" && ik.KEM != kem) {
			t.Errorf("import key %q: %+v", kem, ik)
		}
	}

	// Rooms.
	must[string](t, "create-room")(users[0].CreateRoom(ctx, 3))
	if ids := must[[]string](t, "batch-create-rooms")(users[1].BatchCreateRooms(ctx, client.BatchRooms{Sizes: []int{2, 3}})); len(ids) != 2 {
		t.Errorf("batch rooms %v", ids)
	}
	if ids := must[[]string](t, "batch-create-rooms")(users[1].BatchCreateRooms(ctx, client.BatchRooms{Size: 2, Count: 3})); len(ids) != 3 {
		t.Errorf("batch rooms %v", ids)
	}

	// Imports: in the clear, encrypted to the import key, dealt locally.
	priv := newKey(t)
	defer clear(priv)
	want := must[[32]byte](t, "pubkey")(client.XOnlyPubkey(priv))
	imp := must[*client.ImportResult](t, "import")(qu.Import(ctx, priv, client.ImportOptions{Threshold: 2, Importer: 1}))
	if imp.Pubkey != hex.EncodeToString(want[:]) {
		t.Fatalf("import pubkey %s, want %x", imp.Pubkey, want)
	}
	enc := must[*client.ImportResult](t, "encrypted import")(qu.Import(ctx, newKey(t), client.ImportOptions{Threshold: 3, Encrypt: true}))
	dealer := must[*client.LocalDealer](t, "dealer")(client.NewLocalDealer(q.RelayAddr))
	defer dealer.Close()
	dq := &client.Quorum{Parties: users, RelayAddress: q.RelayAddr, Log: t.Logf}
	must[*client.ImportResult](t, "local dealer")(dq.Import(ctx, newKey(t), client.ImportOptions{Threshold: 2, Dealer: dealer}))

	// The key records.
	for i, u := range users {
		r := must[client.KeyRecord](t, "keys")(u.GetKey(ctx, imp.KeyIDs[i]))
		if r.State != "ready" || r.T != 2 || r.N != 3 || r.Pubkey != imp.Pubkey || r.KeygenID != imp.KeygenIDs[i] || r.KeyType != "BIP340" {
			t.Errorf("daemon %d: record %+v", i, r)
		}
		if id := must[string](t, "export-id")(u.ExportID(ctx, imp.KeyIDs[i])); id != imp.KeygenIDs[i] {
			t.Errorf("daemon %d: export-id %s, want %s", i, id, imp.KeygenIDs[i])
		}
	}
	_, err := users[0].GetKey(ctx, "00000000-0000-4000-8000-000000000000")
	wantErrType(t, "an unknown key", err, 400, "key_id_not_exists")

	// Signatures: plain, derived and tweaked, with two of three; a batch.
	msg := bytes.Repeat([]byte{0x5a}, 32)
	must[*client.SignResult](t, "sign")(qu.Sign(ctx, imp.KeyIDs, msg, client.SignOptions{Signers: []int{0, 2}}))
	tweak := strings.Repeat("01", 32)
	d := must[*client.SignResult](t, "derived sign")(qu.Sign(ctx, imp.KeyIDs, []byte("any length"), client.SignOptions{
		Signers: []int{2, 1}, DerivationPath: client.Path(0, 7), Tweak: tweak}))
	if pk := must[[]byte](t, "derive")(users[0].DerivePubkey(ctx, imp.KeyIDs[0], "m/0/7", tweak)); hex.EncodeToString(pk) != d.Pubkey || d.Pubkey == imp.Pubkey {
		t.Errorf("derived pubkey %x, the signature verified under %s", pk, d.Pubkey)
	}
	set := must[*client.Signers](t, "prepare")(qu.PrepareSign(ctx, enc.KeyIDs, client.SignOptions{}))
	if b := must[*client.BatchResult](t, "batch-sign")(set.BatchSign(ctx, [][]byte{msg, []byte("b"), []byte("c")})); b.Signed != 3 {
		t.Errorf("batch: %d of 3 signed: %+v", b.Signed, b.Items)
	}

	// Keygen, refresh, reshare (holders 0 and 1; daemon 2 joins afresh).
	kg := must[*client.KeygenResult](t, "keygen")(qu.Keygen(ctx, 2))
	ref := must[*client.LifecycleResult](t, "refresh")(qu.Refresh(ctx, kg.KeyIDs, false))
	if ref.Pubkey != kg.Pubkey || slices.Equal(ref.KeyIDs, kg.KeyIDs) {
		t.Errorf("refresh %+v of %+v", ref, kg)
	}
	res := must[*client.LifecycleResult](t, "reshare")(qu.Reshare(ctx, ref.KeyIDs[:2], client.ReshareOptions{Threshold: 2, DeleteOld: true}))
	if res.Pubkey != kg.Pubkey || len(res.Dropped) != 1 || res.Dropped[0] != kg.KeygenIDs[2] {
		t.Errorf("reshare %+v", res)
	}
	must[*client.SignResult](t, "sign after reshare")(qu.Sign(ctx, res.KeyIDs, msg, client.SignOptions{Signers: []int{1, 2}}))

	// Recovery data: the certified copy of one party recovers (here:
	// leaves unchanged) another's ready key.
	rd := must[client.RecoveryData](t, "recovery-data")(users[0].GetRecoveryData(ctx, imp.KeyIDs[0]))
	if !rd.Certified {
		t.Error("recovery data of a ready key is not certified")
	}
	if r := must[client.KeyRecord](t, "recover")(users[1].Recover(ctx, imp.KeyIDs[1], rd.RecoveryData)); r.State != "ready" || r.Pubkey != imp.Pubkey {
		t.Errorf("recover: %+v", r)
	}

	// Backup: export party 2's share, delete it, restore it as a new key,
	// and sign with it.
	typ, backup, err := users[2].ExportBackup(ctx, imp.KeyIDs[2])
	if err != nil || typ != "plaintext" {
		t.Fatalf("export: %q, %v", typ, err)
	}
	must[struct{}](t, "delete-key-share")(struct{}{}, users[2].DeleteKey(ctx, imp.KeyIDs[2]))
	_, err = users[2].GetKey(ctx, imp.KeyIDs[2])
	wantErrType(t, "a deleted key", err, 400, "key_id_not_exists")
	restored, pk, err := users[2].ImportBackup(ctx, backup)
	clear(backup)
	if err != nil || hex.EncodeToString(pk) != imp.Pubkey {
		t.Fatalf("restore: %x, %v", pk, err)
	}
	ids := slices.Clone(imp.KeyIDs)
	ids[2] = restored
	must[*client.SignResult](t, "sign with the restored share")(qu.Sign(ctx, ids, msg, client.SignOptions{Signers: []int{2, 0}}))

	// Users and API keys.
	key2 := must[string](t, "generate-api-key")(admin.GenerateAPIKey(ctx, q.Daemons[0].UserID))
	alice2 := newClient(t, users[0].Base(), key2, hc)
	must[client.KeyRecord](t, "the further key")(alice2.GetKey(ctx, imp.KeyIDs[0]))
	must[struct{}](t, "revoke-api-key")(struct{}{}, admin.RevokeAPIKey(ctx, q.Daemons[0].UserID, key2))
	_, err = alice2.GetKey(ctx, imp.KeyIDs[0])
	wantErrType(t, "a revoked key", err, 401, "access_denied")
	_, err = users[0].ListAllSystemKeys(ctx)
	wantErrType(t, "a user listing all keys", err, 400, "you_have_to_be_admin")
	all := must[map[string][]client.KeyRecord](t, "list-all-system-keys")(admin.ListAllSystemKeys(ctx))
	if !slices.ContainsFunc(all[q.Daemons[0].UserID], func(r client.KeyRecord) bool { return r.KeyID == imp.KeyIDs[0] }) {
		t.Errorf("list-all-system-keys lacks %s: %v", imp.KeyIDs[0], all)
	}
	err = admin.DeleteUser(ctx, q.Daemons[0].UserID)
	wantErrType(t, "deleting a user with keys", err, 400, "user_has_associated_keys")
	bob := must[client.NewUser](t, "create-user")(admin.CreateUser(ctx, "bob"))
	_, err = admin.CreateUser(ctx, "bob")
	wantErrType(t, "a duplicate name", err, 400, "user_name_already_exists")

	// Policies and rules.
	maxN := 5
	r1 := must[string](t, "create-rule")(admin.CreateRule(ctx, client.Rule{Name: "small", MaxN: &maxN, AllowedOperations: []string{"sign", "get_key"}}))
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	r2 := must[string](t, "add-external-rule")(admin.AddExternalRule(ctx, client.ExternalRule{Name: "approver", JWTAlg: "EdDSA",
		Pubkey: hex.EncodeToString(pub), URL: "https://rules.example/check"}))
	pid := must[string](t, "create-policy")(admin.CreatePolicy(ctx, "custody", []string{r1}))
	must[struct{}](t, "add-rule")(struct{}{}, admin.AddRule(ctx, pid, r2))
	if p := must[client.Policy](t, "get-policy")(admin.GetPolicy(ctx, pid)); p.Name != "custody" || !slices.Contains(p.Rules, r2) {
		t.Errorf("policy %+v", p)
	}
	must[struct{}](t, "remove-rule")(struct{}{}, admin.RemoveRule(ctx, pid, r2))
	err = admin.RemoveRule(ctx, pid, r2)
	wantErrType(t, "removing a rule twice", err, 400, "rule_not_in_policy")
	if ps := must[[]client.Policy](t, "list-policies")(admin.ListPolicies(ctx)); !slices.ContainsFunc(ps, func(p client.Policy) bool { return p.PolicyID == pid }) {
		t.Errorf("list-policies lacks %s", pid)
	}
	if r := must[client.Rule](t, "get-rule")(admin.GetRule(ctx, r2)); r.External == nil || r.External.JWTAlg != "EdDSA" {
		t.Errorf("external rule %+v", r)
	}
	if rs := must[[]client.Rule](t, "list-rules")(admin.ListRules(ctx)); len(rs) < 2 {
		t.Errorf("list-rules: %+v", rs)
	}
	must[struct{}](t, "assign-policy")(struct{}{}, admin.AssignPolicy(ctx, bob.UserID, pid))
	err = admin.DeletePolicy(ctx, pid)
	wantErrType(t, "deleting a held policy", err, 400, "policy_in_use_by_users")
	must[struct{}](t, "unassign")(struct{}{}, admin.AssignPolicy(ctx, bob.UserID, ""))
	must[struct{}](t, "delete-policy")(struct{}{}, admin.DeletePolicy(ctx, pid))
	for _, r := range []string{r1, r2} {
		must[struct{}](t, "delete-rule")(struct{}{}, admin.DeleteRule(ctx, r))
	}
	must[struct{}](t, "delete-user")(struct{}{}, admin.DeleteUser(ctx, bob.UserID))

	if m := rec.missing(); len(m) > 0 {
		t.Errorf("operations of docs/openapi.yaml never called through the client: %v", m)
	}
}
