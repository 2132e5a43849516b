package quorumtest_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/daemon/client"
	"github.com/quorumd/quorumd/daemon/quorumtest"
	"github.com/quorumd/quorumd/mpc/bip340"
)

// importKey imports a fresh private key t-of-n through the parties'
// clients (party 0 the importer) and returns the key ids and the pubkey.
func importKey(t *testing.T, ctx context.Context, cs []*client.Client, threshold int) ([]string, []byte) {
	t.Helper()
	priv := make([]byte, 32)
	rand.Read(priv) // below the order with overwhelming probability
	defer clear(priv)
	slots := make([]client.KeySlot, len(cs))
	for i, c := range cs {
		s, err := c.CreateKey(ctx)
		if err != nil {
			t.Fatalf("party %d: create: %v", i, err)
		}
		slots[i] = s
	}
	room, err := cs[0].CreateRoom(ctx, len(cs))
	if err != nil {
		t.Fatal(err)
	}
	pubs := make([][]byte, len(cs))
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		req := client.ImportRequest{RoomUUID: room, KeyID: slots[i].KeyID, Threshold: threshold}
		for j, s := range slots {
			if j != i {
				req.OthersKeygenIDs = append(req.OthersKeygenIDs, s.KeygenID)
			}
		}
		wg.Go(func() {
			if i == 0 {
				pubs[i], errs[i] = c.ImportKey(ctx, req, priv)
			} else {
				pubs[i], errs[i] = c.ImportRecipient(ctx, req)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("import: %v", err)
	}
	want, err := bip340.PublicKey(mustScalar(t, priv))
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(cs))
	for i := range cs {
		if string(pubs[i]) != string(want[:]) {
			t.Fatalf("party %d imported pubkey %x, want %x", i, pubs[i], want)
		}
		ids[i] = slots[i].KeyID
	}
	return ids, pubs[0]
}

// sign signs msg with the parties whose clients and key ids are given.
func sign(t *testing.T, ctx context.Context, cs []*client.Client, ids []string, msg []byte) [][]byte {
	t.Helper()
	room, err := cs[0].CreateRoom(ctx, len(cs))
	if err != nil {
		t.Fatal(err)
	}
	sigs := make([][]byte, len(cs))
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			sigs[i], errs[i] = c.Sign(ctx, client.SignRequest{RoomUUID: room, KeyID: ids[i], Msg: hexString(msg)})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("sign: %v", err)
	}
	return sigs
}

// TestImportSignVerify: a 2-of-3 quorum imports a key through the clients,
// two of the three sign, and the signature verifies with both of
// mpc/bip340's verifiers.
func TestImportSignVerify(t *testing.T) {
	q := quorumtest.Start(t, quorumtest.Options{Parties: 3})
	if q.N() != 3 || q.Threshold() != 2 {
		t.Fatalf("quorum of %d, threshold %d", q.N(), q.Threshold())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cs := q.Clients()
	ids, pub := importKey(t, ctx, cs, q.Threshold())

	msg := []byte("quorumtest: two of three sign")
	for _, pair := range [][2]int{{0, 2}, {1, 2}} {
		sigs := sign(t, ctx, []*client.Client{cs[pair[0]], cs[pair[1]]}, []string{ids[pair[0]], ids[pair[1]]}, msg)
		for _, sig := range sigs {
			if err := bip340.Verify(pub, msg, sig); err != nil {
				t.Fatalf("parties %v: libsecp256k1: %v", pair, err)
			}
			if err := bip340.VerifyReference(pub, msg, sig); err != nil {
				t.Fatalf("parties %v: reference verifier: %v", pair, err)
			}
		}
		// A signature of another message must not verify: the check can fail.
		if bip340.Verify(pub, []byte("another message"), sigs[0]) == nil {
			t.Fatal("a signature verifies for a message it does not sign")
		}
	}

	// Each party's user sees its own record; an admin is not a user.
	rec, err := cs[1].GetKey(ctx, ids[1])
	if err != nil || rec.T != 2 || rec.N != 3 || rec.State != "ready" {
		t.Fatalf("key record %+v, %v", rec, err)
	}
	var apiErr *client.APIError
	if _, err := q.Client(0).GetKey(ctx, ids[1]); !errors.As(err, &apiErr) || apiErr.ErrType != "key_id_not_exists" {
		t.Fatalf("another party's key_id: %v", err)
	}
	if _, err := q.AdminClient(0).ListAllSystemKeys(ctx); err != nil {
		t.Fatalf("admin: %v", err)
	}
}

// TestRestart: through the Driver (client.Quorum), a key imported 2-of-2
// still signs after a daemon was stopped and started again (a new port,
// which URL follows), its share unsealed from its token.
func TestRestart(t *testing.T) {
	q := quorumtest.Start(t, quorumtest.Options{Parties: 2, Threshold: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	priv := make([]byte, 32)
	rand.Read(priv)
	want, err := client.XOnlyPubkey(priv)
	if err != nil {
		t.Fatal(err)
	}
	imp, err := q.Driver().Import(ctx, priv, client.ImportOptions{Threshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	before := q.URL(1)
	q.Daemons[1].Stop()
	if q.Daemons[1].Running() {
		t.Fatal("stopped daemon still running")
	}
	q.Daemons[1].Start()
	// URL's validating proxy follows the daemon to its new port.
	if after := q.URL(1); after == before {
		t.Fatalf("URL %s unchanged by a restart", after)
	} else if err := q.Client(1).Healthz(ctx); err != nil {
		t.Fatal(err)
	} else if resp, err := http.Get(after + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz through the new proxy: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	msg := []byte("after a restart")
	res, err := q.Driver().Sign(ctx, imp.KeyIDs, msg, client.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := hex.DecodeString(res.Signature)
	if err := bip340.VerifyReference(want[:], msg, sig); err != nil {
		t.Fatal(err)
	}
}

func mustScalar(t *testing.T, priv []byte) *btcec.ModNScalar {
	t.Helper()
	s, err := bip340.ParsePrivateKey((*[32]byte)(priv))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hexString(b []byte) string { return hex.EncodeToString(b) }
