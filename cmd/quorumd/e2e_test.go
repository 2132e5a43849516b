package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThalesGroup/crypto11"
	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"

	"github.com/quorumd/quorumd/daemon/quorumtest"
	"github.com/quorumd/quorumd/hsm"
	"github.com/quorumd/quorumd/internal/apispec"
	"github.com/quorumd/quorumd/internal/testkit"
)

// Every daemon of the end-to-end tests has its own SoftHSM token; SoftHSM
// lists tokens only when the module initializes, so all are made up front.
const e2eTokens = 9 // tokens[8]: the fresh token of TestE2EBackupRoundTrip

var tokens []testkit.SoftHSMToken

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "quorumd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	labels := make([]string, e2eTokens)
	for i := range labels {
		labels[i] = fmt.Sprintf("e2e-%d", i)
	}
	tokens, err = testkit.NewSoftHSMTokens(dir, labels...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// node is one quorumd, run in-process by quorumtest (daemon/boot, the code
// main runs after parsing flags). base is a validating proxy in front of it
// (internal/apispec): every exchange of every e2e test, from node.call,
// quorumctl or a raw socket, is checked against docs/openapi.yaml and fails
// the test if undescribed.
type node struct {
	t          *testing.T
	tok        testkit.SoftHSMToken
	dir        string
	cfgPath    string
	policyFile string
	base       string
	logs       *lockedBuffer
	d          *quorumtest.Daemon  // nil for a replica made by hand (replicaOf)
	running    *quorumtest.Running // a hand-made replica's run

	adminKey string
	userKey  string
	userID   string
}

const e2eKeyLabel = quorumtest.KeyLabel

// newNode configures and starts a daemon on token tok with a default relay
// and a policy file holding an admin and a permissive policy.
func newNode(t *testing.T, tok testkit.SoftHSMToken, relayAddr string, allowedRelays ...string) *node {
	t.Helper()
	n := configureNode(t, tok, relayAddr, e2eCeremonyTimeout, allowedRelays...)
	n.start()
	t.Cleanup(n.stop)
	return n
}

// configureNode writes a daemon's configuration and policy file (newNode's
// setup, quorumtest.Configure's) without starting it.
func configureNode(t *testing.T, tok testkit.SoftHSMToken, relayAddr, ceremonyTimeout string, allowedRelays ...string) *node {
	t.Helper()
	timeout, err := time.ParseDuration(ceremonyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return nodeOf(t, quorumtest.Configure(t, quorumtest.DaemonOptions{Token: tok, RelayAddress: relayAddr,
		AllowedRelays: allowedRelays, CeremonyTimeout: timeout}, ""))
}

// nodeOf is the node of a daemon quorumtest configured (and maybe started).
func nodeOf(t *testing.T, d *quorumtest.Daemon) *node {
	n := &node{t: t, tok: d.Token, dir: d.Dir, cfgPath: d.ConfigPath, policyFile: d.PolicyFile,
		logs: d.LogBuffer(), d: d, adminKey: d.AdminKey, userKey: d.UserKey, userID: d.UserID}
	if d.Running() {
		n.base = n.proxied(d.URL)
	}
	return n
}

func (n *node) start() {
	n.t.Helper()
	if n.d != nil {
		n.d.Start()
		n.base = n.proxied(n.d.URL)
		return
	}
	r, err := quorumtest.StartInProcess(n.cfgPath, n.logs)
	if err != nil {
		n.t.Fatalf("daemon: %v:\n%s", err, n.logs.String())
	}
	n.running, n.base = r, n.proxied("http://"+r.Addr())
}

// proxied puts a validating proxy in front of the daemon at url. Benchmarks
// drive nodes with a bare testing.T (no name, cleanups never run): they
// measure the daemon, without the proxy's hop.
func (n *node) proxied(url string) string {
	if n.t.Name() == "" {
		return url
	}
	return apispec.Proxy(n.t, url)
}

func (n *node) stop() {
	n.t.Helper()
	if n.d != nil {
		n.d.Stop()
		return
	}
	if n.running == nil {
		return
	}
	r := n.running
	n.running = nil
	if err := r.Stop(); err != nil {
		n.t.Errorf("daemon: %v", err)
	}
}

// call sends a request and decodes the JSON answer into a map.
func (n *node) call(method, path, key string, body any) (int, map[string]any) {
	n.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			n.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, n.base+path, rd)
	if err != nil {
		n.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", key)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			n.t.Fatalf("%s %s: non-JSON answer %q", method, path, raw)
		}
	}
	out["_raw"] = string(raw)
	return resp.StatusCode, out
}

