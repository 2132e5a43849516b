package main

import (
	"encoding/hex"
	"fmt"
	"sync"
	"testing"

	"github.com/quorumd/quorumd/internal/testkit"
)

// lifecycleCall is one daemon's part in a refresh or reshare: its path and
// body (the room is filled in).
type lifecycleCall struct {
	node *node
	path string
	body map[string]any
}

// runLifecycle runs the calls in one fresh room and returns the answers.
func (q *cluster) runLifecycle(calls []lifecycleCall) []answer {
	first := calls[0].node
	room := first.must("POST", "/create-room", first.userKey, map[string]any{"room_size": len(calls)})["room_uuid"].(string)
	out := make([]answer, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		c.body["room_uuid"] = room
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, b := c.node.call("POST", c.path, c.node.userKey, c.body)
			out[i] = answer{st, b}
		}()
	}
	wg.Wait()
	return out
}

// newKeyIDs checks every answer is 200 with pub and returns the key_ids.
func (q *cluster) newKeyIDs(what string, out []answer, pub []byte) []string {
	q.t.Helper()
	ids := make([]string, len(out))
	for i, a := range out {
		if a.status != 200 || a.body["pubkey"] != hex.EncodeToString(pub) {
			q.t.Fatalf("%s at party %d: %d %v", what, i, a.status, a.body["_raw"])
		}
		ids[i] = a.body["key_id"].(string)
	}
	return ids
}

func (q *cluster) refresh(nodes []*node, keyIDs []string) []answer {
	calls := make([]lifecycleCall, len(nodes))
	for i, nd := range nodes {
		calls[i] = lifecycleCall{nd, "/bip340/refresh", map[string]any{"key_id": keyIDs[i]}}
	}
	return q.runLifecycle(calls)
}

// reshare moves the key held by holders (keyIDs) to holders + newcomers at
// threshold t; newcomers get fresh slots. The result is by position:
// holders first, then newcomers.
func (q *cluster) reshare(holders []*node, keyIDs []string, newcomers []*node, t int, pin []byte) []answer {
	return q.reshareOpt(holders, keyIDs, newcomers, t, pin, false)
}

// reshareOpt is reshare; deleteOld makes the holders destroy their old
// generation once the new one is certified.
func (q *cluster) reshareOpt(holders []*node, keyIDs []string, newcomers []*node, t int, pin []byte, deleteOld bool) []answer {
	var set []slot
	for i, nd := range holders {
		set = append(set, slot{keyIDs[i], nd.must("GET", "/bip340/export-id/"+keyIDs[i], nd.userKey, nil)["keygen_id"].(string)})
	}
	set = append(set, q.slots(newcomers)...)
	var calls []lifecycleCall
	for i, nd := range append(append([]*node(nil), holders...), newcomers...) {
		body := map[string]any{"key_id": set[i].keyID}
		if i < len(holders) {
			body["new_threshold"], body["new_keygen_ids"] = t, others(set, i)
			if deleteOld {
				body["delete_old"] = true
			}
			calls = append(calls, lifecycleCall{nd, "/bip340/reshare/existing-party", body})
		} else {
			body["threshold"], body["others_keygen_ids"], body["pubkey"] = t, others(set, i), hex.EncodeToString(pin)
			calls = append(calls, lifecycleCall{nd, "/bip340/reshare/new-party", body})
		}
	}
	return q.runLifecycle(calls)
}

