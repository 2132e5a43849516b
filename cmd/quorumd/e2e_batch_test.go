package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/internal/uuid"
	"github.com/quorumd/quorumd/mpc/bip340"
	"github.com/quorumd/quorumd/mpc/relay"
	"github.com/quorumd/quorumd/policy/rules"
)

// batchItem is one entry of a batch-sign answer.
type batchItem struct {
	Signature string `json:"signature"`
	ErrType   string `json:"err_type"`
	ErrMsg    string `json:"err_msg"`
}

// batchSign posts a batch to one node: the decoded array on 200, else the
// error envelope in the second result.
func (n *node) batchSign(reqs []map[string]any) (int, []batchItem, batchItem) {
	n.t.Helper()
	raw, err := json.Marshal(map[string]any{"sign_requests": reqs})
	if err != nil {
		n.t.Fatal(err)
	}
	req, err := http.NewRequest("POST", n.base+"/bip340/batch-sign", bytes.NewReader(raw))
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Authorization", n.userKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var env batchItem
	if resp.StatusCode != 200 {
		if err := json.Unmarshal(body, &env); err != nil {
			n.t.Fatalf("batch-sign: %d %q", resp.StatusCode, body)
		}
		return resp.StatusCode, nil, env
	}
	var out []batchItem
	if err := json.Unmarshal(body, &out); err != nil {
		n.t.Fatalf("batch-sign: non-array answer %q", body)
	}
	return 200, out, env
}

// batchAll runs the same batch at every node concurrently; items(i) builds
// node i's sign_requests for the room.
func (q *cluster) batchAll(nodes []*node, items func(i int, room string) []map[string]any) [][]batchItem {
	q.t.Helper()
	room := nodes[0].must("POST", "/create-room", nodes[0].userKey, map[string]any{"room_size": len(nodes)})["room_uuid"].(string)
	out := make([][]batchItem, len(nodes))
	var wg sync.WaitGroup
	for i, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, res, env := nd.batchSign(items(i, room))
			if st != 200 {
				q.t.Errorf("node %d: %d %s %s", i, st, env.ErrType, env.ErrMsg)
			}
			out[i] = res
		}()
	}
	wg.Wait()
	if q.t.Failed() {
		q.t.FailNow()
	}
	return out
}

