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
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/vss"
)

type dealOutcome struct {
	info *KeyInfo
	cert Certificate
	err  error
	x    *btcec.ModNScalar // the dealer's copy of x, after Deal
}

// runDeal runs an import in which an external dealer deals x to every
// party of q (a room of N+1 seats); corrupt, when set, is the party the
// dealer cheats; tweak adjusts a recipient's params.
func (q *quorum) runDeal(x *btcec.ModNScalar, t int, timeout time.Duration, corrupt envelope.Party,
	tweak ...func(i int, p *ImportParams, seated []envelope.Party)) (*dealOutcome, []*importOutcome, envelope.Party) {
	q.t.Helper()
	dealer, err := envelope.GenerateIdentity()
	if err != nil {
		q.t.Fatal(err)
	}
	dp := dealer.Public()
	room := q.room(len(q.ids) + 1)
	seated := append(q.parties(), dp)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	out := make([]*importOutcome, len(q.ids))
	for i, id := range q.ids {
		out[i] = &importOutcome{}
		p := ImportParams{Room: room, Identity: id, Others: q.others(i), Threshold: t, Dealer: dp,
			Transport: RelayTransport(q.client, room, id, seated)}
		for _, tw := range tweak {
			tw(i, &p, seated)
		}
		wg.Add(1)
		go func(o *importOutcome) {
			defer wg.Done()
			o.info, o.err = Import(ctx, p, &o.memDurable)
		}(out[i])
	}
	d := &dealOutcome{x: new(btcec.ModNScalar)}
	d.x.Set(x)
	d.info, d.cert, d.err = Deal(ctx, DealParams{Room: room, Identity: dealer, Parties: q.parties(), Threshold: t,
		Transport: RelayTransport(q.client, room, dealer, seated), PrivateKey: d.x, CorruptShareOf: corrupt})
	wg.Wait()
	return d, out, dp
}

func TestDealExternal(t *testing.T) {
	addr := testkit.Relay(t)
	for _, tc := range []struct{ t, n int }{{1, 2}, {2, 3}, {3, 3}} {
		t.Run(fmt.Sprintf("%d-of-%d", tc.t, tc.n), func(t *testing.T) {
			q := newQuorum(t, addr, tc.n)
			x := randomScalar(t)
			want := xonly(x)
			d, out, dealer := q.runDeal(x, tc.t, slow*60*time.Second, envelope.Party{})
			if d.err != nil {
				t.Fatalf("dealer: %v", d.err)
			}
			if !d.x.IsZero() {
				t.Fatal("the dealer's x is not zeroed after Deal")
			}
			if d.info.XOnly() != want || d.info.N != tc.n || d.info.IDOf(dealer) != -1 {
				t.Fatalf("dealer's outcome: key %x (want %x), N %d, dealer id %d", d.info.XOnly(), want, d.info.N, d.info.IDOf(dealer))
			}
			if err := CheckCertificate(d.info, d.cert); err != nil {
				t.Fatalf("dealer's certificate: %v", err)
			}
			for i, o := range out {
				if o.err != nil {
					t.Fatalf("party %d: %v", i, o.err)
				}
				if o.state() != "ready" || o.info.XOnly() != want || o.info.Transcript != d.info.Transcript {
					t.Fatalf("party %d: %s, key %x, transcript equal %v", i, o.state(), o.info.XOnly(), o.info.Transcript == d.info.Transcript)
				}
				// The recovery data alone (the deal + certificate) gives the
				// share back: the dealer is not needed for recovery.
				ks, _, err := Recover(q.ids[i], o.rd.Marshal())
				if err != nil {
					t.Fatalf("party %d recovering from its own recovery data: %v", i, err)
				}
				if !ks.Share.Equals(o.share) {
					t.Fatalf("party %d recovered another share", i)
				}
				ks.Share.Zero()
			}
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
				t.Fatal("shares do not interpolate to the dealt key")
			}
			msg := make([]byte, 32)
			rand.Read(msg)
			signers := mrand.Perm(tc.n)[:tc.t]
			for i, s := range q.runSign(out, signers, msg, nil, slow*60*time.Second, nil) {
				if s.err != nil {
					t.Fatalf("signer %d: %v", signers[i], s.err)
				}
				verifyBTCEC(t, want, msg, s.sig)
			}
		})
	}
}

