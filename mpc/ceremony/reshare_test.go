package ceremony

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/bip340"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/relay"
	"github.com/quorumd/quorumd/mpc/vss"
)

// holder is one party of one generation of a key.
type holder struct {
	id    *envelope.Identity
	info  *KeyInfo
	share *btcec.ModNScalar
}

func newIdentity(t testing.TB) *envelope.Identity {
	id, err := envelope.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// dealtKey makes a t-of-n key straight from vss (the import ceremony is
// tested elsewhere): holders by id, with a random generation.
func dealtKey(tb testing.TB, th, n int) (*btcec.ModNScalar, []*holder) {
	x := randomScalar(tb)
	d, err := vss.Deal(x, th, n, nil)
	if err != nil {
		tb.Fatal(err)
	}
	ids := make([]*envelope.Identity, n)
	parties := make([]envelope.Party, n)
	for i := range ids {
		ids[i] = newIdentity(tb)
		parties[i] = ids[i].Public()
	}
	envelope.SortParties(parties)
	info := &KeyInfo{T: th, N: n, Parties: parties, ThreshPK: [33]byte(d.Commitments[0].SerializeCompressed())}
	rand.Read(info.Transcript[:])
	pubs, _ := vss.PublicShares(d.Commitments, n)
	for _, p := range pubs {
		info.PubShares = append(info.PubShares, [33]byte(p.SerializeCompressed()))
	}
	hs := make([]*holder, n)
	for _, id := range ids {
		j := info.IDOf(id.Public())
		s := d.Shares[j]
		hs[j] = &holder{id: id, info: info, share: &s}
	}
	return x, hs
}

// redealRun is one party of a refresh or reshare.
type redealRun struct {
	id      *envelope.Identity
	members []envelope.Party // the room's parties
	run     func(ctx context.Context, tr Transport, d Durable) (*KeyInfo, error)
}

type redealOutcome struct {
	memDurable
	id   *envelope.Identity
	info *KeyInfo
	err  error
}

// runRedeals runs every party in one fresh room; failPrepare makes those
// parties' durable write fail.
func runRedeals(t testing.TB, c *relay.Client, runs []redealRun, timeout time.Duration, failPrepare map[int]error) []*redealOutcome {
	t.Helper()
	room, err := c.CreateRoom(context.Background(), len(runs))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out := make([]*redealOutcome, len(runs))
	var wg sync.WaitGroup
	for i, r := range runs {
		out[i] = &redealOutcome{id: r.id}
		out[i].failPrepare = failPrepare[i]
		if r.run == nil {
			continue // absent
		}
		wg.Add(1)
		go func(o *redealOutcome, r redealRun) {
			defer wg.Done()
			o.info, o.err = r.run(ctx, RelayTransport(c, room, r.id, r.members), &o.memDurable)
		}(out[i], r)
	}
	wg.Wait()
	return out
}

// refreshRuns refreshes every holder; tweak adjusts a party's params.
func refreshRuns(hs []*holder, tweak func(i int, p *RefreshParams)) []redealRun {
	runs := make([]redealRun, len(hs))
	for i, h := range hs {
		runs[i] = redealRun{id: h.id, members: h.info.Parties, run: func(ctx context.Context, tr Transport, d Durable) (*KeyInfo, error) {
			p := RefreshParams{Identity: h.id, Key: h.info, Share: h.share, Transport: tr}
			if tweak != nil {
				tweak(i, &p)
			}
			p.Room = roomOf(tr)
			return Refresh(ctx, p, d)
		}}
	}
	return runs
}

// roomOf reads the room back from a relay transport (tests build params
// inside the run, after the room exists).
func roomOf(tr Transport) string { return tr.(*RelaySeat).room }

// reshareRuns reshares to newSet (identities), t2-of-len(newSet): holders
// (by identity) of hs deal, the others join as new parties.
func reshareRuns(hs []*holder, newSet []*envelope.Identity, t2 int, tweak func(i int, p *ReshareParams)) []redealRun {
	byParty := map[envelope.Party]*holder{}
	for _, h := range hs {
		byParty[h.id.Public()] = h
	}
	runs := make([]redealRun, len(newSet))
	var members []envelope.Party
	for _, id := range newSet {
		members = append(members, id.Public())
	}
	for i, id := range newSet {
		var others []envelope.Party
		for _, o := range newSet {
			if o != id {
				others = append(others, o.Public())
			}
		}
		runs[i] = redealRun{id: id, members: members, run: func(ctx context.Context, tr Transport, d Durable) (*KeyInfo, error) {
			p := ReshareParams{Identity: id, Others: others, Threshold: t2, Transport: tr}
			if h := byParty[id.Public()]; h != nil {
				p.Old, p.Share = h.info, h.share
			}
			if tweak != nil {
				tweak(i, &p)
			}
			p.Room = roomOf(tr)
			return Reshare(ctx, p, d)
		}}
	}
	return runs
}

// holders turns successful outcomes into the new generation's holders.
func holders(t testing.TB, out []*redealOutcome) []*holder {
	t.Helper()
	hs := make([]*holder, len(out))
	for i, o := range out {
		if o.err != nil {
			t.Fatalf("party %d: %v", i, o.err)
		}
		if o.prepared != 1 || o.certified != 1 || o.discarded != 0 {
			t.Fatalf("party %d prepared %d, certified %d, discarded %d", i, o.prepared, o.certified, o.discarded)
		}
		if o.info.Transcript != out[0].info.Transcript || o.info.ThreshPK != out[0].info.ThreshPK {
			t.Fatalf("party %d: another outcome", i)
		}
		hs[o.info.IDOf(o.id.Public())] = &holder{id: o.id, info: o.info, share: o.share}
	}
	return hs
}

// signWith signs msg with the given holders (each may be of another
// generation) and returns the first error or the signature.
func signWith(t testing.TB, c *relay.Client, hs []*holder, msg []byte, timeout time.Duration) ([64]byte, error) {
	t.Helper()
	room, err := c.CreateRoom(context.Background(), len(hs))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sigs := make([][64]byte, len(hs))
	errs := make([]error, len(hs))
	var wg sync.WaitGroup
	for i, h := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sigs[i], errs[i] = Sign(ctx, SignParams{Room: room, Identity: h.id, Key: h.info, Share: h.share,
				Signers: len(hs), Msg: msg, Transport: RelayTransport(c, room, h.id, h.info.Parties)})
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return sigs[0], e
		}
	}
	return sigs[0], nil
}