// must is call expecting 200.
func (n *node) must(method, path, key string, body any) map[string]any {
	n.t.Helper()
	st, out := n.call(method, path, key, body)
	if st != http.StatusOK {
		n.t.Fatalf("%s %s: %d %v", method, path, st, out["_raw"])
	}
	return out
}

// createUser makes a user through the admin API and keeps its key.
func (n *node) createUser(name string) (key, id string) {
	out := n.must("GET", "/admin/create-user?name="+name, n.adminKey, nil)
	return out["api_key"].(string), out["user_id"].(string)
}

type cluster struct {
	t     *testing.T
	nodes []*node
}

// newQuorum starts n daemons on tokens[first:first+n] with quorumtest, each
// with its admin and a user.
func newQuorum(t *testing.T, relayAddr string, first, n int) *cluster {
	timeout, err := time.ParseDuration(e2eCeremonyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	qt := quorumtest.Start(t, quorumtest.Options{Parties: n, Tokens: tokens[first : first+n], RelayAddress: relayAddr,
		CeremonyTimeout: timeout})
	q := &cluster{t: t}
	for _, d := range qt.Daemons {
		q.nodes = append(q.nodes, nodeOf(t, d))
	}
	return q
}

type slot struct{ keyID, keygenID string }

func (q *cluster) slots(nodes []*node) []slot {
	out := make([]slot, len(nodes))
	for i, nd := range nodes {
		r := nd.must("GET", "/bip340/create", nd.userKey, nil)
		out[i] = slot{r["key_id"].(string), r["keygen_id"].(string)}
	}
	return out
}

func others(s []slot, i int) []string {
	var o []string
	for j, x := range s {
		if j != i {
			o = append(o, x.keygenID)
		}
	}
	return o
}

type answer struct {
	status int
	body   map[string]any
}

// importKey runs an import through HTTP: nodes[0] is the importer.
func (q *cluster) importKey(nodes []*node, s []slot, t int, priv string) []answer {
	room := nodes[0].must("POST", "/create-room", nodes[0].userKey, map[string]any{"room_size": len(nodes)})["room_uuid"].(string)
	out := make([]answer, len(nodes))
	var wg sync.WaitGroup
	for i, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := map[string]any{"room_uuid": room, "key_id": s[i].keyID, "threshold": t, "others_keygen_ids": others(s, i)}
			path := "/bip340/import/import-key-share-recipient"
			if i == 0 {
				body["private_key"] = priv
				path = "/bip340/import/key-importer"
			}
			st, b := nd.call("POST", path, nd.userKey, body)
			out[i] = answer{st, b}
		}()
	}
	wg.Wait()
	return out
}

// sign runs a signing ceremony with the given nodes and key ids.
func (q *cluster) sign(nodes []*node, keyIDs []string, msg []byte) []answer {
	room := nodes[0].must("POST", "/create-room", nodes[0].userKey, map[string]any{"room_size": len(nodes)})["room_uuid"].(string)
	out := make([]answer, len(nodes))
	var wg sync.WaitGroup
	for i, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, b := nd.call("POST", "/bip340/sign", nd.userKey, map[string]any{"room_uuid": room, "key_id": keyIDs[i], "msg": hex.EncodeToString(msg)})
			out[i] = answer{st, b}
		}()
	}
	wg.Wait()
	return out
}

func newPrivateKey(t *testing.T) (privHex string, xonly []byte) {
	k, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	b := k.Key.Bytes()
	return hex.EncodeToString(b[:]), schnorr.SerializePubKey(k.PubKey())
}

// verify checks a hex signature with btcec's BIP340 verifier.
func verify(t *testing.T, pub []byte, msg []byte, sigHex string) {
	t.Helper()
	sb, err := hex.DecodeString(sigHex)
	if err != nil || len(sb) != 64 {
		t.Fatalf("signature %q", sigHex)
	}
	pk, err := schnorr.ParsePubKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := schnorr.ParseSignature(sb)
	if err != nil || !sig.Verify(msg, pk) {
		t.Fatal("signature does not verify (btcec)")
	}
}