// TestE2EBatchSign: real daemons (SoftHSM, stores, a loopback relay) sign a
// batch of three messages in one ceremony. One item names a key_id that
// does not exist at node 0: node 0 answers key_id_not_exists for it, node 2
// answers executor_result naming node 0's keygen_id, and both return the
// same two signatures, which verify under the (derived) key. Request-level
// errors: batch_too_large above limits.max_batch_size, an empty list, two
// rooms in one batch, a relay outside the policy's allowlist.
func TestE2EBatchSign(t *testing.T) {
	t.Setenv("QUORUMD_LIMITS_MAX_BATCH_SIZE", "3")
	relayAddr := testkit.Relay(t)
	q := newQuorum(t, relayAddr, 0, 3)
	ids, pub, _ := q.importAndCheck(q.nodes, 2)
	signers := []int{0, 2}
	nodes := pick(q.nodes, signers...)
	keys := pick(ids, signers...)
	derived := nodes[0].must("POST", "/bip340/derive-tweak-pubkey", nodes[0].userKey,
		map[string]any{"key_id": keys[0], "derivation_path": "m/0/7"})["pubkey"].(string)
	keygen0 := nodes[0].must("GET", "/bip340/export-id/"+keys[0], nodes[0].userKey, nil)["keygen_id"].(string)

	msgs := make([][]byte, 3)
	for i := range msgs {
		msgs[i] = make([]byte, 32)
		rand.Read(msgs[i])
	}
	absent := uuid.New()
	out := q.batchAll(nodes, func(i int, room string) []map[string]any {
		badKey := keys[i]
		if i == 0 {
			badKey = absent
		}
		return []map[string]any{
			{"room_uuid": room, "key_id": keys[i], "msg": hex.EncodeToString(msgs[0]), "derivation_path": "m/0/7"},
			{"room_uuid": room, "key_id": badKey, "msg": hex.EncodeToString(msgs[1])},
			{"room_uuid": room, "key_id": keys[i], "msg": hex.EncodeToString(msgs[2])},
		}
	})
	derivedPub, _ := hex.DecodeString(derived)
	for j, res := range out {
		if len(res) != 3 {
			t.Fatalf("node %d: %d results for 3 items", signers[j], len(res))
		}
		for _, k := range []struct {
			item int
			pub  []byte
		}{{0, derivedPub}, {2, pub}} {
			r := res[k.item]
			sig, err := hex.DecodeString(r.Signature)
			if err != nil || r.ErrType != "" {
				t.Fatalf("node %d, item %d: %+v", signers[j], k.item, r)
			}
			if err := bip340.Verify(k.pub, msgs[k.item], sig); err != nil {
				t.Fatalf("node %d, item %d: %v", signers[j], k.item, err)
			}
			if r.Signature != out[0][k.item].Signature {
				t.Fatalf("item %d: nodes returned different signatures", k.item)
			}
		}
	}
	if r := out[0][1]; r.ErrType != "key_id_not_exists" || r.Signature != "" {
		t.Errorf("node 0, item 1: %+v, want key_id_not_exists", r)
	}
	if r := out[1][1]; r.ErrType != "executor_result" || !strings.Contains(r.ErrMsg, keygen0) || r.Signature != "" {
		t.Errorf("node 2, item 1: %+v, want executor_result naming %s", r, keygen0)
	}

	// One key per batch: the first item naming a key with a share sets it
	// (a slot never keyed fails alone), an item naming another key fails.
	idsB, pubB, _ := q.importAndCheck(q.nodes, 2)
	keysB := pick(idsB, signers...)
	fresh := q.slots(nodes)
	out = q.batchAll(nodes, func(i int, room string) []map[string]any {
		return []map[string]any{
			{"room_uuid": room, "key_id": fresh[i].keyID, "msg": hex.EncodeToString(msgs[0])},
			{"room_uuid": room, "key_id": keysB[i], "msg": hex.EncodeToString(msgs[1])},
			{"room_uuid": room, "key_id": keys[i], "msg": hex.EncodeToString(msgs[2])},
		}
	})
	for j, res := range out {
		if res[0].ErrType != "key_operation_before_keygen" || res[2].ErrType != "bad_request_params" {
			t.Errorf("node %d: %+v, want key_operation_before_keygen and bad_request_params", signers[j], res)
		}
		sig, _ := hex.DecodeString(res[1].Signature)
		if err := bip340.Verify(pubB, msgs[1], sig); err != nil {
			t.Errorf("node %d, item 1 (the batch's key): %+v: %v", signers[j], res[1], err)
		}
	}

	// Request-level errors: nothing is signed, one envelope answers.
	room := nodes[0].must("POST", "/create-room", nodes[0].userKey, map[string]any{"room_size": 2})["room_uuid"].(string)
	item := map[string]any{"room_uuid": room, "key_id": keys[0], "msg": "00"}
	other := map[string]any{"room_uuid": uuid.New(), "key_id": keys[0], "msg": "00"}
	elsewhere := map[string]any{"room_uuid": room, "key_id": keys[0], "msg": "00", "relay_address": "127.0.0.1:1"}
	for _, c := range []struct {
		what  string
		reqs  []map[string]any
		etype string
	}{
		{"four items", []map[string]any{item, item, item, item}, "batch_too_large"},
		{"empty", []map[string]any{}, "bad_request_params"},
		{"two rooms", []map[string]any{item, other}, "bad_request_params"},
		{"relay not on the allowlist", []map[string]any{elsewhere, elsewhere}, "policy_validation_failed"},
	} {
		st, res, env := nodes[0].batchSign(c.reqs)
		if st != 400 || env.ErrType != c.etype || res != nil {
			t.Errorf("%s: %d %+v %+v, want 400 %s", c.what, st, env, res, c.etype)
		}
	}
}