// mustSign signs with a random t of hs and verifies with mpc/bip340.
func mustSign(t testing.TB, c *relay.Client, hs []*holder, want [32]byte) {
	t.Helper()
	th := hs[0].info.T
	var signers []*holder
	for _, i := range mrand.Perm(len(hs))[:th] {
		signers = append(signers, hs[i])
	}
	msg := make([]byte, 32)
	rand.Read(msg)
	sig, err := signWith(t, c, signers, msg, slow*20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := bip340.Verify(want[:], msg, sig[:]); err != nil {
		t.Fatalf("signature does not verify under the unchanged key: %v", err)
	}
}

func newClient(t testing.TB) *relay.Client {
	c, err := relay.NewClient(testkit.Relay(t), relay.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestRefreshThenSign: a refresh keeps the parties and the key, changes
// every share (t > 1) and the generation; new shares sign; an old share
// and new shares together cannot.
func TestRefreshThenSign(t *testing.T) {
	c := newClient(t)
	x, old := dealtKey(t, 2, 3)
	want := xonly(x)
	out := runRedeals(t, c, refreshRuns(old, nil), slow*30*time.Second, nil)
	hs := holders(t, out)
	for i, h := range hs {
		if h.info.XOnly() != want || h.info.T != 2 || h.info.N != 3 {
			t.Fatalf("party %d: key or parameters changed", i)
		}
		if h.share.Equals(old[i].share) {
			t.Fatalf("party %d: share unchanged", i)
		}
		if h.info.Transcript == old[i].info.Transcript {
			t.Fatal("generation unchanged")
		}
	}
	mustSign(t, c, hs, want)
	// The recovery data reopens the same share from the old one.
	ks, _, err := RecoverRefresh(hs[1].id, out[0].rd.Marshal(), old[1].info, old[1].share)
	if err != nil || !ks.Share.Equals(hs[1].share) || ks.Transcript != hs[1].info.Transcript {
		t.Fatalf("refresh recovery: %v", err)
	}
	if _, _, err := Recover(hs[1].id, out[0].rd.Marshal()); !errors.Is(err, ErrRecovery) {
		t.Fatalf("refresh recovery without the old share: %v", err)
	}
	// Mixing generations: the sessions differ, so the signers never meet.
	msg := make([]byte, 32)
	_, err = signWith(t, c, []*holder{old[0], hs[1]}, msg, slow*2*time.Second)
	if err == nil || !errors.Is(err, ErrTimeout) {
		t.Fatalf("old and new shares signed together: %v", err)
	}
	// Even claiming the new generation, the old share cannot take part:
	// it does not match its new public share.
	stale := &holder{id: old[0].id, info: hs[0].info, share: old[0].share}
	_, err = signWith(t, c, []*holder{stale, hs[1]}, msg, slow*5*time.Second)
	if err == nil {
		t.Fatalf("a stale share under the new generation: %v", err)
	}
}

// TestReshareCases: add a party, remove one, raise and lower the
// threshold, replace (repair) a lost party with only t old holders; the
// key is unchanged and any t' new shares sign.
func TestReshareCases(t *testing.T) {
	c := newClient(t)
	cases := []struct {
		name      string
		t, n      int
		keep      int // old holders in the new set (the first keep by id)
		fresh, t2 int
	}{
		{"add 2-of-3 to 2-of-4", 2, 3, 3, 1, 2},
		{"remove 3-of-4 to 2-of-3", 3, 4, 3, 0, 2},
		{"raise 2-of-3 to 3-of-3", 2, 3, 3, 0, 3},
		{"lower 3-of-4 to 2-of-4", 3, 4, 4, 0, 2},
		{"replace a lost party of 2-of-3 with 2 holders", 2, 3, 2, 1, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			x, old := dealtKey(t, tc.t, tc.n)
			want := xonly(x)
			var set []*envelope.Identity
			for _, h := range old[:tc.keep] {
				set = append(set, h.id)
			}
			for range tc.fresh {
				set = append(set, newIdentity(t))
			}
			hs := holders(t, runRedeals(t, c, reshareRuns(old, set, tc.t2, nil), slow*30*time.Second, nil))
			for i, h := range hs {
				if h.info.XOnly() != want || h.info.T != tc.t2 || h.info.N != len(set) {
					t.Fatalf("party %d: %d-of-%d key %x", i, h.info.T, h.info.N, h.info.XOnly())
				}
			}
			mustSign(t, c, hs, want)
		})
	}
}

// TestReshareProperty: random (t, n) → (t', n') up to 7-of-10, a random
// mix of kept holders (at least t) and new parties; the key is unchanged
// and a random t' of the new shares sign.
func TestReshareProperty(t *testing.T) {
	c := newClient(t)
	rounds := 4
	if testing.Short() {
		rounds = 2
	}
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 14))
	for r := range rounds {
		n := 1 + rng.IntN(10)
		th := 1 + rng.IntN(min(n, 7))
		keep := th + rng.IntN(n-th+1)
		fresh := rng.IntN(11 - keep)
		n2 := keep + fresh
		if n2 == 0 {
			fresh, n2 = 1, keep+1
		}
		t2 := 1 + rng.IntN(min(n2, 7))
		t.Run(fmt.Sprintf("%d/%d-of-%d→%d-of-%d", r, th, n, t2, n2), func(t *testing.T) {
			x, old := dealtKey(t, th, n)
			want := xonly(x)
			var set []*envelope.Identity
			for _, i := range rng.Perm(n)[:keep] {
				set = append(set, old[i].id)
			}
			for range fresh {
				set = append(set, newIdentity(t))
			}
			hs := holders(t, runRedeals(t, c, reshareRuns(old, set, t2, nil), slow*60*time.Second, nil))
			if hs[0].info.XOnly() != want {
				t.Fatal("key changed")
			}
			mustSign(t, c, hs, want)
		})
	}
}

