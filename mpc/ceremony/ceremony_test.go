package ceremony

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/frost"
	"github.com/quorumd/quorumd/mpc/relay"
	"github.com/quorumd/quorumd/mpc/vss"
)

// quorum is N parties on one relay.
type quorum struct {
	t      *testing.T
	client *relay.Client
	ids    []*envelope.Identity // sorted by public key: index = BIP445 id
	ctx    context.Context      // parent of the ceremonies' contexts; nil: Background
}

func (q *quorum) base() context.Context {
	if q.ctx != nil {
		return q.ctx
	}
	return context.Background()
}

func newQuorum(t *testing.T, addr string, n int) *quorum {
	t.Helper()
	c, err := relay.NewClient(addr, relay.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	q := &quorum{t: t, client: c}
	for range n {
		id, err := envelope.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		q.ids = append(q.ids, id)
	}
	parties := q.parties()
	envelope.SortParties(parties)
	sorted := make([]*envelope.Identity, n)
	for _, id := range q.ids {
		for j, p := range parties {
			if p == id.Public() {
				sorted[j] = id
			}
		}
	}
	q.ids = sorted
	return q
}

func (q *quorum) parties() []envelope.Party {
	out := make([]envelope.Party, len(q.ids))
	for i, id := range q.ids {
		out[i] = id.Public()
	}
	return out
}

func (q *quorum) others(i int) []envelope.Party {
	var out []envelope.Party
	for j, id := range q.ids {
		if j != i {
			out = append(out, id.Public())
		}
	}
	return out
}

func (q *quorum) room(size int) string {
	q.t.Helper()
	room, err := q.client.CreateRoom(context.Background(), size)
	if err != nil {
		q.t.Fatal(err)
	}
	return room
}

// memDurable is a party's store in these tests: it keeps what Prepare,
// Certified and Discard were handed, so a test can tell apart "nothing
// stored", "pending" and "ready".
type memDurable struct {
	mu                             sync.Mutex
	prepared, certified, discarded int
	share                          *btcec.ModNScalar // a copy of the prepared share
	rd                             *RecoveryData
	failPrepare                    error
	refusedBy                      envelope.Party // set by Refused
	// prepareHook, when set, runs inside Prepare once the share is stored
	// (tests: hold a party between its durable write and its signature).
	prepareHook func()
}

func (d *memDurable) Prepare(ks *KeyShare, rd *RecoveryData) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failPrepare != nil {
		return d.failPrepare
	}
	d.prepared++
	s := ks.Share
	d.share, d.rd = &s, rd
	if d.prepareHook != nil {
		d.mu.Unlock()
		defer d.mu.Lock()
		d.prepareHook()
	}
	return nil
}

func (d *memDurable) Certified(_ *KeyInfo, rd *RecoveryData) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.certified++
	d.rd = rd
	return nil
}

func (d *memDurable) Discard(*KeyInfo) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.discarded++
	d.share, d.rd = nil, nil
	return nil
}

func (d *memDurable) Refused(_ *KeyInfo, by envelope.Party) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refusedBy = by
	return nil
}

// state is what this party holds: "none", "pending" or "ready".
func (d *memDurable) state() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.prepared == d.discarded:
		return "none"
	case d.certified > 0:
		return "ready"
	}
	return "pending"
}

// importOutcome is what one party's Import returned and stored.
type importOutcome struct {
	memDurable
	info *KeyInfo
	err  error
}

// runImport runs an import with party importer dealing x; tweak adjusts a
// party's params (nil = honest); absent parties never start.
func (q *quorum) runImport(x *btcec.ModNScalar, importer, t int, timeout time.Duration,
	tweak func(i int, p *ImportParams), absent map[int]bool) []*importOutcome {
	return q.runImportIn(q.room(len(q.ids)), x, importer, t, timeout, tweak, absent, nil)
}

// runImportIn is runImport in a given room; failPrepare makes those
// parties' durable write fail.
func (q *quorum) runImportIn(room string, x *btcec.ModNScalar, importer, t int, timeout time.Duration,
	tweak func(i int, p *ImportParams), absent map[int]bool, failPrepare map[int]error) []*importOutcome {
	ctx, cancel := context.WithTimeout(q.base(), timeout)
	defer cancel()
	out := make([]*importOutcome, len(q.ids))
	var wg sync.WaitGroup
	for i, id := range q.ids {
		out[i] = &importOutcome{}
		out[i].failPrepare = failPrepare[i]
		if absent[i] {
			continue
		}
		p := ImportParams{Room: room, Identity: id, Others: q.others(i), Threshold: t,
			Transport: RelayTransport(q.client, room, id, append([]envelope.Party{id.Public()}, q.others(i)...))}
		if i == importer {
			xc := *x
			p.PrivateKey = &xc
		}
		if tweak != nil {
			tweak(i, &p)
		}
		wg.Add(1)
		go func(o *importOutcome) {
			defer wg.Done()
			o.info, o.err = Import(ctx, p, &o.memDurable)
		}(out[i])
	}
	wg.Wait()
	return out
}