// BenchmarkE2EBatchSign compares, per message, a batch of 16 messages in
// one ceremony with 16 single signing ceremonies one after another, 2-of-3
// through HTTP against in-process daemons with real SoftHSM tokens and a
// loopback relay; the relay's and the daemons' room rate limits are lifted
// (16 single signs take 16 rooms).
func BenchmarkE2EBatchSign(b *testing.B) {
	b.Setenv("QUORUMD_LIMITS_USER_ROOMS", "1000000")
	b.Setenv("QUORUMD_LIMITS_USER_ROOM_RATE", "1000000")
	b.Setenv("QUORUMD_LIMITS_USER_ROOM_BURST", "1000000")
	t := &testing.T{}
	relayAddr := testkit.Relay(b, relay.Config{ClientRoomRate: 1e6, ClientRoomBurst: 1 << 20})
	q := newQuorum(t, relayAddr, 0, 3)
	b.Cleanup(func() {
		for _, n := range q.nodes {
			n.stop()
		}
	})
	q.t = t
	ids, pub, _ := q.importAndCheck(q.nodes, 2)
	nodes, keys := pick(q.nodes, 0, 2), pick(ids, 0, 2)
	const msgs = 16
	msg := make([]byte, 32)
	var perMsg [2]float64
	b.Run("single16", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for range b.N {
			t0 := time.Now()
			for range msgs {
				for _, a := range q.sign(nodes, keys, msg) {
					if a.status != 200 {
						b.Fatal(a.body["_raw"])
					}
				}
			}
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		perMsg[0] = float64(lat[len(lat)/2].Microseconds()) / 1000 / msgs
		b.ReportMetric(perMsg[0], "ms/msg")
	})
	b.Run("batch16", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for range b.N {
			t0 := time.Now()
			out := q.batchAll(nodes, func(i int, room string) []map[string]any {
				reqs := make([]map[string]any, msgs)
				for k := range reqs {
					reqs[k] = map[string]any{"room_uuid": room, "key_id": keys[i], "msg": hex.EncodeToString(msg)}
				}
				return reqs
			})
			lat = append(lat, time.Since(t0))
			for _, r := range out[0] {
				sig, _ := hex.DecodeString(r.Signature)
				if bip340.Verify(pub, msg, sig) != nil {
					b.Fatalf("batch item: %+v", r)
				}
			}
		}
		slices.Sort(lat)
		perMsg[1] = float64(lat[len(lat)/2].Microseconds()) / 1000 / msgs
		b.ReportMetric(perMsg[1], "ms/msg")
	})
	if perMsg[0] == 0 || perMsg[1] == 0 {
		b.Fatal("a sub-benchmark did not complete (the cluster helpers end the goroutine on failure, e.g. a room limit)")
	}
	if perMsg[0] > 0 && perMsg[1] > 0 {
		b.Logf("per-message cost, batch of %d vs %d single signs: %.3f", msgs, msgs, perMsg[1]/perMsg[0])
	}
}

// TestE2EBatchSignRules: with an external rule server (the example prefix
// server) in both parties' policies, each batch item is put to it: the
// denied item fails alone with policy_validation_failed at both parties,
// the approved ones (one with Vertex's array derivation_path, extra_data and
// hash_algo) are signed and verify.
func TestE2EBatchSignRules(t *testing.T) {
	relayAddr := testkit.Relay(t)
	q := newQuorum(t, relayAddr, 0, 2)
	nodes := q.nodes
	ids, pub, _ := q.importAndCheck(nodes, 2)
	path := []int{44, 60, 0, 0, 7}
	dpub, _ := hex.DecodeString(nodes[0].must("POST", "/bip340/derive-tweak-pubkey", nodes[0].userKey,
		map[string]any{"key_id": ids[0], "derivation_path": path})["pubkey"].(string))

	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	rs := httptest.NewServer(&rules.PrefixServer{Key: edKey, Prefixes: [][]byte{{0xbe, 0xef}}})
	defer rs.Close()
	der, _ := x509.MarshalPKIXPublicKey(edKey.Public())
	pubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	for _, nd := range nodes {
		ops := nd.must("POST", "/admin/policies/create-rule", nd.adminKey, map[string]any{"name": "custody ops",
			"allowed_operations": []string{"create_room", "sign", "derive_tweak_pubkey", "get_key"}, "max_n": 4})["rule_id"]
		ext := nd.must("POST", "/admin/policies/add-external-rule", nd.adminKey, map[string]any{"name": "beef only",
			"jwt_alg": "EdDSA", "pubkey": pubPEM, "url": rs.URL})["rule_id"]
		pid := nd.must("POST", "/admin/policies/create-policy", nd.adminKey, map[string]any{"name": "batch custody", "rules": []any{ops, ext}})["policy_id"]
		nd.must("POST", "/admin/policies/assign-policy", nd.adminKey, map[string]any{"user_id": nd.userID, "policy_id": pid})
	}
	msgs := [][]byte{append([]byte{0xbe, 0xef}, make([]byte, 30)...), make([]byte, 32), append([]byte{0xbe, 0xef, 2}, make([]byte, 29)...)}
	out := q.batchAll(nodes, func(i int, room string) []map[string]any {
		return []map[string]any{
			{"room_uuid": room, "key_id": ids[i], "msg": hex.EncodeToString(msgs[0]), "derivation_path": path, "extra_data": "7b7d", "hash_algo": "none"},
			{"room_uuid": room, "key_id": ids[i], "msg": hex.EncodeToString(msgs[1])},
			{"room_uuid": room, "key_id": ids[i], "msg": hex.EncodeToString(msgs[2])},
		}
	})
	for j, res := range out {
		if res[1].ErrType != "policy_validation_failed" || res[1].Signature != "" {
			t.Errorf("node %d, denied item: %+v", j, res[1])
		}
		for _, k := range []struct {
			item int
			pub  []byte
		}{{0, dpub}, {2, pub}} {
			sig, _ := hex.DecodeString(res[k.item].Signature)
			if err := bip340.Verify(k.pub, msgs[k.item], sig); err != nil {
				t.Errorf("node %d, item %d: %+v: %v", j, k.item, res[k.item], err)
			}
		}
	}
}
