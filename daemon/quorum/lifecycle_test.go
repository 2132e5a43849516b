package quorum

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/store"
)

// refreshAll refreshes every party's key and returns the answers.
func refreshAll(t *testing.T, ps []*party) ([]daemon.ImportResult, []error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	room, err := ps[0].svc.CreateRoom(ctx, len(ps))
	if err != nil {
		t.Fatal(err)
	}
	res := make([]daemon.ImportResult, len(ps))
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() {
			res[i], errs[i] = p.svc.Refresh(ctx, daemon.RefreshParams{Owner: "alice", KeyID: p.keyID, RoomUUID: room})
		})
	}
	wg.Wait()
	return res, errs
}

// TestRefreshPendingPartiesRecover: a refresh whose ready marks fail at two
// parties leaves their new generation pending (never lost); any party's
// certified recovery data completes it (a pending refresh record needs
// only the certificate), and the new generation signs. Secrets taken from
// the locked arena are all returned zeroed.
func TestRefreshPendingPartiesRecover(t *testing.T) {
	ps := newParties(t, 4, 0, 0)
	x, _ := btcec.NewPrivateKey()
	for i, err := range importAll(t, ps, x) {
		if err != nil {
			t.Fatalf("import, party %d: %v", i, err)
		}
	}
	ctx := context.Background()
	for _, i := range []int{1, 2} {
		ps[i].svc.marks.wait(ctx, "alice", ps[i].keyID) // the import's lazy mark
		ps[i].svc.Store = &faultyStore{Store: ps[i].svc.Store, failMark: true}
	}
	res, errs := refreshAll(t, ps)
	old := make([]string, len(ps))
	for i, p := range ps {
		if errs[i] != nil {
			t.Fatalf("refresh, party %d: %v", i, errs[i])
		}
		old[i], p.keyID = p.keyID, res[i].KeyID
	}
	rd, err := ps[0].svc.RecoveryData(ctx, "alice", ps[0].keyID)
	if err != nil || !rd.Certified {
		t.Fatalf("recovery data: %+v, %v", rd, err)
	}
	for _, i := range []int{1, 2} {
		ps[i].svc.marks.wait(ctx, "alice", ps[i].keyID) // the refresh's (failing) mark
		ps[i].svc.Store = ps[i].svc.Store.(*faultyStore).Store
		if k := stateOf(t, ps[i]); k.State != daemon.KeyPending {
			t.Fatalf("party %d: %s, want pending", i, k.State)
		}
		k, err := ps[i].svc.Recover(ctx, "alice", ps[i].keyID, rd.Data)
		if err != nil || k.State != daemon.KeyReady {
			t.Fatalf("party %d recovers: %+v, %v", i, k, err)
		}
	}
	signWith(t, x, ps[1], ps[2])
	// The old generation is still there (until deleted) and still signs
	// on its own.
	for i, p := range ps {
		p.keyID = old[i]
	}
	signWith(t, x, ps[0], ps[1])
	if a := ps[0].arena; a.InUse() != 0 || !a.Zeroed() {
		t.Errorf("arena: %d slots in use, zeroed %t", a.InUse(), a.Zeroed())
	}
}

// TestRefreshLostRecordRecovers: a party whose new refresh record is lost
// (its slot, identity key kept, back to created) is made ready by POST
// /bip340/recover from a peer's recovery data: a refresh's share is the old
// generation's plus the dealt sharings of zero, so recovery finds the old
// share under the same identity. The recovered generation signs; recovering
// it into a key_id that holds another generation is refused.
func TestRefreshLostRecordRecovers(t *testing.T) {
	ps := newParties(t, 0, 0, 0)
	x, _ := btcec.NewPrivateKey()
	for i, err := range importAll(t, ps, x) {
		if err != nil {
			t.Fatalf("import, party %d: %v", i, err)
		}
	}
	ctx := context.Background()
	ps[2].svc.marks.wait(ctx, "alice", ps[2].keyID)
	ps[2].svc.Store = &faultyStore{Store: ps[2].svc.Store, failMark: true}
	res, errs := refreshAll(t, ps)
	old := make([]string, len(ps))
	for i, p := range ps {
		if errs[i] != nil {
			t.Fatalf("refresh, party %d: %v", i, errs[i])
		}
		old[i], p.keyID = p.keyID, res[i].KeyID
	}
	ps[2].svc.marks.wait(ctx, "alice", ps[2].keyID)
	ps[2].svc.Store = ps[2].svc.Store.(*faultyStore).Store
	// Party 2 loses its pending record but keeps the slot's identity key.
	r, err := ps[2].svc.Store.GetOwned(ctx, "alice", ps[2].keyID)
	if err != nil || r.State != store.StatePending {
		t.Fatalf("party 2's new generation: %+v, %v", r.State, err)
	}
	if err := ps[2].svc.Store.Discard(ctx, "alice", ps[2].keyID, r.Transcript); err != nil {
		t.Fatal(err)
	}
	rd, err := ps[0].svc.RecoveryData(ctx, "alice", ps[0].keyID)
	if err != nil || !rd.Certified {
		t.Fatalf("recovery data: %+v, %v", rd, err)
	}
	// Into a key that holds another generation already (party 1's old
	// key_id): refused.
	if _, err := ps[1].svc.Recover(ctx, "alice", old[1], rd.Data); !isType(err, daemon.ErrTypeAlreadyPerformedKeygen) {
		t.Fatalf("recovering a refresh into an unrelated ready key: %v", err)
	}
	k, err := ps[2].svc.Recover(ctx, "alice", ps[2].keyID, rd.Data)
	if err != nil || k.State != daemon.KeyReady || !bytes.Equal(k.Pubkey, schnorr.SerializePubKey(x.PubKey())) {
		t.Fatalf("recover: %+v, %v", k, err)
	}
	if r, err := ps[2].svc.Store.GetOwned(ctx, "alice", ps[2].keyID); err != nil || r.Source != store.SourceRefresh {
		t.Fatalf("recovered record: source %q, %v", r.Source, err)
	}
	signWith(t, x, ps[0], ps[2])
	signWith(t, x, ps[1], ps[2])
}