func randomScalar(t testing.TB) *btcec.ModNScalar {
	var b [32]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			t.Fatal(err)
		}
		var k btcec.ModNScalar
		if k.SetBytes(&b) == 0 && !k.IsZero() {
			return &k
		}
	}
}

func xonly(k *btcec.ModNScalar) [32]byte {
	pub := btcec.PrivKeyFromScalar(k).PubKey()
	return [32]byte(schnorr.SerializePubKey(pub))
}

func TestImportThenSign(t *testing.T) {
	addr := testkit.Relay(t)
	cases := []struct{ t, n int }{{2, 2}, {2, 3}, {3, 5}, {5, 5}, {15, 20}}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d-of-%d", tc.t, tc.n), func(t *testing.T) {
			q := newQuorum(t, addr, tc.n)
			x := randomScalar(t)
			want := xonly(x)
			importer := mrand.IntN(tc.n)
			out := q.runImport(x, importer, tc.t, slow*60*time.Second, nil, nil)
			for i, o := range out {
				if o.err != nil {
					t.Fatalf("party %d: %v", i, o.err)
				}
				if o.prepared != 1 || o.certified != 1 || o.discarded != 0 {
					t.Fatalf("party %d prepared %d, certified %d, discarded %d times", i, o.prepared, o.certified, o.discarded)
				}
				if o.info.XOnly() != want {
					t.Fatalf("party %d: threshold key %x, want %x", i, o.info.XOnly(), want)
				}
				if o.info.Transcript != out[0].info.Transcript {
					t.Fatalf("party %d: transcript differs", i)
				}
			}
			// Any t shares interpolate to x: the key really is the imported one.
			ids := mrand.Perm(tc.n)[:tc.t]
			var sum btcec.ModNScalar
			for _, id := range ids {
				l, err := vss.Lagrange(ids, id)
				if err != nil {
					t.Fatal(err)
				}
				l.Mul(out[id].share)
				sum.Add(l)
			}
			if !sum.Equals(x) {
				t.Fatal("shares do not interpolate to the imported key")
			}
			// Sign with random subsets of every admissible size (a few).
			rounds := 2
			if tc.n > 10 {
				rounds = 1 // each large signing ceremony costs seconds under -race
			}
			for round := 0; round < rounds; round++ {
				u := tc.t + mrand.IntN(tc.n-tc.t+1)
				signers := mrand.Perm(tc.n)[:u]
				// 32-byte messages so btcec (a second implementation, which
				// takes only 32-byte messages) verifies too.
				msg := make([]byte, 32)
				rand.Read(msg)
				sigs := q.runSign(out, signers, msg, nil, slow*60*time.Second, nil)
				for i, s := range sigs {
					if s.err != nil {
						t.Fatalf("signer %d: %v", signers[i], s.err)
					}
					verifyBTCEC(t, want, msg, s.sig)
				}
			}
		})
	}
}

type signOutcome struct {
	sig [64]byte
	err error
}

func (q *quorum) runSign(keys []*importOutcome, signers []int, msg []byte, tweaks []frost.Tweak,
	timeout time.Duration, tweak func(i int, p *SignParams)) []*signOutcome {
	room := q.room(len(signers))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out := make([]*signOutcome, len(signers))
	var wg sync.WaitGroup
	for j, i := range signers {
		out[j] = &signOutcome{}
		p := SignParams{Room: room, Identity: q.ids[i], Key: keys[i].info, Share: keys[i].share,
			Signers: len(signers), Msg: msg, Tweaks: tweaks, Certificate: keys[i].rd.Cert,
			Transport: RelayTransport(q.client, room, q.ids[i], append([]envelope.Party{q.ids[i].Public()}, q.others(i)...))}
		if tweak != nil {
			tweak(i, &p)
		}
		wg.Add(1)
		go func(o *signOutcome) {
			defer wg.Done()
			o.sig, o.err = Sign(ctx, p)
		}(out[j])
	}
	wg.Wait()
	return out
}

// verifyBTCEC checks a signature with btcec's independent BIP340 verifier.
func verifyBTCEC(t *testing.T, pubX [32]byte, msg []byte, sig [64]byte) {
	t.Helper()
	pub, err := schnorr.ParsePubKey(pubX[:])
	if err != nil {
		t.Fatal(err)
	}
	s, err := schnorr.ParseSignature(sig[:])
	if err != nil {
		t.Fatal(err)
	}
	if !s.Verify(msg, pub) {
		t.Fatal("signature does not verify under the imported key (btcec)")
	}
}
