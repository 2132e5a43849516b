package main

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/ceremony"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/relay"
)

// buildQuorumctl builds the quorumctl binary for a test.
func buildQuorumctl(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "quorumctl")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/quorumctl")
	cmd.Dir = testkit.ModuleRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/quorumctl: %v\n%s", err, b)
	}
	return out
}

var (
	ctlPubkeyRE = regexp.MustCompile(`(?m)^pubkey: ([0-9a-f]{64})$`)
	ctlKeyIDsRE = regexp.MustCompile(`(?m)^key_ids: (\S+)$`)
)

// TestE2EDealLocally: `quorumctl import -deal-locally` (the real binary)
// deals a key to three real daemons, which all join as recipients: the key
// never reaches any daemon, every one ends ready with x·G, and two of them
// sign under it.
func TestE2EDealLocally(t *testing.T) {
	relayAddr := testkit.Relay(t)
	q := newQuorum(t, relayAddr, 0, 3)
	ctl := buildQuorumctl(t)
	privHex, xonly := newPrivateKey(t)
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(privHex+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var bases, keys []string
	for _, nd := range q.nodes {
		bases, keys = append(bases, nd.base), append(keys, nd.userKey)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctl, "import", "-deal-locally", "-relay-address", relayAddr, "-threshold", "2",
		"-daemons", strings.Join(bases, ","), "-keys", strings.Join(keys, ","), "-private-key-file", keyFile)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	if err != nil {
		t.Fatalf("quorumctl import -deal-locally: %v\n%s", err, out)
	}
	m, ids := ctlPubkeyRE.FindStringSubmatch(out), ctlKeyIDsRE.FindStringSubmatch(out)
	if m == nil || ids == nil || m[1] != hex.EncodeToString(xonly) {
		t.Fatalf("quorumctl answered no pubkey or another than x·G (%x):\n%s", xonly, out)
	}
	if !strings.Contains(out, "local dealer: dealt") {
		t.Errorf("quorumctl did not report the local deal:\n%s", out)
	}
	keyIDs := strings.Split(ids[1], ",")
	for i, nd := range q.nodes {
		rec := nd.must("GET", "/bip340/keys/"+keyIDs[i], nd.userKey, nil)
		if rec["state"] != "ready" || rec["pubkey"] != hex.EncodeToString(xonly) || rec["n"] != 3.0 || rec["t"] != 2.0 {
			t.Fatalf("node %d holds %v", i, rec)
		}
		if strings.Contains(strings.ToLower(nd.logs.String()), privHex) {
			t.Fatalf("the private key appears in node %d's log", i)
		}
	}
	q.signAndCheck(pick(q.nodes, 0, 2), pick(keyIDs, 0, 2), xonly)
	q.signAndCheck(pick(q.nodes, 1, 2), pick(keyIDs, 1, 2), xonly)
}

// TestE2EDealLocallyCheating: a local dealer (quorumctl's ceremony.Deal,
// in-process) that deals one daemon a share inconsistent with the
// commitments: every daemon aborts with executor_result naming the dealer,
// stores nothing, and the same slots then take an honest deal.
func TestE2EDealLocallyCheating(t *testing.T) {
	relayAddr := testkit.Relay(t)
	q := newQuorum(t, relayAddr, 0, 3)
	rc, err := relay.NewClient(relayAddr, relay.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	privHex, xonly := newPrivateKey(t)
	s := q.slots(q.nodes)
	parties := make([]envelope.Party, len(s))
	for i := range s {
		b, _ := hex.DecodeString(s[i].keygenID)
		parties[i] = envelope.Party(b)
	}
	deal := func(corrupt envelope.Party) (dealerHex string, dealErr error, answers []answer) {
		dealer, err := envelope.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		defer dealer.Zero()
		dp := dealer.Public()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		room, err := rc.CreateRoom(ctx, len(parties)+1)
		if err != nil {
			t.Fatal(err)
		}
		answers = make([]answer, len(q.nodes))
		var wg sync.WaitGroup
		for i, nd := range q.nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, b := nd.call("POST", "/bip340/import/import-key-share-recipient", nd.userKey, map[string]any{
					"room_uuid": room, "key_id": s[i].keyID, "threshold": 2, "others_keygen_ids": others(s, i),
					"relay_address": relayAddr, "dealer_id": hex.EncodeToString(dp[:])})
				answers[i] = answer{st, b}
			}()
		}
		var x btcec.ModNScalar
		xb, _ := hex.DecodeString(privHex)
		x.SetByteSlice(xb)
		clear(xb)
		seated := append(append([]envelope.Party(nil), parties...), dp)
		_, _, dealErr = ceremony.Deal(ctx, ceremony.DealParams{Room: room, Identity: dealer, Parties: parties, Threshold: 2,
			Transport: ceremony.RelayTransport(rc, room, dealer, seated), PrivateKey: &x, CorruptShareOf: corrupt})
		wg.Wait()
		return hex.EncodeToString(dp[:]), dealErr, answers
	}

	dealerHex, dealErr, answers := deal(parties[1])
	var ae *ceremony.AbortError
	if !errors.As(dealErr, &ae) || hex.EncodeToString(ae.Culprit[:]) != dealerHex {
		t.Errorf("the cheating dealer's error %v does not name it", dealErr)
	}
	for i, a := range answers {
		msg, _ := a.body["err_msg"].(string)
		if a.status != 400 || a.body["err_type"] != "executor_result" || !strings.Contains(msg, "culprit "+dealerHex) {
			t.Errorf("node %d: %d %v, want executor_result naming the dealer %s", i, a.status, a.body["_raw"], dealerHex[:16])
		}
		rec := q.nodes[i].must("GET", "/bip340/keys/"+s[i].keyID, q.nodes[i].userKey, nil)
		if rec["state"] != "created" {
			t.Errorf("node %d holds %v after the aborted import, want nothing stored", i, rec)
		}
	}
	if t.Failed() {
		return
	}
	// The slots are reusable: an honest deal to the same ones succeeds.
	if _, err, answers := deal(envelope.Party{}); err != nil {
		t.Fatalf("honest dealer after the abort: %v (answers %v)", err, answers)
	} else {
		for i, a := range answers {
			if a.status != 200 || a.body["pubkey"] != hex.EncodeToString(xonly) {
				t.Fatalf("node %d after the abort: %d %v", i, a.status, a.body["_raw"])
			}
		}
	}
}
