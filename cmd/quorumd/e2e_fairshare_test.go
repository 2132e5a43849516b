package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/relay"
	"github.com/quorumd/quorumd/policy"
)

// TestE2ESigningFloodStarvesNobody (issue 11): one API key holds as many
// signing requests as it can in rooms nobody joins; another user still
// imports and signs with a 2-of-2 quorum through the flooded daemon, the
// admin still lists keys and revokes the flooder's key, /healthz answers,
// and the flooder's surplus is refused with 503 and Retry-After, while the
// flooder never holds more than its half of the locked secret slots.
// Outcomes only, no timing.
func TestE2ESigningFloodStarvesNobody(t *testing.T) {
	relayAddr := testkit.Relay(t)
	nodes := make([]*node, 2)
	for i := range nodes {
		nodes[i] = configureNode(t, tokens[i], relayAddr, "15s", relayAddr)
		if i == 0 {
			// A small locked-memory arena: the ceremony budget derived from
			// it (8 ceremonies, two slots each) and the flooder's half of
			// it leave the honest user's ceremonies their slots.
			nodes[i].editConfig("  max_concurrent_requests: 8\n  locked_secret_slots: 16\n  admin_reserved_requests: 2\n", "")
		}
		nodes[i].start()
		t.Cleanup(nodes[i].stop)
	}
	for _, nd := range nodes {
		nd.userKey, nd.userID = nd.createUser("alice")
	}
	mallory := make([]*node, 2)
	var malloryID string
	for i, nd := range nodes {
		mallory[i] = &node{t: t, base: nd.base}
		mallory[i].userKey, mallory[i].userID = nd.createUser("mallory")
	}
	malloryID = mallory[0].userID
	mq := &cluster{t: t, nodes: mallory}
	malloryKeys, _, _ := mq.importAndCheck(mallory, 2)

	// The flood: 24 workers (three times the ceremony budget), each signing
	// in a fresh room nobody else joins, again and again.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	flood := floodSigns(ctx, t, nodes[0], relayAddr, mallory[0].userKey, malloryKeys[0], 24)
	// Wait until the flooder holds its whole share: its surplus is refused.
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, body := nodes[0].call("POST", "/bip340/sign", mallory[0].userKey, map[string]any{
			"room_uuid": "00000000-0000-4000-8000-000000000000", "key_id": malloryKeys[0], "msg": strings.Repeat("00", 32)})
		if st == 503 && body["err_type"] == "internal_problem" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the flooder was never refused: %d %v", st, body["_raw"])
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Another user imports and signs through the flooded daemon.
	q := &cluster{t: t, nodes: nodes}
	ids, pub, _ := q.importAndCheck(nodes, 2)
	q.signAndCheck(nodes, ids, pub)
	nodes[0].must("GET", "/bip340/keys/"+ids[0], nodes[0].userKey, nil)
	nodes[0].must("GET", "/healthz", "", nil)
	nodes[0].must("GET", "/admin/list-all-system-keys", nodes[0].adminKey, nil)

	// The admin revokes the flooder while it is flooding.
	nodes[0].must("DELETE", "/admin/revoke-api-key", nodes[0].adminKey, map[string]any{"user_id": malloryID, "api_key": mallory[0].userKey})
	st, body := nodes[0].call("GET", "/bip340/keys/"+malloryKeys[0], mallory[0].userKey, nil)
	expectErr(t, "revoked flooder", st, body, 401, "access_denied")
	stop()
	codes := flood()
	if codes[503] == 0 {
		t.Fatalf("the flood was never refused: %v", codes)
	}
	if logs := nodes[0].logs.String(); strings.Contains(logs, "waiting for locked memory") {
		t.Fatalf("a call waited for locked memory:\n%s", logs)
	}
	metrics := nodes[0].metricsText()
	if !strings.Contains(metrics, `quorumd_http_rejected_total{reason="user_ceremonies"}`) {
		t.Fatalf("no user_ceremonies rejections in the metrics:\n%s", metrics)
	}
}

