package quorum

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/secmem"
	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/hsm"
	"github.com/quorumd/quorumd/internal/testkit"
)

// party is one Service with its own key store and, unless nil, its own
// locked arena; all share one SoftHSM token (blobs are bound to their key
// ids by the AAD) and one relay.
type party struct {
	svc   *Service
	h     *hsm.HSM
	tok   testkit.SoftHSMToken
	dir   string // the store's state directory
	arena *secmem.Arena
	keyID string
	party []byte
}

func newParties(t *testing.T, arenaSlots ...int) []*party {
	t.Helper()
	return newPartiesOn(t, testkit.Relay(t), arenaSlots...)
}

// newPartiesOn is newParties on a given relay.
func newPartiesOn(t *testing.T, relayAddr string, arenaSlots ...int) []*party {
	t.Helper()
	tok := testkit.SoftHSM(t, "quorum-secrets")
	h, err := hsm.Open(hsm.Config{ModulePath: tok.Module, TokenLabel: tok.Label, PIN: tok.PIN,
		KeyLabel: "wrap", CreateKey: true, MaxSessions: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	out := make([]*party, len(arenaSlots))
	for i, n := range arenaSlots {
		dir := t.TempDir()
		st, err := store.OpenDir(dir, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		pool := &RelayPool{Default: relayAddr}
		t.Cleanup(pool.Close)
		p := &party{h: h, tok: tok, dir: dir, svc: &Service{Store: st, Sealer: h, Relays: pool, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
		if n > 0 {
			if p.arena, err = secmem.New(n); err != nil {
				t.Fatal(err)
			}
			a := p.arena
			t.Cleanup(func() {
				if err := a.Close(); err != nil {
					t.Errorf("arena: %v", err)
				}
			})
			p.svc.Secrets = p.arena
		}
		ks, err := p.svc.Create(context.Background(), "alice", 0)
		if err != nil {
			t.Fatal(err)
		}
		p.keyID, p.party = ks.KeyID, ks.KeygenID
		out[i] = p
	}
	return out
}

// checkWiped asserts that every locked arena has no slot held, has handed
// out exactly want[i] slots so far, and holds only zero bytes.
func checkWiped(t *testing.T, ps []*party, want []uint64) {
	t.Helper()
	for i, p := range ps {
		if p.arena == nil {
			continue
		}
		if p.arena.InUse() != 0 || p.arena.Acquired() != want[i] || !p.arena.Zeroed() {
			t.Errorf("party %d: in use %d, acquired %d (want %d), zeroed %t",
				i, p.arena.InUse(), p.arena.Acquired(), want[i], p.arena.Zeroed())
		}
	}
}

func others(ps []*party, i int) [][]byte {
	var o [][]byte
	for j, p := range ps {
		if j != i {
			o = append(o, p.party)
		}
	}
	return o
}

// TestSecretsLockedAndWiped: Create, a 2-of-3 import and a signature take
// their secrets' slots from each party's arena (one party runs without
// one), hold them while the ceremony runs, and leave every arena zeroed.
func TestSecretsLockedAndWiped(t *testing.T) {
	ps := newParties(t, 8, 0, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	acquired := []uint64{createSlots, 0, createSlots}
	checkWiped(t, ps, acquired)

	priv, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	room, err := ps[0].svc.CreateRoom(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]daemon.ImportResult, len(ps))
	errs := make([]error, len(ps))
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ip := daemon.ImportParams{Owner: "alice", KeyID: p.keyID, RoomUUID: room, Threshold: 2, Others: others(ps, i)}
			if i == 0 {
				x := priv.Key
				results[i], errs[i] = p.svc.ImportKey(ctx, ip, &x)
				if !x.Equals(&priv.Key) {
					t.Error("ImportKey changed the caller's key (the caller zeroes it)")
				}
				return
			}
			results[i], errs[i] = p.svc.ImportRecipient(ctx, ip)
		}()
	}
	wg.Wait()
	want := schnorr.SerializePubKey(priv.PubKey())
	for i := range ps {
		if errs[i] != nil || string(results[i].Pubkey) != string(want) {
			t.Fatalf("import at %d: %v (pubkey %x, want %x)", i, errs[i], results[i].Pubkey, want)
		}
	}
	acquired[0] += importSlots
	acquired[2] += importSlots
	checkWiped(t, ps, acquired)

	// Sign with parties 0 and 2. Party 0 starts alone and waits for its
	// peer: meanwhile it holds its two slots.
	room, err = ps[0].svc.CreateRoom(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 32)
	rand.Read(msg)
	sigs := make([][]byte, 2)
	signErrs := make([]error, 2)
	signers := []*party{ps[0], ps[2]}
	sign := func(i int) {
		p := signers[i]
		sigs[i], signErrs[i] = p.svc.Sign(ctx, daemon.SignParams{Owner: "alice", KeyID: p.keyID, RoomUUID: room, Msg: msg})
	}
	wg.Add(1)
	go func() { defer wg.Done(); sign(0) }()
	deadline := time.Now().Add(20 * time.Second)
	for ps[0].arena.InUse() != signSlots && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := ps[0].arena.InUse(); got != signSlots {
		t.Fatalf("a signing party holds %d locked slots, want %d", got, signSlots)
	}
	sign(1)
	wg.Wait()
	pub, _ := schnorr.ParsePubKey(want)
	for i := range sigs {
		if signErrs[i] != nil {
			t.Fatalf("sign at %d: %v", i, signErrs[i])
		}
		sig, err := schnorr.ParseSignature(sigs[i])
		if err != nil || !sig.Verify(msg, pub) {
			t.Fatalf("signature %d does not verify: %v", i, err)
		}
	}
	acquired[0] += signSlots
	acquired[2] += signSlots
	checkWiped(t, ps, acquired)
}

// TestSecretsExhausted: with every locked slot held by a ceremony, another
// call waits and then fails with its context's error (answered as
// internal_problem), and works again once the ceremony is over.
func TestSecretsExhausted(t *testing.T) {
	ps := newParties(t, signSlots, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	priv, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	room, err := ps[0].svc.CreateRoom(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	// An import whose second party is not there yet holds both of party
	// 0's slots.
	done := make(chan error, 1)
	go func() {
		x := priv.Key
		_, err := ps[0].svc.ImportKey(ctx, daemon.ImportParams{Owner: "alice", KeyID: ps[0].keyID, RoomUUID: room,
			Threshold: 2, Others: others(ps, 0)}, &x)
		done <- err
	}()
	deadline := time.Now().Add(20 * time.Second)
	for ps[0].arena.InUse() != importSlots && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if ps[0].arena.InUse() != importSlots {
		t.Fatalf("the import holds %d slots, want %d", ps[0].arena.InUse(), importSlots)
	}
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = ps[0].svc.Create(short, "alice", 0)
	cancelShort()
	if !errors.Is(err, secmem.ErrNoSlot) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Create with every slot held: %v, want ErrNoSlot and DeadlineExceeded", err)
	}
	var typed daemon.Typed
	if errors.As(err, &typed) {
		t.Fatalf("the wait error is typed %q; want an untyped error (internal_problem)", typed.ErrType())
	}
	if _, err := ps[1].svc.ImportRecipient(ctx, daemon.ImportParams{Owner: "alice", KeyID: ps[1].keyID, RoomUUID: room,
		Threshold: 2, Others: others(ps, 1)}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := ps[0].svc.Create(ctx, "alice", 0); err != nil {
		t.Fatalf("Create after the ceremony: %v", err)
	}
	checkWiped(t, ps, []uint64{createSlots + importSlots + createSlots, 0})
}
