package ceremony

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
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

// importOutcome is what one party's Import returned and committed.
type importOutcome struct {
	info    *KeyInfo
	err     error
	share   *btcec.ModNScalar // what commit saw (a copy, for the signing tests)
	commits int32
}

// runImport runs an import with party importer dealing x; tweak adjusts a
// party's params (nil = honest); absent parties never start.
func (q *quorum) runImport(x *btcec.ModNScalar, importer, t int, timeout time.Duration,
	tweak func(i int, p *ImportParams), absent map[int]bool) []*importOutcome {
	room := q.room(len(q.ids))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out := make([]*importOutcome, len(q.ids))
	var wg sync.WaitGroup
	for i, id := range q.ids {
		out[i] = &importOutcome{}
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
			o.info, o.err = Import(ctx, p, func(ks *KeyShare) error {
				atomic.AddInt32(&o.commits, 1)
				s := ks.Share
				o.share = &s
				return nil
			})
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
				if o.commits != 1 {
					t.Fatalf("party %d committed %d times", i, o.commits)
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
			Signers: len(signers), Msg: msg, Tweaks: tweaks,
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