func (q *cluster) importAndCheck(nodes []*node, t int) ([]string, []byte, string) {
	q.t.Helper()
	priv, pub := newPrivateKey(q.t)
	s := q.slots(nodes)
	for i, a := range q.importKey(nodes, s, t, priv) {
		if a.status != 200 {
			q.t.Fatalf("import at node %d: %d %v", i, a.status, a.body["_raw"])
		}
		if a.body["pubkey"] != hex.EncodeToString(pub) || a.body["key_id"] != s[i].keyID {
			q.t.Fatalf("node %d answered %v, want pubkey %x", i, a.body, pub)
		}
	}
	ids := make([]string, len(s))
	for i := range s {
		ids[i] = s[i].keyID
	}
	return ids, pub, priv
}

func (q *cluster) signAndCheck(nodes []*node, keyIDs []string, pub []byte) {
	q.t.Helper()
	msg := make([]byte, 32)
	rand.Read(msg)
	for i, a := range q.sign(nodes, keyIDs, msg) {
		if a.status != 200 {
			q.t.Fatalf("sign at node %d: %d %v", i, a.status, a.body["_raw"])
		}
		verify(q.t, pub, msg, a.body["signature"].(string))
	}
}

func pick[T any](xs []T, idx ...int) []T {
	out := make([]T, len(idx))
	for i, j := range idx {
		out[i] = xs[j]
	}
	return out
}

// TestE2EImportAndSign: the seed flow through HTTP with real SoftHSM tokens,
// stores, policy files and a real relay: 2-of-3 and 3-of-5 imports, signing
// with subsets, and a daemon restarted after the import that still signs.
func TestE2EImportAndSign(t *testing.T) {
	relayAddr := testkit.Relay(t)
	q := newQuorum(t, relayAddr, 0, 5)

	t.Run("2-of-3", func(t *testing.T) {
		nodes := q.nodes[:3]
		ids, pub, _ := q.importAndCheck(nodes, 2)
		q.signAndCheck(pick(nodes, 0, 2), pick(ids, 0, 2), pub)
		q.signAndCheck(pick(nodes, 1, 2), pick(ids, 1, 2), pub)

		// The record is public and complete at every party.
		rec := nodes[1].must("GET", "/bip340/keys/"+ids[1], nodes[1].userKey, nil)
		if rec["pubkey"] != hex.EncodeToString(pub) || rec["t"] != 2.0 || rec["n"] != 3.0 || rec["state"] != "ready" {
			t.Fatalf("key record %v", rec)
		}
		// A restarted daemon still signs (share unsealed from its HSM).
		nodes[1].stop()
		nodes[1].start()
		q.signAndCheck(pick(nodes, 1, 2), pick(ids, 1, 2), pub)
	})
	t.Run("3-of-5", func(t *testing.T) {
		ids, pub, _ := q.importAndCheck(q.nodes, 3)
		q.signAndCheck(pick(q.nodes, 4, 1, 2), pick(ids, 4, 1, 2), pub)
		q.signAndCheck(q.nodes, ids, pub)
	})
}

// expectErr asserts status and err_type of an answer.
func expectErr(t *testing.T, what string, st int, body map[string]any, wantStatus int, wantType string) {
	t.Helper()
	if st != wantStatus || body["err_type"] != wantType {
		t.Errorf("%s: got %d %v, want %d %s", what, st, body["_raw"], wantStatus, wantType)
	}
}

