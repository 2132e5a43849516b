package quorum

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/hsm"
	"github.com/quorumd/quorumd/mpc/secp"
)

// openShare opens r's sealed share with h and checks share·G against the
// record's own public share.
func openShare(h *hsm.HSM, r store.Record) error {
	b, err := h.Open(r.SealedShare, shareAAD(r.KeyID, r.Owner, r.OwnID))
	if err != nil {
		return err
	}
	defer clear(b)
	var s btcec.ModNScalar
	defer s.Zero()
	s.SetByteSlice(b)
	var p btcec.JacobianPoint
	secp.ScalarBaseMult(&s, &p)
	p.ToAffine()
	if !bytes.Equal(btcec.NewPublicKey(&p.X, &p.Y).SerializeCompressed(), r.PublicShares[r.OwnID]) {
		return errors.New("share·G is not the public share")
	}
	return nil
}

// TestDeleteDestroysCopies: a copy of a party's store taken before
// delete-key-share opens with the live token until the delete, and neither
// its share nor its identity key open after it, through the same HSM
// context or a fresh one; the live store file no longer holds the blobs;
// the other party's key is untouched.
func TestDeleteDestroysCopies(t *testing.T) {
	ps := newParties(t, 0, 0)
	priv, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range importAll(t, ps, priv) {
		if err != nil {
			t.Fatalf("import at %d: %v", i, err)
		}
	}
	ctx := context.Background()
	victim := ps[1]

	live := filepath.Join(victim.dir, store.DefaultFileName)
	raw, err := os.ReadFile(live)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "keys-before-delete.db")
	if err := os.WriteFile(copyPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	cp, err := store.Open(copyPath, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	old, err := cp.Get(ctx, victim.keyID)
	if err != nil {
		t.Fatal(err)
	}
	// The attack works before the delete: the test can fail.
	if err := openShare(victim.h, old); err != nil {
		t.Fatalf("opening the copied share before the delete: %v", err)
	}

	if err := victim.svc.Delete(ctx, "alice", victim.keyID); err != nil {
		t.Fatal(err)
	}
	fresh, err := hsm.Open(hsm.Config{ModulePath: victim.tok.Module, TokenLabel: victim.tok.Label, PIN: victim.tok.PIN, KeyLabel: "wrap"})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	for name, h := range map[string]*hsm.HSM{"live context": victim.h, "fresh context": fresh} {
		if err := openShare(h, old); !errors.Is(err, hsm.ErrNoDataKey) {
			t.Errorf("%s: share from the pre-delete copy: %v, want ErrNoDataKey", name, err)
		}
		if _, err := h.Open(old.SealedIdentityKey, identityAAD(old.KeyID, old.Owner)); !errors.Is(err, hsm.ErrNoDataKey) {
			t.Errorf("%s: identity key from the pre-delete copy: %v, want ErrNoDataKey", name, err)
		}
	}
	after, err := os.ReadFile(live)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{old.SealedShare, old.SealedIdentityKey} {
		if bytes.Contains(after, b) || bytes.Contains(after, []byte(base64.StdEncoding.EncodeToString(b))) {
			t.Error("the live store file still holds a sealed blob of the deleted key")
		}
	}
	r0, err := ps[0].svc.Store.Get(ctx, ps[0].keyID)
	if err != nil {
		t.Fatal(err)
	}
	if err := openShare(ps[0].h, r0); err != nil {
		t.Fatalf("the other party's share after the delete: %v", err)
	}
}

// TestSweepDataKeys: a delete whose data-key destruction never happened (a
// crash right after the store's delete) and a slot never stored (a crash
// right after its data key was made) leave data keys that the sweep
// destroys once past the grace; live keys' data keys stay.
func TestSweepDataKeys(t *testing.T) {
	ps := newParties(t, 0)
	p := ps[0]
	ctx := context.Background()
	gone, err := p.svc.Create(ctx, "alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.svc.Store.Delete(ctx, "alice", gone.KeyID); err != nil { // the store only: the "crash"
		t.Fatal(err)
	}
	// A crash between making a slot's data key and storing the slot.
	never := "never-stored-slot"
	if err := p.h.CreateDataKey(never); err != nil {
		t.Fatal(err)
	}
	count := func() map[string]bool {
		dks, err := p.h.DataKeys()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, d := range dks {
			m[d.KeyID] = true
		}
		return m
	}
	if m := count(); !m[gone.KeyID] || !m[never] || !m[p.keyID] {
		t.Fatalf("data keys before the sweep: %v", m)
	}
	if n, err := SweepDataKeys(ctx, p.svc.Store, p.h, time.Hour, p.svc.log()); err != nil || n != 0 {
		t.Fatalf("sweep with a long grace destroyed %d: %v", n, err)
	}
	if n, err := SweepDataKeys(ctx, p.svc.Store, p.h, 0, p.svc.log()); err != nil || n != 2 {
		t.Fatalf("sweep destroyed %d: %v", n, err)
	}
	if m := count(); m[gone.KeyID] || m[never] || !m[p.keyID] {
		t.Fatalf("data keys after the sweep: %v", m)
	}
}

// crashedToken is a token whose DestroyDataKey never happens: a pool closed
// through it leaves its keys behind, as a crash of the daemon would.
type crashedToken struct{ *hsm.HSM }

func (crashedToken) DestroyDataKey(string) error { return nil }

// TestDataKeyPoolAndSweep: slots take their data keys from the pool; the
// sweep at start never destroys a pooled key young enough to be handed out,
// and destroys the keys a crash left pooled once past its grace (they are
// never reused: see hsm.DataKeyPool), sparing the slots' keys; deleting a
// slot made from the pool destroys its data key.
func TestDataKeyPoolAndSweep(t *testing.T) {
	ps := newParties(t, 0)
	p := ps[0]
	ctx := context.Background()
	pool := hsm.NewDataKeyPool(crashedToken{p.h}, hsm.DataKeyPoolConfig{Size: 3, MaxAge: PoolMaxAge, NewID: daemon.NewKeyID, Log: func(err error) { t.Errorf("pool: %v", err) }})
	t.Cleanup(func() { pool.Close() }) // before the token closes; Close is idempotent
	p.svc.DataKeyPool = pool
	for deadline := time.Now().Add(time.Minute); pool.Len() < 3; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the pool did not fill")
		}
	}
	dataKeys := func() map[string]bool {
		dks, err := p.h.DataKeys()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, d := range dks {
			m[d.KeyID] = true
		}
		return m
	}
	pooled := dataKeys()
	var slots []string
	for range 2 {
		ks, err := p.svc.Create(ctx, "alice", 0)
		if err != nil {
			t.Fatal(err)
		}
		if !pooled[ks.KeyID] {
			t.Fatalf("slot %s did not take a pooled data key", ks.KeyID)
		}
		slots = append(slots, ks.KeyID)
	}
	if n, err := SweepDataKeys(ctx, p.svc.Store, p.h, OrphanGrace, p.svc.log()); err != nil || n != 0 {
		t.Fatalf("sweep at start destroyed %d young pooled keys: %v", n, err)
	}
	// The crash: the pool's keys stay on the token, unassigned.
	for deadline := time.Now().Add(time.Minute); pool.Len() < 3; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the pool did not refill")
		}
	}
	if err := pool.Close(); err != nil {
		t.Fatal(err)
	}
	p.svc.DataKeyPool = nil
	left := dataKeys()
	orphans := 0
	for id := range left {
		if _, err := p.svc.Store.Get(ctx, id); errors.Is(err, store.ErrNotFound) {
			orphans++
		}
	}
	if orphans < 3 {
		t.Fatalf("%d orphaned pool keys after the crash, want at least 3", orphans)
	}
	// A later start, past the grace.
	if n, err := SweepDataKeys(ctx, p.svc.Store, p.h, 0, p.svc.log()); err != nil || n != orphans {
		t.Fatalf("sweep past the grace destroyed %d of %d orphans: %v", n, orphans, err)
	}
	after := dataKeys()
	for _, id := range append(slots, p.keyID) {
		if !after[id] {
			t.Fatalf("the sweep destroyed live slot %s's data key", id)
		}
		r, err := p.svc.Store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.h.Open(r.SealedIdentityKey, identityAAD(r.KeyID, r.Owner)); err != nil {
			t.Fatalf("slot %s's identity key after the sweep: %v", id, err)
		}
	}
	if err := p.svc.Delete(ctx, "alice", slots[0]); err != nil {
		t.Fatal(err)
	}
	if dataKeys()[slots[0]] {
		t.Fatal("deleting a slot made from the pool left its data key")
	}
}