// expectRedealAbort: every honest party aborted with class want (or a
// remote abort, or found the room closed by the others' aborts), the
// first-hand ones naming culprit, nothing stored anywhere.
func expectRedealAbort(t *testing.T, out []*redealOutcome, honest []int, want error, culprit envelope.Party) {
	t.Helper()
	firstHand := false
	for _, i := range honest {
		o := out[i]
		var ae *AbortError
		if !errors.As(o.err, &ae) {
			t.Fatalf("party %d: want an abort, got %v", i, o.err)
		}
		if o.certified != 0 || o.state() != "none" {
			t.Errorf("party %d holds %s", i, o.state())
		}
		// A party that came late may find the room closed: everyone else
		// aborted and left (rooms are one-time).
		if errors.Is(ae, ErrRemoteAbort) || errors.Is(ae, ErrTransport) {
			continue
		}
		if errors.Is(ae, want) {
			firstHand = true
			if ae.Culprit != culprit {
				t.Errorf("party %d: culprit %x, want %x (%v)", i, ae.Culprit[:4], culprit[:4], ae)
			}
		} else {
			t.Errorf("party %d: %v, want class %v", i, ae, want)
		}
	}
	if !firstHand {
		t.Errorf("no honest party detected %v itself", want)
	}
}

// TestReshareAdversarial: dealers that cheat are named, honest parties
// store nothing, and a new party never accepts another key than the one
// the holders agree on.
func TestReshareAdversarial(t *testing.T) {
	c := newClient(t)
	x, old := dealtKey(t, 2, 3)
	newcomer := newIdentity(t)
	set := []*envelope.Identity{old[0].id, old[1].id, old[2].id, newcomer}
	cheat := old[1].id.Public()
	all := []int{0, 1, 2, 3}
	honest := []int{0, 2, 3}
	bad := func(f func(p *ReshareParams)) func(i int, p *ReshareParams) {
		return func(i int, p *ReshareParams) {
			if i == 1 {
				f(p)
			}
		}
	}
	t.Run("inconsistent sub-share", func(t *testing.T) {
		out := runRedeals(t, c, reshareRuns(old, set, 2, bad(func(p *ReshareParams) {
			p.tamper = func(d *dealing) { d.shares[3].Add(new(btcec.ModNScalar).SetInt(1)) }
		})), slow*20*time.Second, nil)
		// The newcomer (id of the identity, not of the sorted set) detects it.
		expectRedealAbort(t, out, honest, ErrBadShare, cheat)
	})
	t.Run("lies about the old public shares", func(t *testing.T) {
		out := runRedeals(t, c, reshareRuns(old, set, 2, bad(func(p *ReshareParams) {
			p.tamper = func(d *dealing) { d.ctx = oldContext(otherKey(t, p.Old)) }
		})), slow*20*time.Second, nil)
		expectRedealAbort(t, out, honest, ErrOldKey, cheat)
	})
	t.Run("deals another secret", func(t *testing.T) {
		out := runRedeals(t, c, reshareRuns(old, set, 2, bad(func(p *ReshareParams) {
			p.Share = randomScalar(t)
		})), slow*20*time.Second, nil)
		expectRedealAbort(t, out, honest, ErrOldKey, cheat)
	})
	t.Run("equivocates", func(t *testing.T) {
		// Each party gets a different, individually valid deal.
		out := runRedeals(t, c, reshareRuns(old, set, 2, bad(func(p *ReshareParams) {
			var mu sync.Mutex
			p.split = func(round uint8, to envelope.Party, payload []byte) ([]byte, bool) {
				if round != roundDeal || to != newcomer.Public() {
					return payload, true
				}
				mu.Lock()
				defer mu.Unlock()
				// Re-deal for the newcomer: a valid but different deal.
				return redealPayload(t, p, old[1]), true
			}
		})), slow*4*time.Second, nil)
		for _, i := range all {
			if out[i].certified != 0 {
				t.Fatalf("party %d certified", i)
			}
		}
		named := false
		for _, i := range honest {
			var ae *AbortError
			if errors.As(out[i].err, &ae) && ae.Culprit == cheat && errors.Is(ae, ErrEquivocation) {
				named = true
			}
			if !errors.Is(out[i].err, ErrPending) && !errors.Is(out[i].err, ErrRemoteAbort) && out[i].err == nil {
				t.Fatalf("party %d: %v", i, out[i].err)
			}
		}
		if !named {
			t.Errorf("no honest party named the equivocating dealer: %v / %v / %v", out[0].err, out[2].err, out[3].err)
		}
	})
	t.Run("silent dealer", func(t *testing.T) {
		runs := reshareRuns(old, set, 2, nil)
		runs[1].run = nil
		out := runRedeals(t, c, runs, slow*2*time.Second, nil)
		for _, i := range honest {
			var ae *AbortError
			if !errors.As(out[i].err, &ae) || out[i].state() != "none" {
				t.Fatalf("party %d: %v (%s)", i, out[i].err, out[i].state())
			}
			// Its own timeout, or a peer's abort notice for the same silence
			// when that arrives first (the order is the scheduler's).
			if !errors.Is(ae, ErrTimeout) && !(errors.Is(ae, ErrRemoteAbort) && ae.Culprit == cheat) {
				t.Fatalf("party %d: %v (%s)", i, out[i].err, out[i].state())
			}
		}
		// The holders know who must deal, and name the silent one.
		for _, i := range []int{0, 2} {
			var ae *AbortError
			errors.As(out[i].err, &ae)
			if ae.Culprit != cheat {
				t.Errorf("holder %d: culprit %x (%v)", i, ae.Culprit[:4], ae)
			}
		}
	})
	t.Run("crash before storing", func(t *testing.T) {
		out := runRedeals(t, c, reshareRuns(old, set, 2, nil), slow*20*time.Second, map[int]error{1: errors.New("disk full")})
		for _, i := range all {
			if out[i].err == nil || out[i].certified != 0 || out[i].state() != "none" {
				t.Fatalf("party %d: %v (%s)", i, out[i].err, out[i].state())
			}
		}
	})
	t.Run("new party pins the key", func(t *testing.T) {
		other := xonly(randomScalar(t))
		out := runRedeals(t, c, reshareRuns(old, set, 2, func(i int, p *ReshareParams) {
			if i == 3 {
				p.ExpectKey = &other
			}
		}), slow*20*time.Second, nil)
		var ae *AbortError
		if !errors.As(out[3].err, &ae) || !errors.Is(ae, ErrOldKey) || out[3].state() != "none" {
			t.Fatalf("newcomer: %v", out[3].err)
		}
		want := xonly(x)
		out = runRedeals(t, c, reshareRuns(old, set, 2, func(i int, p *ReshareParams) {
			if i == 3 {
				p.ExpectKey = &want
			}
		}), slow*20*time.Second, nil)
		holders(t, out)
	})
}

