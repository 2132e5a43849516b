package main

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"sync"
	"testing"

	"github.com/quorumd/quorumd/daemon/importkey"
	"github.com/quorumd/quorumd/internal/testkit"
)

// TestE2EEncryptedImport: a 2-of-3 import whose importer receives the
// private key HPKE-encrypted (each KEM) to the import key it publishes,
// then a signature under the imported key. A ciphertext bound to another
// room, a tampered one and an unknown key label are bad_request_params
// answered before any room is joined, and the daemon logs nothing of them.
func TestE2EEncryptedImport(t *testing.T) {
	relayAddr := testkit.Relay(t)
	q := newQuorum(t, relayAddr, 0, 3)
	imp := q.nodes[0]
	for _, kem := range []string{"", importkey.KEMP256} {
		path := "/bip340/import/import-key"
		if kem != "" {
			path += "?kem=" + kem
		}
		ik := imp.must("GET", path, "", nil)
		pkb, err := base64.StdEncoding.DecodeString(ik["public_key"].(string))
		if err != nil {
			t.Fatal(err)
		}
		pub := importkey.Public{KEM: ik["kem"].(string), PublicKey: pkb, Label: ik["key_id_label"].(string)}
		wantKEM := kem
		if wantKEM == "" {
			wantKEM = importkey.DefaultKEM
		}
		if pub.KEM != wantKEM {
			t.Fatalf("GET %s answered kem %q", path, pub.KEM)
		}
		privHex, xonly := newPrivateKey(t)
		x, _ := hex.DecodeString(privHex)
		s := q.slots(q.nodes)
		kg, _ := hex.DecodeString(s[0].keygenID)

		encrypted := func(room string) map[string]any {
			ct, err := importkey.Encrypt(pub, importkey.Info(pub.Label, kg, s[0].keyID, room), x)
			if err != nil {
				t.Fatal(err)
			}
			return map[string]any{"key_id_label": pub.Label, "ciphertext": ct}
		}
		body := func(room string, enc map[string]any) map[string]any {
			return map[string]any{"room_uuid": room, "key_id": s[0].keyID, "threshold": 2,
				"others_keygen_ids": others(s, 0), "encrypted_private_key": enc}
		}
		room := imp.must("POST", "/create-room", imp.userKey, map[string]any{"room_size": 3})["room_uuid"].(string)
		other := imp.must("POST", "/create-room", imp.userKey, map[string]any{"room_size": 3})["room_uuid"].(string)

		// Refused: bound to another room, tampered, unknown label.
		tampered := encrypted(room)
		ct := tampered["ciphertext"].([]byte)
		ct[len(ct)-1] ^= 1
		unknown := encrypted(room)
		unknown["key_id_label"] = "qd-import-0-nope"
		var sent []string
		for name, enc := range map[string]map[string]any{"other room": encrypted(other), "tampered": tampered, "unknown label": unknown} {
			sent = append(sent, base64.StdEncoding.EncodeToString(enc["ciphertext"].([]byte)))
			st, b := imp.call("POST", "/bip340/import/key-importer", imp.userKey, body(room, enc))
			expectErr(t, name, st, b, 400, "bad_request_params")
		}

		var wg sync.WaitGroup
		answers := make([]answer, 3)
		for i, nd := range q.nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := map[string]any{"room_uuid": room, "key_id": s[i].keyID, "threshold": 2, "others_keygen_ids": others(s, i)}
				path := "/bip340/import/import-key-share-recipient"
				if i == 0 {
					b, path = body(room, encrypted(room)), "/bip340/import/key-importer"
				}
				st, out := nd.call("POST", path, nd.userKey, b)
				answers[i] = answer{st, out}
			}()
		}
		wg.Wait()
		for i, a := range answers {
			if a.status != 200 || a.body["pubkey"] != hex.EncodeToString(xonly) {
				t.Fatalf("%s import at node %d: %d %v", pub.KEM, i, a.status, a.body["_raw"])
			}
		}
		ids := []string{s[0].keyID, s[1].keyID, s[2].keyID}
		q.signAndCheck(pick(q.nodes, 0, 2), pick(ids, 0, 2), xonly)

		logs := imp.logs.String()
		for _, c := range sent {
			if strings.Contains(logs, c[:32]) {
				t.Fatal("a rejected ciphertext appears in the daemon's log")
			}
		}
		if strings.Contains(strings.ToLower(logs), privHex) {
			t.Fatal("the private key appears in the daemon's log")
		}
	}
}
