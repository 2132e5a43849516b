package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/policy/rules"
)

// TestE2EVertexClient: real daemons (SoftHSM, relay, FROST) serve a Vertex
// client's requests: a derived sign with the array derivation_path,
// extra_data and hash_algo verifies under the key derive-tweak-pubkey gives
// for the same path; with an external rule (the example prefix server over
// loopback) in every party's policy, an approved message is signed and a
// denied one is refused with policy_validation_failed.
func TestE2EVertexClient(t *testing.T) {
	relayAddr := testkit.Relay(t)
	q := newQuorum(t, relayAddr, 0, 2)
	nodes := q.nodes
	ids, _, _ := q.importAndCheck(nodes, 2)

	path := []int{44, 60, 0, 0, 7}
	derived := nodes[0].must("POST", "/bip340/derive-tweak-pubkey", nodes[0].userKey, map[string]any{"key_id": ids[0], "derivation_path": path})
	asString := nodes[1].must("POST", "/bip340/derive-tweak-pubkey", nodes[1].userKey, map[string]any{"key_id": ids[1], "derivation_path": "m/44/60/0/0/7"})
	if derived["pubkey"] != asString["pubkey"] {
		t.Fatalf("array and string paths derive %v and %v", derived["pubkey"], asString["pubkey"])
	}
	dpub, _ := hex.DecodeString(derived["pubkey"].(string))

	signAll := func(msg []byte) []answer {
		room := nodes[0].must("POST", "/create-room", nodes[0].userKey, map[string]any{"room_size": 2})["room_uuid"].(string)
		out := make([]answer, len(nodes))
		var wg sync.WaitGroup
		for i, nd := range nodes {
			wg.Go(func() {
				st, b := nd.call("POST", "/bip340/sign", nd.userKey, map[string]any{"room_uuid": room, "key_id": ids[i],
					"msg": hex.EncodeToString(msg), "derivation_path": path, "extra_data": "7b7d", "hash_algo": "none"})
				out[i] = answer{st, b}
			})
		}
		wg.Wait()
		return out
	}
	msg := append([]byte{0xbe, 0xef}, make([]byte, 30)...)
	for i, a := range signAll(msg) {
		if a.status != 200 {
			t.Fatalf("derived sign at node %d: %d %v", i, a.status, a.body["_raw"])
		}
		verify(t, dpub, msg, a.body["signature"].(string))
	}

	// An external rule in each party's policy.
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
		pid := nd.must("POST", "/admin/policies/create-policy", nd.adminKey, map[string]any{"name": "ETH custody", "rules": []any{ops, ext}})["policy_id"]
		nd.must("POST", "/admin/policies/assign-policy", nd.adminKey, map[string]any{"user_id": nd.userID, "policy_id": pid})
	}
	msg[31] = 1
	for i, a := range signAll(msg) {
		if a.status != 200 {
			t.Fatalf("approved sign at node %d: %d %v", i, a.status, a.body["_raw"])
		}
		verify(t, dpub, msg, a.body["signature"].(string))
	}
	msg[0] = 0
	for i, a := range signAll(msg) {
		expectErr(t, "denied sign at node "+string(rune('0'+i)), a.status, a.body, http.StatusBadRequest, "policy_validation_failed")
	}

	// Vertex's admin shapes on a real daemon.
	nd := nodes[0]
	u := nd.must("GET", "/admin/create-user?name=ETH%20Custody%20User", nd.adminKey, nil)
	nd.must("GET", "/admin/generate-api-key?user_id="+u["user_id"].(string), nd.adminKey, nil)
	all := nd.must("GET", "/admin/list-all-system-keys", nd.adminKey, nil)["keys_by_user"].(map[string]any)
	if recs := all[nd.userID].([]any); len(recs) != 1 || recs[0].(map[string]any)["key_type"] != "BIP340" {
		t.Fatalf("list-all-system-keys %v", all)
	}
}