// TestDealCheatingDealer: a share inconsistent with the commitments for one
// recipient makes every recipient abort naming the dealer, with nothing
// stored, and the dealer learns it (no certificate).
func TestDealCheatingDealer(t *testing.T) {
	addr := testkit.Relay(t)
	q := newQuorum(t, addr, 3)
	cheated := 1
	d, out, dealer := q.runDeal(randomScalar(t), 2, slow*60*time.Second, q.ids[cheated].Public())
	if d.err == nil || d.cert != nil {
		t.Fatal("the cheating dealer got a certificate")
	}
	var dae *AbortError
	if !errors.As(d.err, &dae) || dae.Culprit != dealer {
		t.Errorf("dealer's error %v does not name the dealer", d.err)
	}
	if !errors.Is(out[cheated].err, ErrBadShare) {
		t.Errorf("the cheated party answered %v, want %v", out[cheated].err, ErrBadShare)
	}
	for i, o := range out {
		var ae *AbortError
		if !errors.As(o.err, &ae) || ae.Culprit != dealer {
			t.Errorf("party %d: %v, want an abort naming the dealer", i, o.err)
		}
	}
	expectStates(t, out, "none", "none", "none")
}

// TestDealWrongDealer: recipients expecting another dealer (or an importer
// among the parties) never accept the deal: it is bound to the dealer's
// session. They time out with nothing stored.
func TestDealWrongDealer(t *testing.T) {
	addr := testkit.Relay(t)
	q := newQuorum(t, addr, 2)
	dealer, _ := envelope.GenerateIdentity()
	other, _ := envelope.GenerateIdentity()
	room := q.room(3)
	seated := append(q.parties(), dealer.Public())
	ctx, cancel := context.WithTimeout(context.Background(), slow*3*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	out := make([]*importOutcome, 2)
	for i, id := range q.ids {
		out[i] = &importOutcome{}
		p := ImportParams{Room: room, Identity: id, Others: q.others(i), Threshold: 2, Dealer: other.Public(),
			Transport: RelayTransport(q.client, room, id, seated)}
		wg.Add(1)
		go func(o *importOutcome) {
			defer wg.Done()
			o.info, o.err = Import(ctx, p, &o.memDurable)
		}(out[i])
	}
	_, cert, err := Deal(ctx, DealParams{Room: room, Identity: dealer, Parties: q.parties(), Threshold: 2,
		Transport: RelayTransport(q.client, room, dealer, seated), PrivateKey: randomScalar(t)})
	wg.Wait()
	// The dealer times out, or first hears a recipient's refusal at the
	// same deadline: either way, no certificate.
	if err == nil || cert != nil {
		t.Errorf("dealer: %v, want a failure", err)
	}
	// Both recipients share one deadline: one may hear of the other's
	// timeout (its abort notice, naming the dealer it expected) before its
	// own fires.
	for i, o := range out {
		var ae *AbortError
		if !errors.Is(o.err, ErrTimeout) && !(errors.As(o.err, &ae) && errors.Is(ae, ErrRemoteAbort) && ae.Culprit == other.Public()) {
			t.Errorf("party %d: %v, want a timeout, its own or a peer's naming the expected dealer", i, o.err)
		}
	}
	expectStates(t, out, "none", "none")
}

func TestDealInput(t *testing.T) {
	q := newQuorum(t, "http://127.0.0.1:1", 2)
	_, _, err := Deal(context.Background(), DealParams{Room: "r", Identity: q.ids[0], Parties: q.parties(),
		Threshold: 2, Transport: RelayTransport(q.client, "r", q.ids[0], q.parties()), PrivateKey: randomScalar(t)})
	if !errors.Is(err, ErrInput) {
		t.Errorf("a dealer among the parties: %v, want %v", err, ErrInput)
	}
	_, err = Import(context.Background(), ImportParams{Room: "r", Identity: q.ids[0], Others: q.others(0), Threshold: 2,
		Dealer: q.ids[1].Public(), Transport: RelayTransport(q.client, "r", q.ids[0], q.parties())}, &memDurable{})
	if !errors.Is(err, ErrInput) {
		t.Errorf("a recipient naming a party as the dealer: %v, want %v", err, ErrInput)
	}
}

// BenchmarkDeal measures whole external-dealer imports (N recipients and
// the dealer, N+1 seats) through a relay on loopback, one at a time;
// compare BenchmarkImport's serial runs.
func BenchmarkDeal(b *testing.B) {
	addr := testkit.Relay(b)
	for _, tc := range []struct{ t, n int }{{2, 3}, {3, 5}} {
		b.Run(fmt.Sprintf("%d-of-%d/serial", tc.t, tc.n), func(b *testing.B) {
			q := newQuorum(&testing.T{}, addr, tc.n)
			x := randomScalar(b)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				d, _, _ := q.runDeal(x, tc.t, 30*time.Second, envelope.Party{})
				lat = append(lat, time.Since(start))
				if d.err != nil {
					b.Fatal(d.err)
				}
			}
			reportLatency(b, lat)
		})
	}
}
