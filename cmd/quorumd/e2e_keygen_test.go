package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"filippo.io/age"

	"github.com/quorumd/quorumd/internal/agekey"
	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/policy"
)

// keygen runs POST /bip340/keygen at every node in one room.
func (q *cluster) keygen(nodes []*node, s []slot, t int) []answer {
	room := nodes[0].must("POST", "/create-room", nodes[0].userKey, map[string]any{"room_size": len(nodes)})["room_uuid"].(string)
	out := make([]answer, len(nodes))
	var wg sync.WaitGroup
	for i, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, b := nd.call("POST", "/bip340/keygen", nd.userKey,
				map[string]any{"room_uuid": room, "key_id": s[i].keyID, "threshold": t, "others_keygen_ids": others(s, i), "num_parties": len(nodes)})
			out[i] = answer{st, b}
		}()
	}
	wg.Wait()
	return out
}

// keygenAndCheck generates a key and checks every node answered the same
// pubkey for its own key_id.
func (q *cluster) keygenAndCheck(nodes []*node, t int) ([]string, []byte) {
	q.t.Helper()
	s := q.slots(nodes)
	out := q.keygen(nodes, s, t)
	var pub string
	for i, a := range out {
		if a.status != 200 || a.body["key_id"] != s[i].keyID {
			q.t.Fatalf("keygen at node %d: %d %v", i, a.status, a.body["_raw"])
		}
		if i == 0 {
			pub = a.body["pubkey"].(string)
		} else if a.body["pubkey"] != pub {
			q.t.Fatalf("node %d answered pubkey %v, node 0 %s", i, a.body["pubkey"], pub)
		}
	}
	pk, err := hex.DecodeString(pub)
	if err != nil || len(pk) != 32 {
		q.t.Fatalf("pubkey %q", pub)
	}
	ids := make([]string, len(s))
	for i := range s {
		ids[i] = s[i].keyID
	}
	return ids, pk
}

// TestE2EKeygenAndSign: ChillDKG through three real daemons (SoftHSM
// tokens, stores, relay), then signing with every pair; the request rules.
func TestE2EKeygenAndSign(t *testing.T) {
	q := newQuorum(t, testkit.Relay(t), 0, 3)
	ids, pub := q.keygenAndCheck(q.nodes, 2)
	q.signAndCheck(pick(q.nodes, 0, 2), pick(ids, 0, 2), pub)
	q.signAndCheck(pick(q.nodes, 1, 2), pick(ids, 1, 2), pub)
	rec := q.nodes[1].must("GET", "/bip340/keys/"+ids[1], q.nodes[1].userKey, nil)
	if rec["pubkey"] != hex.EncodeToString(pub) || rec["t"] != 2.0 || rec["n"] != 3.0 || rec["state"] != "ready" {
		t.Fatalf("key record %v", rec)
	}
	// Its recovery data is served like an import's.
	rd := q.nodes[2].must("GET", "/bip340/recovery-data/"+ids[2], q.nodes[2].userKey, nil)
	if rd["certified"] != true {
		t.Fatalf("recovery data %v", rd)
	}

	a := q.nodes[0]
	s := q.slots(q.nodes)
	body := func(mut func(map[string]any)) map[string]any {
		b := map[string]any{"room_uuid": "5b0e3c5e-8f43-4c8e-9a55-0d5f2a1b7c11", "key_id": s[0].keyID, "threshold": 2, "others_keygen_ids": others(s, 0)}
		if mut != nil {
			mut(b)
		}
		return b
	}
	st, out := a.call("POST", "/bip340/keygen", a.userKey, body(func(b map[string]any) { b["key_id"] = ids[0] }))
	expectErr(t, "keygen on a keyed slot", st, out, 400, "already_performed_keygen")
	st, out = a.call("POST", "/bip340/keygen", a.userKey, body(func(b map[string]any) { b["threshold"] = 4 }))
	expectErr(t, "threshold above N", st, out, 400, "bad_n_and_t_params")
	st, out = a.call("POST", "/bip340/keygen", a.userKey, body(func(b map[string]any) { b["num_parties"] = 5 }))
	expectErr(t, "num_parties not N", st, out, 400, "bad_n_and_t_params")
	st, out = a.call("POST", "/bip340/keygen", a.userKey, body(func(b map[string]any) { b["others_keygen_ids"] = []string{s[0].keygenID, s[1].keygenID} }))
	expectErr(t, "own keygen_id among the others", st, out, 400, "bad_request_params")
	st, out = a.call("POST", "/bip340/keygen", a.userKey, body(func(b map[string]any) { b["private_key"] = "01" }))
	expectErr(t, "unknown field", st, out, 400, "bad_request_params")
}

