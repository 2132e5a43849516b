package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/boot"
	"github.com/quorumd/quorumd/daemon/importkey"
	"github.com/quorumd/quorumd/internal/testkit"
)

// startWithImportKeys serves n in this process with the real backends
// (boot.OpenBackends, as main does) and hands the test the daemon's own
// import keys, so the test can rotate them on this replica.
func (n *node) startWithImportKeys(t *testing.T) *importkey.Keys {
	t.Helper()
	cfg, _, err := daemon.LoadConfig(n.cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	log, err := boot.NewLogger(n.logs, cfg.Log.Level)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *importkey.Keys, 1)
	open := func(ctx context.Context, cfg *daemon.Config, log *slog.Logger) (daemon.Backends, io.Closer, error) {
		b, c, err := boot.OpenBackends(ctx, cfg, log)
		if err == nil {
			got <- b.ImportKeys.(*importkey.Keys)
		}
		return b, c, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- boot.Run(ctx, cfg, log, boot.Options{Version: "e2e", Open: open, Ready: ready}) }()
	select {
	case addr := <-ready:
		n.base = n.proxied("http://" + addr)
	case err := <-done:
		cancel()
		t.Fatalf("daemon: %v:\n%s", err, n.logs.String())
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("daemon did not start:\n%s", n.logs.String())
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	})
	return <-got
}

// fetchImportKey is GET /bip340/import/import-key (kem "" for the default).
func (n *node) fetchImportKey(t *testing.T, kem string) importkey.Public {
	t.Helper()
	path := "/bip340/import/import-key"
	if kem != "" {
		path += "?kem=" + kem
	}
	ik := n.must("GET", path, "", nil)
	pk, err := base64.StdEncoding.DecodeString(ik["public_key"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return importkey.Public{KEM: ik["kem"].(string), PublicKey: pk, Label: ik["key_id_label"].(string)}
}

// encryptedImport imports a fresh key 2-of-3 with nodes[0] as importer,
// its private key HPKE-encrypted to pub (fetched from wherever the caller
// did), and returns the key ids and the public key.
func (q *cluster) encryptedImport(nodes []*node, pub importkey.Public) ([]string, []byte) {
	t := q.t
	t.Helper()
	privHex, xonly := newPrivateKey(t)
	x, _ := hex.DecodeString(privHex)
	s := q.slots(nodes)
	kg, _ := hex.DecodeString(s[0].keygenID)
	room := nodes[0].must("POST", "/create-room", nodes[0].userKey, map[string]any{"room_size": len(nodes)})["room_uuid"].(string)
	ct, err := importkey.Encrypt(pub, importkey.Info(pub.Label, kg, s[0].keyID, room), x)
	if err != nil {
		t.Fatal(err)
	}
	answers := make([]answer, len(nodes))
	var wg sync.WaitGroup
	for i, nd := range nodes {
		wg.Go(func() {
			body := map[string]any{"room_uuid": room, "key_id": s[i].keyID, "threshold": 2, "others_keygen_ids": others(s, i)}
			path := "/bip340/import/import-key-share-recipient"
			if i == 0 {
				body["encrypted_private_key"] = map[string]any{"key_id_label": pub.Label, "ciphertext": ct}
				path = "/bip340/import/key-importer"
			}
			answers[i] = nd.tryCall("POST", path, nd.userKey, body)
		})
	}
	wg.Wait()
	ids := make([]string, len(nodes))
	for i, a := range answers {
		if a.status != 200 || a.body["pubkey"] != hex.EncodeToString(xonly) {
			t.Fatalf("%s import at node %d: %d %v", pub.KEM, i, a.status, a.body["_raw"])
		}
		ids[i] = s[i].keyID
	}
	return ids, xonly
}

// TestE2EEncryptedImportAcrossReplicas: the importing party runs as two
// replicas over one PostgreSQL database and one SoftHSM token: a1 in this
// process, a2 as a quorumd process. Both publish the same import key. A
// client fetches it from a1 and sends key-importer with
// encrypted_private_key to a2: the import succeeds and the quorum signs
// (through either replica). Then a1 rotates its import key; a2 has not
// loaded the new generation, yet a ciphertext to it, fetched from a1, is
// accepted by a2 (a label of a newer generation makes a2 reload the keys
// from the store), after which a2 publishes the new key too; a ciphertext
// to the previous generation is still accepted.
func TestE2EEncryptedImportAcrossReplicas(t *testing.T) {
	pg := testkit.PostgresOrSkip(t)
	dsn, err := pg.CreateDatabase(context.Background(), "importer")
	if err != nil {
		t.Fatal(err)
	}
	bin := buildQuorumd(t)
	relayAddr := testkit.Relay(t)
	p := configureNode(t, tokens[4], relayAddr, e2eCeremonyTimeout, relayAddr)
	r := configureNode(t, tokens[5], relayAddr, e2eCeremonyTimeout, relayAddr)
	for _, n := range []*node{p, r} {
		n.start()
		t.Cleanup(n.stop)
	}
	a1 := configureNode(t, tokens[6], relayAddr, e2eCeremonyTimeout, relayAddr)
	usePostgres(t, a1, dsn)
	a2 := replicaOf(t, a1)
	keys := a1.startWithImportKeys(t) // first: it creates the wrapping key on the token
	a2.startProc(t, bin)
	for _, n := range []*node{p, r, a1} {
		n.userKey, n.userID = n.createUser("alice")
	}
	a2.userKey, a2.userID = a1.userKey, a1.userID
	q := &cluster{t: t}

	for _, kem := range []string{importkey.KEMXWing, importkey.KEMP256} {
		pub1, pub2 := a1.fetchImportKey(t, kem), a2.fetchImportKey(t, kem)
		if pub1.Label != pub2.Label || string(pub1.PublicKey) != string(pub2.PublicKey) {
			t.Fatalf("%s: the replicas publish different import keys: %s and %s", kem, pub1.Label, pub2.Label)
		}
		ids, xonly := q.encryptedImport([]*node{a2, p, r}, pub1)
		q.signAndCheck([]*node{a2, p}, pick(ids, 0, 1), xonly)
		q.signAndCheck([]*node{r, a1}, pick(ids, 2, 0), xonly)
	}

	before := a1.fetchImportKey(t, "")
	if err := keys.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	rotated := a1.fetchImportKey(t, "")
	if rotated.Label == before.Label {
		t.Fatal("a1 publishes the same import key after its rotation")
	}
	ids, xonly := q.encryptedImport([]*node{a2, p, r}, rotated)
	q.signAndCheck([]*node{a2, r}, pick(ids, 0, 2), xonly)
	if now := a2.fetchImportKey(t, ""); now.Label != rotated.Label {
		t.Fatalf("a2 publishes %s after accepting a1's rotation %s", now.Label, rotated.Label)
	}
	// The previous generation is still accepted, by either replica.
	ids, xonly = q.encryptedImport([]*node{a2, p, r}, before)
	q.signAndCheck([]*node{p, a2}, pick(ids, 1, 0), xonly)
}