// TestE2EErrors asserts, through HTTP against real parts, every err_type the
// core endpoints produce, with its status.
func TestE2EErrors(t *testing.T) {
	relayAddr := testkit.Relay(t)
	q := newQuorum(t, relayAddr, 5, 2)
	a, b := q.nodes[0], q.nodes[1]
	s := q.slots(q.nodes)
	mk, _ := a.createUser("mallory")
	room := a.must("POST", "/create-room", a.userKey, map[string]any{"room_size": 2})["room_uuid"].(string)
	base := func() map[string]any {
		return map[string]any{"room_uuid": room, "key_id": s[0].keyID, "threshold": 2, "others_keygen_ids": []string{s[1].keygenID}}
	}
	with := func(k string, v any) map[string]any {
		m := base()
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	recip := "/bip340/import/import-key-share-recipient"
	imp := "/bip340/import/key-importer"
	nHex := "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"
	withKey := func(k string) map[string]any { m := base(); m["private_key"] = k; return m }
	cases := []struct {
		name, method, path, key string
		body                    any
		status                  int
		errType                 string
	}{
		{"malformed JSON", "POST", recip, a.userKey, `{"room_uuid":`, 400, "bad_request_params"},
		{"unknown field", "POST", recip, a.userKey, with("colour", "blue"), 400, "bad_request_params"},
		{"missing field", "POST", recip, a.userKey, with("threshold", nil), 400, "bad_request_params"},
		{"threshold 0", "POST", recip, a.userKey, with("threshold", 0), 400, "bad_n_and_t_params"},
		{"threshold > N", "POST", recip, a.userKey, with("threshold", 3), 400, "bad_n_and_t_params"},
		{"num_parties ≠ N", "POST", recip, a.userKey, with("num_parties", 5), 400, "bad_n_and_t_params"},
		{"duplicate keygen ids", "POST", recip, a.userKey, with("others_keygen_ids", []string{s[1].keygenID, s[1].keygenID}), 400, "bad_request_params"},
		{"own keygen id among others", "POST", recip, a.userKey, with("others_keygen_ids", []string{s[0].keygenID}), 400, "bad_request_params"},
		{"private key 0", "POST", imp, a.userKey, withKey(strings.Repeat("0", 64)), 400, "bad_request_params"},
		{"private key n", "POST", imp, a.userKey, withKey(nHex), 400, "bad_request_params"},
		{"private key not hex", "POST", imp, a.userKey, withKey(strings.Repeat("zz", 32)), 400, "bad_request_params"},
		{"private key short", "POST", imp, a.userKey, withKey("abcd"), 400, "bad_request_params"},
		{"unknown key_id", "POST", recip, a.userKey, with("key_id", "0f0e0d0c-0b0a-4908-8706-050403020100"), 400, "key_id_not_exists"},
		{"another user's key_id", "POST", recip, mk, base(), 400, "key_id_not_exists"},
		{"sign before import", "POST", "/bip340/sign", a.userKey, map[string]any{"room_uuid": room, "key_id": s[0].keyID, "msg": "00"}, 400, "key_operation_before_keygen"},
		{"no API key", "GET", "/bip340/create", "", nil, 401, "access_denied"},
		{"wrong API key", "GET", "/bip340/create", "abcdef.0123456789", nil, 401, "access_denied"},
		{"user on an admin route", "GET", "/admin/list-all-system-keys", a.userKey, nil, 400, "you_have_to_be_admin"},
		{"relay_address not allowed", "POST", recip, a.userKey, with("relay_address", "127.0.0.1:1"), 400, "policy_validation_failed"},
		{"unknown route", "GET", "/bip340/nope", a.userKey, nil, 404, "not_found"},
	}
	for _, c := range cases {
		st, body := a.call(c.method, c.path, c.key, c.body)
		expectErr(t, c.name, st, body, c.status, c.errType)
	}

	// Another user's key answers exactly like an absent one.
	_, own := a.call("GET", "/bip340/keys/"+s[0].keyID, mk, nil)
	_, none := a.call("GET", "/bip340/keys/0f0e0d0c-0b0a-4908-8706-050403020100", mk, nil)
	if strings.ReplaceAll(own["_raw"].(string), s[0].keyID, "X") != strings.ReplaceAll(none["_raw"].(string), "0f0e0d0c-0b0a-4908-8706-050403020100", "X") {
		t.Errorf("another user's key %q differs from an absent one %q", own["_raw"], none["_raw"])
	}

	// A complete import, then a second import on the same key_id.
	priv, _ := newPrivateKey(t)
	for i, ans := range q.importKey(q.nodes, s, 2, priv) {
		if ans.status != 200 {
			t.Fatalf("import node %d: %v", i, ans.body["_raw"])
		}
	}
	st, body := b.call("POST", recip, b.userKey, map[string]any{"room_uuid": room, "key_id": s[1].keyID, "threshold": 2, "others_keygen_ids": []string{s[0].keygenID}})
	expectErr(t, "second import", st, body, 400, "already_performed_keygen")

	// A ceremony that fails: the importer's partner never shows up, so the
	// importer's call ends with executor_result naming it.
	s2 := q.slots(q.nodes)
	room2 := a.must("POST", "/create-room", a.userKey, map[string]any{"room_size": 2})["room_uuid"].(string)
	st, body = a.call("POST", imp, a.userKey, map[string]any{"room_uuid": room2, "key_id": s2[0].keyID, "threshold": 2,
		"others_keygen_ids": []string{s2[1].keygenID}, "private_key": priv})
	expectErr(t, "silent party", st, body, 400, "executor_result")
	if msg, _ := body["err_msg"].(string); !strings.Contains(msg, s2[1].keygenID) {
		t.Errorf("executor_result does not name the silent party %s: %q", s2[1].keygenID, msg)
	}
	// The importer stored its share, but its partner never announced its
	// own prepare, so the importer never signed: no certificate can exist,
	// and it discarded. The slot is empty again and the recovery data gone.
	rec := a.must("GET", "/bip340/keys/"+s2[0].keyID, a.userKey, nil)
	if rec["state"] != "created" || rec["pubkey"] != nil {
		t.Errorf("failed import left %v", rec)
	}
	st, body = a.call("GET", "/bip340/recovery-data/"+s2[0].keyID, a.userKey, nil)
	expectErr(t, "recovery data of a discarded import", st, body, 400, "key_operation_before_keygen")

	// delete-user with keys.
	st, body = a.call("DELETE", "/admin/delete-user?user_id="+a.userID, a.adminKey, nil)
	expectErr(t, "delete user with keys", st, body, 400, "user_has_associated_keys")
}

// TestE2ERelayDown: /create-room against a relay that is not there.
func TestE2ERelayDown(t *testing.T) {
	n := newNode(t, tokens[7], "127.0.0.1:1")
	n.userKey, _ = n.createUser("alice")
	st, body := n.call("POST", "/create-room", n.userKey, map[string]any{"room_size": 2})
	expectErr(t, "relay down", st, body, 400, "room_creation_problem")
}

// TestE2EWrappingKeyGone destroys the HSM wrapping key and a key slot's
// data key under a running daemon: a request needing them answers
// internal_problem, and the daemon keeps serving.
func TestE2EWrappingKeyGone(t *testing.T) {
	relayAddr := testkit.Relay(t)
	n := newNode(t, tokens[7], relayAddr, relayAddr)
	n.userKey, _ = n.createUser("bob")
	slot := n.must("GET", "/bip340/create", n.userKey, nil)
	other := n.must("GET", "/bip340/create", n.userKey, nil)
	keyID := slot["key_id"].(string)

	// The slot's secrets are sealed under its own data key: take that (and
	// the wrapping key) away from the token under the running daemon.
	ctx, err := crypto11.Configure(&crypto11.Config{Path: n.tok.Module, TokenLabel: n.tok.Label, Pin: n.tok.PIN})
	if err != nil {
		t.Fatal(err)
	}
	for _, label := range []string{e2eKeyLabel, hsm.DataKeyLabel(keyID)} {
		key, err := ctx.FindKey(nil, []byte(label))
		if err != nil || key == nil {
			t.Fatalf("key %s: %v", label, err)
		}
		if err := key.Delete(); err != nil {
			t.Fatal(err)
		}
	}
	room := n.must("POST", "/create-room", n.userKey, map[string]any{"room_size": 2})["room_uuid"].(string)
	privHex, _ := newPrivateKey(t)
	st, body := n.call("POST", "/bip340/import/key-importer", n.userKey, map[string]any{"room_uuid": room, "key_id": keyID,
		"threshold": 1, "others_keygen_ids": []string{other["keygen_id"].(string)}, "private_key": privHex})
	expectErr(t, "wrapping and data key gone", st, body, 500, "internal_problem")
	if st, _ := n.call("GET", "/healthz", "", nil); st != 200 {
		t.Fatalf("daemon stopped answering: %d", st)
	}
	ctx.Close()
}

// TestE2ENoSecretsInLogs captures every log line of 1-of-3 and 2-of-3
// imports and signatures: neither the private key nor (for 1-of-3, where
// every share equals it) any share appears, in any common encoding.
func TestE2ENoSecretsInLogs(t *testing.T) {
	relayAddr := testkit.Relay(t)
	q := newQuorum(t, relayAddr, 0, 3)
	var privs []string
	for _, thr := range []int{1, 2} {
		ids, pub, priv := q.importAndCheck(q.nodes, thr)
		q.signAndCheck(pick(q.nodes, 0, 1), pick(ids, 0, 1), pub)
		privs = append(privs, priv)
	}
	var logs strings.Builder
	for _, n := range q.nodes {
		logs.WriteString(n.logs.String())
	}
	all := strings.ToLower(logs.String())
	if strings.Count(all, `"key.imported"`) != 2*len(q.nodes) {
		t.Fatalf("want exactly one key.imported audit line per import and daemon (%d): the capture is incomplete or doubled", 2*len(q.nodes))
	}
	for _, p := range privs {
		raw, _ := hex.DecodeString(p)
		x := new(big.Int).SetBytes(raw)
		for _, enc := range []string{p, base64.StdEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(raw),
			x.String(), fmt.Sprint(raw), p[:16], p[48:]} {
			if strings.Contains(all, strings.ToLower(enc)) {
				t.Fatalf("a secret appears in the logs (encoding %q)", enc)
			}
		}
	}
}