// TestRefreshAdversarial: a refresh dealer's bad zero share is named.
func TestRefreshAdversarial(t *testing.T) {
	c := newClient(t)
	_, old := dealtKey(t, 2, 3)
	cheat := old[2].id.Public()
	out := runRedeals(t, c, refreshRuns(old, func(i int, p *RefreshParams) {
		if i == 2 {
			p.tamper = func(d *dealing) { d.shares[0].Add(new(btcec.ModNScalar).SetInt(1)) }
		}
	}), slow*20*time.Second, nil)
	expectRedealAbort(t, out, []int{0, 1}, ErrBadShare, cheat)
	// A dealer presenting another generation is named by every holder.
	out = runRedeals(t, c, refreshRuns(old, func(i int, p *RefreshParams) {
		if i == 2 {
			k := *p.Key
			k.Transcript[0] ^= 1
			p.tamper = func(d *dealing) { d.ctx = oldContext(&k) }
		}
	}), slow*20*time.Second, nil)
	expectRedealAbort(t, out, []int{0, 1}, ErrOldKey, cheat)
}

// otherKey is k with one public share moved (and the key to match).
func otherKey(t *testing.T, k *KeyInfo) *KeyInfo {
	_, hs := dealtKey(t, k.T, k.N)
	o := *hs[0].info
	o.Parties = k.Parties
	return &o
}