// TestE2ELifecycle: through HTTP against real daemons (SoftHSM tokens,
// stores, a loopback relay): import 2-of-3, refresh, sign; old and new
// shares cannot sign together; reshare 2-of-3 → 2-of-4 with a fourth
// daemon, sign with the new daemon and an old one; remove a party (2-of-4 →
// 2-of-3) and sign; the key never changes.
func TestE2ELifecycle(t *testing.T) {
	relayAddr := testkit.Relay(t)
	q := newQuorum(t, relayAddr, 0, 4)
	three := q.nodes[:3]
	ids, pub, _ := q.importAndCheck(three, 2)

	ref := q.newKeyIDs("refresh", q.refresh(three, ids), pub)
	for i := range ref {
		if ref[i] == ids[i] {
			t.Fatal("refresh answered the old key_id")
		}
	}
	q.signAndCheck(pick(three, 0, 2), pick(ref, 0, 2), pub)
	// The old key_ids still sign together (Vertex keeps them until
	// deleted); an old share and a new one never do.
	q.signAndCheck(pick(three, 0, 1), pick(ids, 0, 1), pub)
	msg := make([]byte, 32)
	for i, a := range q.sign(pick(three, 0, 1), []string{ids[0], ref[1]}, msg) {
		if a.status == 200 || a.body["err_type"] != "executor_result" {
			t.Fatalf("mixed generations at party %d: %d %v", i, a.status, a.body["_raw"])
		}
	}

	// Add a fourth daemon.
	four := q.newKeyIDs("reshare 2-of-3 to 2-of-4", q.reshare(three, ref, q.nodes[3:], 2, pub), pub)
	q.signAndCheck(pick(q.nodes, 3, 1), pick(four, 3, 1), pub)
	rec := q.nodes[3].must("GET", "/bip340/keys/"+four[3], q.nodes[3].userKey, nil)
	if rec["t"] != 2.0 || rec["n"] != 4.0 || rec["state"] != "ready" {
		t.Fatalf("new party's record %v", rec)
	}

	// Remove node 0: nodes 1..3 reshare to 2-of-3 among themselves and
	// destroy their 2-of-4 shares, so node 0's old share is useless.
	rest := q.nodes[1:]
	three2 := q.newKeyIDs("reshare 2-of-4 to 2-of-3", q.reshareOpt(rest, four[1:], nil, 2, pub, true), pub)
	for i, nd := range rest {
		st, body := nd.call("GET", "/bip340/keys/"+four[1+i], nd.userKey, nil)
		expectErr(t, "the old generation after delete_old", st, body, 400, "key_id_not_exists")
	}
	q.signAndCheck(pick(rest, 0, 2), pick(three2, 0, 2), pub)
	rec = rest[2].must("GET", "/bip340/keys/"+three2[2], rest[2].userKey, nil)
	if rec["n"] != 3.0 {
		t.Fatalf("after removal: %v", rec)
	}

	// Repair: node 3 lost its share and its identity key; it makes a fresh
	// slot (a new keygen_id) and nodes 1 and 2 reshare to it. The key is
	// never reconstructed, and the replacement signs.
	repaired := q.newKeyIDs("repair", q.reshare(rest[:2], three2[:2], rest[2:], 2, pub), pub)
	q.signAndCheck(pick(rest, 2, 0), pick(repaired, 2, 0), pub)

	// A new party that pins another key refuses; the holders' new slots
	// are removed, nothing is half-written.
	before := len(q.nodes[1].must("GET", "/admin/list-all-system-keys", q.nodes[1].adminKey, nil)["keys_by_user"].(map[string]any)[q.nodes[1].userID].([]any))
	_, other := newPrivateKey(t)
	for i, a := range q.reshare(rest[:2], three2[:2], q.nodes[:1], 2, other) {
		if a.status != 400 || a.body["err_type"] != "executor_result" {
			t.Fatalf("reshare to a party pinning another key, party %d: %d %v", i, a.status, a.body["_raw"])
		}
	}
	after := len(q.nodes[1].must("GET", "/admin/list-all-system-keys", q.nodes[1].adminKey, nil)["keys_by_user"].(map[string]any)[q.nodes[1].userID].([]any))
	if after != before {
		t.Fatalf("a failed reshare left %d key slots behind", after-before)
	}

	s := q.slots(q.nodes[:1])
	st, body := q.nodes[0].call("POST", "/bip340/reshare/new-party", q.nodes[0].userKey, map[string]any{"room_uuid": "00000000-0000-4000-8000-000000000000",
		"key_id": s[0].keyID, "threshold": 2, "others_keygen_ids": []string{"zz"}})
	expectErr(t, "bad keygen id", st, body, 400, "bad_request_params")
	st, body = q.nodes[0].call("POST", "/bip340/reshare/existing-party", q.nodes[0].userKey, map[string]any{"room_uuid": "00000000-0000-4000-8000-000000000000",
		"key_id": s[0].keyID, "new_threshold": 2, "new_keygen_ids": others(q.slots(q.nodes[1:2]), 5)})
	expectErr(t, "reshare from a key with no share", st, body, 400, "key_operation_before_keygen")
}

// BenchmarkE2ELifecycle measures whole refresh and reshare ceremonies
// through HTTP against in-process daemons (real SoftHSM tokens, stores, a
// loopback relay), one at a time, each generation refreshing or
// resharing the previous one: 2-of-3, and 5-of-8 (the test tokens' limit).
func BenchmarkE2ELifecycle(b *testing.B) {
	t := &testing.T{}
	relayAddr := testkit.Relay(b)
	q := newQuorum(t, relayAddr, 0, 8)
	b.Cleanup(func() {
		for _, n := range q.nodes {
			n.stop()
		}
	})
	for _, tc := range []struct{ t, n int }{{2, 3}, {5, 8}} {
		nodes := q.nodes[:tc.n]
		ids, pub, _ := q.importAndCheck(nodes, tc.t)
		for _, mode := range []string{"refresh", "reshare"} {
			b.Run(fmt.Sprintf("%s/%d-of-%d", mode, tc.t, tc.n), func(b *testing.B) {
				for b.Loop() {
					var out []answer
					if mode == "refresh" {
						out = q.refresh(nodes, ids)
					} else {
						out = q.reshare(nodes, ids, nil, tc.t, pub)
					}
					for _, a := range out {
						if a.status != 200 {
							b.Fatal(a.body["_raw"])
						}
					}
					for i, a := range out {
						ids[i] = a.body["key_id"].(string)
					}
				}
			})
		}
	}
}