// withBackupConfig restarts n with a backup section in its configuration.
func withBackupConfig(t *testing.T, n *node, section string) {
	t.Helper()
	n.stop()
	f, err := os.OpenFile(n.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(f, section); err != nil {
		t.Fatal(err)
	}
	f.Close()
	n.start()
}

// withBackupPolicy restarts n with allow_backup_export in its default
// policy (encrypted to the hex X25519 key recipient).
func withBackupPolicy(t *testing.T, n *node, recipient string) {
	t.Helper()
	n.stop()
	src, err := policy.OpenFile(n.policyFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := src.GetPolicy(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	p.BackupExport = &policy.BackupExport{Mode: "encrypted", RecipientPubkey: recipient}
	if err := src.PutPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	src.Close()
	n.start()
}

// TestE2EBackupRoundTrip: a keygen'd party's backup, encrypted to the
// operator's age key, restores on a fresh daemon with a fresh SoftHSM token
// after the original share is deleted, and the restored party signs with
// the others (under a new key_id). Tampered, foreign and encrypted-to-the-
// daemon backups are refused with nothing stored; export is refused where
// it is not enabled.
func TestE2EBackupRoundTrip(t *testing.T) {
	relayAddr := testkit.Relay(t)
	q := newQuorum(t, relayAddr, 0, 3)
	operator, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	withBackupConfig(t, q.nodes[1], fmt.Sprintf("backup:\n  export: encrypted\n  recipient: %s\n", operator.Recipient()))
	ids, pub := q.keygenAndCheck(q.nodes, 2)

	st, out := q.nodes[0].call("GET", "/bip340/backup/export-key-share/"+ids[0], q.nodes[0].userKey, nil)
	expectErr(t, "export where it is disabled", st, out, 400, "server_share_backup_setting_disabled")

	// The policy's rule (allow_backup_export) allows export at node 2,
	// encrypted to the recipient it names.
	policyRecipient, _ := age.GenerateX25519Identity()
	rawHex, err := agekey.Hex(policyRecipient.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	withBackupPolicy(t, q.nodes[2], rawHex)
	exp2 := q.nodes[2].must("GET", "/bip340/backup/export-key-share/"+ids[2], q.nodes[2].userKey, nil)
	sealed2, _ := hex.DecodeString(exp2["key_share"].(string))
	if _, err := age.Decrypt(bytes.NewReader(sealed2), policyRecipient); err != nil || exp2["export_type"] != "encrypted" {
		t.Fatalf("the policy's recipient cannot open node 2's backup (%v): %v", err, exp2)
	}

	b := q.nodes[1]
	exp := b.must("GET", "/bip340/backup/export-key-share/"+ids[1], b.userKey, nil)
	if exp["export_type"] != "encrypted" {
		t.Fatalf("export %v", exp)
	}
	sealed, err := hex.DecodeString(exp["key_share"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("QRDBK")) {
		t.Fatal("the encrypted backup carries the plaintext header")
	}
	stranger, _ := age.GenerateX25519Identity()
	if _, err := age.Decrypt(bytes.NewReader(sealed), stranger); err == nil {
		t.Fatal("a foreign age identity opened the backup")
	}
	r, err := age.Decrypt(bytes.NewReader(sealed), operator)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}

	// The original share is gone.
	b.must("DELETE", "/bip340/delete-key-share/"+ids[1], b.userKey, nil)

	fresh := newNode(t, tokens[8], relayAddr, relayAddr)
	fresh.userKey, fresh.userID = fresh.createUser("alice")
	restore := func(typ string, data []byte) (int, map[string]any) {
		return fresh.call("POST", "/bip340/backup/import-key-share", fresh.userKey,
			map[string]any{"export_type": typ, "key_share": hex.EncodeToString(data)})
	}
	flip := func(i int) []byte {
		c := bytes.Clone(plain)
		c[i] ^= 1
		return c
	}
	for name, data := range map[string][]byte{
		"tampered share":         flip(6 + 32 + 5),
		"tampered identity":      flip(6 + 3),
		"tampered recovery data": flip(len(plain) - 100),
		"tampered version":       flip(5),
		"truncated":              plain[:len(plain)-1],
		"foreign bytes":          bytes.Repeat([]byte{7}, len(plain)),
	} {
		st, out := restore("plaintext", data)
		expectErr(t, name, st, out, 400, "bad_request_params")
	}
	st, out = fresh.call("POST", "/bip340/backup/import-key-share", fresh.userKey, map[string]any{"export_type": "plaintext", "key_share": "zz" + hex.EncodeToString(plain)})
	expectErr(t, "key_share not hex", st, out, 400, "bad_request_params")
	st, out = restore("encrypted", sealed)
	expectErr(t, "encrypted backup sent to the daemon", st, out, 400, "bad_request_params")
	keys := fresh.must("GET", "/admin/list-all-system-keys", fresh.adminKey, nil)
	if byUser, _ := keys["keys_by_user"].(map[string]any); len(byUser) != 0 {
		t.Fatalf("refused backups stored something: %v", keys["_raw"])
	}

	got := fresh.must("POST", "/bip340/backup/import-key-share", fresh.userKey,
		map[string]any{"export_type": "plaintext", "key_share": hex.EncodeToString(plain)})
	newID := got["key_id"].(string)
	if newID == ids[1] || got["pubkey"] != hex.EncodeToString(pub) {
		t.Fatalf("restore answered %v", got)
	}
	q.signAndCheck([]*node{q.nodes[0], fresh}, []string{ids[0], newID}, pub)
	q.signAndCheck([]*node{fresh, q.nodes[2]}, []string{newID, ids[2]}, pub)
}

// TestE2EKeygenCulprit: a party that never joins makes the keygen fail at
// the others with executor_result naming its keygen_id, and nothing is
// stored: the slots are still created and key again in a new room.
func TestE2EKeygenCulprit(t *testing.T) {
	relayAddr := testkit.Relay(t)
	q := &cluster{t: t}
	for i := range 3 {
		n := configureNode(t, tokens[5+i], relayAddr, "3s", relayAddr)
		n.start()
		t.Cleanup(n.stop)
		n.userKey, n.userID = n.createUser("alice")
		q.nodes = append(q.nodes, n)
	}
	s := q.slots(q.nodes)
	room := q.nodes[0].must("POST", "/create-room", q.nodes[0].userKey, map[string]any{"room_size": 3})["room_uuid"].(string)
	out := make([]answer, 2)
	var wg sync.WaitGroup
	for i, nd := range q.nodes[:2] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, b := nd.call("POST", "/bip340/keygen", nd.userKey,
				map[string]any{"room_uuid": room, "key_id": s[i].keyID, "threshold": 2, "others_keygen_ids": others(s, i)})
			out[i] = answer{st, b}
		}()
	}
	wg.Wait()
	for i, a := range out {
		expectErr(t, fmt.Sprintf("node %d with a silent party", i), a.status, a.body, 400, "executor_result")
		if msg, _ := a.body["err_msg"].(string); !strings.Contains(msg, "culprit "+s[2].keygenID) {
			t.Errorf("node %d: %q does not name the silent party's keygen_id %s", i, msg, s[2].keygenID)
		}
		rec := q.nodes[i].must("GET", "/bip340/keys/"+s[i].keyID, q.nodes[i].userKey, nil)
		if rec["state"] != "created" {
			t.Errorf("node %d: the failed keygen left its slot %v", i, rec["state"])
		}
	}
	// The same slots key in a new room.
	res := q.keygen(q.nodes, s, 2)
	for i, a := range res {
		if a.status != 200 {
			t.Fatalf("node %d: retry: %d %v", i, a.status, a.body["_raw"])
		}
	}
}