// redealPayload builds a second, valid deal for the reshare p describes.
func redealPayload(t *testing.T, p *ReshareParams, h *holder) []byte {
	var set []envelope.Party
	set = append(append(set, p.Others...), p.Identity.Public())
	envelope.SortParties(set)
	r := redealFor(envelope.KindReshare, p.Room, p.Threshold, set, p.Old)
	l, err := vss.Lagrange(oldIDs(p.Old, r.dealers(p.Old)), p.Old.IDOf(h.id.Public()))
	if err != nil {
		t.Error(err)
		return nil
	}
	d, err := vss.DealSubShares(h.share, l, p.Threshold, len(set), nil)
	if err != nil {
		t.Error(err)
		return nil
	}
	b, err := dealingPayload(h.id, nil, r.session, set, &dealing{ctx: r.oldCtx, commitments: d.Commitments.Serialize(), shares: d.Shares})
	if err != nil {
		t.Error(err)
	}
	return b
}

// TestReshareStuckPartiesRecover: a party whose transcript signature never
// leaves (it crashed, or the relay dropped it) holds the certificate; the
// others stay pending, never lose their share, and become ready from its
// recovery data (a reshare's recovery data reopens the share on its own).
func TestReshareStuckPartiesRecover(t *testing.T) {
	c := newClient(t)
	x, old := dealtKey(t, 2, 3)
	set := []*envelope.Identity{old[0].id, old[1].id, newIdentity(t)}
	out := runRedeals(t, c, reshareRuns(old, set, 2, func(i int, p *ReshareParams) {
		if i == 0 {
			p.split = func(round uint8, _ envelope.Party, payload []byte) ([]byte, bool) {
				return payload, round != roundCertify && round != roundCert
			}
		}
	}), slow*4*time.Second, nil)
	if out[0].err != nil || out[0].state() != "ready" {
		t.Fatalf("the silenced party: %v (%s)", out[0].err, out[0].state())
	}
	for _, i := range []int{1, 2} {
		if !errors.Is(out[i].err, ErrPending) || out[i].state() != "pending" {
			t.Fatalf("party %d: %v (%s)", i, out[i].err, out[i].state())
		}
		ks, rd, err := Recover(out[i].id, out[0].rd.Marshal())
		if err != nil {
			t.Fatalf("party %d recovers: %v", i, err)
		}
		if !ks.Share.Equals(out[i].share) || ks.Transcript != out[0].info.Transcript || rd.Cert == nil {
			t.Fatalf("party %d: recovered another share", i)
		}
		out[i].info, out[i].certified = &ks.KeyInfo, 1
	}
	// A pending party's own (uncertified) copy recovers nobody.
	if _, _, err := Recover(out[2].id, out[1].rd.Marshal()); !errors.Is(err, ErrRecovery) {
		t.Fatalf("uncertified recovery data: %v", err)
	}
	for i := range out {
		out[i].err = nil
	}
	mustSign(t, c, holders(t, out), xonly(x))
}