func (n *node) metricsText() string {
	n.t.Helper()
	res, err := http.Get(n.base + "/metrics")
	if err != nil {
		n.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return string(raw)
}

// TestE2ERoomFloodStarvesNobody (issue 11): one key creating rooms as fast
// as it can through /create-room is stopped at its quota, well before the
// relay's room cap, and another user can still create rooms.
func TestE2ERoomFloodStarvesNobody(t *testing.T) {
	const relayCap = 300
	relayAddr := testkit.Relay(t, relay.Config{MaxRooms: relayCap})
	n := configureNode(t, tokens[2], relayAddr, "15s", relayAddr)
	n.editConfig("", "  user_rooms: 100\n  user_room_burst: 100\n  user_room_rate: 1000\n")
	n.start()
	t.Cleanup(n.stop)
	flooder, _ := n.createUser("flooder")
	honest, _ := n.createUser("honest")

	var mu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 60 {
				st, body := n.call("POST", "/create-room", flooder, map[string]any{"room_size": 2})
				mu.Lock()
				codes[fmt.Sprintf("%d %v", st, body["err_type"])]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if codes["200 <nil>"] != 100 || codes["400 policy_validation_failed"]+codes["503 internal_problem"] != 380 {
		t.Fatalf("flood answers: %v", codes)
	}
	for range 10 {
		n.must("POST", "/create-room", honest, map[string]any{"room_size": 3})
	}
}

// TestE2EKeyQuotaRace (issue 11): 20 concurrent /bip340/create calls under
// a key quota of 2 leave exactly 2 keys (the store counts and inserts in
// one transaction).
func TestE2EKeyQuotaRace(t *testing.T) {
	relayAddr := testkit.Relay(t)
	n := configureNode(t, tokens[3], relayAddr, "15s", relayAddr)
	src, err := policy.OpenFile(n.policyFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := src.PutPolicy(ctx, policy.Policy{Name: "two", AllowedOperations: []policy.Operation{policy.OpCreateKey, policy.OpGetKey},
		KeyQuota: 2}); err != nil {
		t.Fatal(err)
	}
	key, _, err := src.CreateUser(ctx, "quota-two", false, "two")
	if err != nil {
		t.Fatal(err)
	}
	src.Close()
	n.start()
	t.Cleanup(n.stop)

	var wg sync.WaitGroup
	answers := make([]answer, 20)
	for i := range answers {
		wg.Go(func() {
			st, body := n.call("GET", "/bip340/create", key, nil)
			answers[i] = answer{st, body}
		})
	}
	wg.Wait()
	ok := 0
	for _, a := range answers {
		switch {
		case a.status == 200:
			ok++
		case a.status == 400 && a.body["err_type"] == "policy_validation_failed":
		default:
			t.Fatalf("answer %d %v", a.status, a.body["_raw"])
		}
	}
	if ok != 2 {
		t.Fatalf("%d of 20 concurrent creations succeeded under quota 2", ok)
	}
	st, body := n.call("GET", "/admin/list-all-system-keys", n.adminKey, nil)
	if st != 200 {
		t.Fatal(body["_raw"])
	}
	total := 0
	for _, keys := range body["keys_by_user"].(map[string]any) {
		total += len(keys.([]any))
	}
	if total != 2 {
		t.Fatalf("%d keys stored", total)
	}
}

// TestE2EStrictRouting (issue 11): the paths that reached other routes, two
// Authorization headers, and probes with cache-busters, against a real
// daemon over a raw connection (no client-side path cleaning).
func TestE2EStrictRouting(t *testing.T) {
	relayAddr := testkit.Relay(t)
	n := newNode(t, tokens[4], relayAddr)
	n.userKey, _ = n.createUser("alice")
	keyID := n.must("GET", "/bip340/create", n.userKey, nil)["key_id"].(string)
	raw := func(line string, headers ...string) (int, map[string]any) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(n.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		req := line + " HTTP/1.1\r\nHost: quorumd\r\nConnection: close\r\n"
		for _, h := range headers {
			req += h + "\r\n"
		}
		io.WriteString(conn, req+"\r\n")
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		defer res.Body.Close()
		out := map[string]any{}
		b, _ := io.ReadAll(res.Body)
		json.Unmarshal(b, &out)
		out["_raw"] = string(b)
		return res.StatusCode, out
	}
	for _, line := range []string{
		"GET /bip340/keys/%2e%2e%2f%2e%2e%2fadmin%2flist-all-system-keys",
		"GET /bip340/export-id/..%2Fkeys%2F" + keyID,
		"GET /bip340/create/..%2F..%2Fhealthz",
		"GET /bip340/keys/../../admin/list-all-system-keys",
		"GET /admin//list-all-system-keys",
		"GET /admin/./list-all-system-keys",
		"DELETE /bip340/delete-key-share/" + keyID + "%2F..",
	} {
		st, body := raw(line, "Authorization: "+n.adminKey)
		if (st != 400 || body["err_type"] != "bad_request_params") && (st != 404 || body["err_type"] != "not_found") {
			t.Errorf("%s: %d %v", line, st, body["_raw"])
		}
	}
	st, body := raw("GET /bip340/keys/"+keyID, "Authorization: "+n.userKey, "Authorization: "+n.adminKey)
	expectErr(t, "two Authorization headers", st, body, 400, "bad_request_params")
	if st, body := raw("GET /bip340/keys/"+keyID, "Authorization: "+n.userKey); st != 200 {
		t.Fatalf("plain path: %d %v", st, body["_raw"])
	}
	for _, p := range []string{"/healthz?x=1", "/readyz?x=1&_=123"} {
		n.must("GET", p, "", nil)
	}
	if !strings.Contains(n.logs.String(), `"path":"/bip340/create/..%2F..%2Fhealthz"`) {
		t.Error("the access log does not record the raw path")
	}
}
