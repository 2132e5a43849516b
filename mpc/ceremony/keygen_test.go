package ceremony

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/chilldkg"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/vss"
)

// runKeygen runs a keygen of all of q's parties in a fresh room; tweak
// adjusts a party's params, absent parties never start.
func (q *quorum) runKeygen(t int, timeout time.Duration, tweak func(i int, p *KeygenParams), absent map[int]bool, failPrepare map[int]error) []*importOutcome {
	room := q.room(len(q.ids))
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
		p := KeygenParams{Room: room, Identity: id, Others: q.others(i), Threshold: t,
			Transport: RelayTransport(q.client, room, id, append([]envelope.Party{id.Public()}, q.others(i)...))}
		if tweak != nil {
			tweak(i, &p)
		}
		wg.Add(1)
		go func(o *importOutcome) {
			defer wg.Done()
			o.info, o.err = Keygen(ctx, p, &o.memDurable)
		}(out[i])
	}
	wg.Wait()
	return out
}

// checkKeygen checks a successful keygen: every party certified once, all
// agree on the key and transcript, and t shares interpolate to the discrete
// log of the threshold key.
func checkKeygen(t *testing.T, out []*importOutcome, thr int) {
	t.Helper()
	for i, o := range out {
		if o.err != nil {
			t.Fatalf("party %d: %v", i, o.err)
		}
		if o.prepared != 1 || o.certified != 1 || o.discarded != 0 {
			t.Fatalf("party %d prepared %d, certified %d, discarded %d times", i, o.prepared, o.certified, o.discarded)
		}
		if o.info.ThreshPK != out[0].info.ThreshPK || o.info.Transcript != out[0].info.Transcript {
			t.Fatalf("party %d: another key or transcript", i)
		}
	}
	ids := mrand.Perm(len(out))[:thr]
	var sum btcec.ModNScalar
	for _, id := range ids {
		l, err := vss.Lagrange(ids, id)
		if err != nil {
			t.Fatal(err)
		}
		l.Mul(out[id].share)
		sum.Add(l)
	}
	pub := btcec.PrivKeyFromScalar(&sum).PubKey().SerializeCompressed()
	if !bytes.Equal(pub, out[0].info.ThreshPK[:]) {
		t.Fatal("t shares do not interpolate to the threshold key")
	}
}

func TestKeygenThenSign(t *testing.T) {
	addr := testkit.Relay(t)
	for _, tc := range []struct{ t, n int }{{2, 3}, {3, 5}, {1, 1}} {
		t.Run(fmt.Sprintf("%d-of-%d", tc.t, tc.n), func(t *testing.T) {
			q := newQuorum(t, addr, tc.n)
			out := q.runKeygen(tc.t, slow*60*time.Second, nil, nil, nil)
			checkKeygen(t, out, tc.t)
			// The recovery data is ChillDKG's: the spec's recover accepts it.
			rd := out[0].rd
			if rd.Kind != envelope.KindKeygen {
				t.Fatalf("recovery data of kind %d", rd.Kind)
			}
			spec := append(slices.Clone(rd.Deal), rd.Cert.Marshal()...)
			if o, _, err := chilldkg.CoordinatorRecover(spec); err != nil || !bytes.Equal(o.ThreshPK, out[0].info.ThreshPK[:]) {
				t.Fatalf("chilldkg.CoordinatorRecover: %v", err)
			}
			for i := range out {
				ks, _, err := Recover(q.ids[i], out[(i+1)%tc.n].rd.Marshal())
				if err != nil {
					t.Fatalf("party %d recovering: %v", i, err)
				}
				if !ks.Share.Equals(out[i].share) || ks.Transcript != out[i].info.Transcript {
					t.Fatalf("party %d recovered another share or transcript", i)
				}
				ks.Share.Zero()
			}
			signers := mrand.Perm(tc.n)[:tc.t]
			msg := make([]byte, 32)
			rand.Read(msg)
			for _, s := range q.runSign(out, signers, msg, nil, slow*30*time.Second, nil) {
				if s.err != nil {
					t.Fatal(s.err)
				}
				verifyBTCEC(t, out[0].info.XOnly(), msg, s.sig)
			}
		})
	}
}

// encShareOffset is where the share encrypted to party j sits in a first
// message (ChillDKG: commitment ‖ pop ‖ pubnonce ‖ encrypted shares).
func encShareOffset(t, j int) int { return 33*t + 64 + 33 + 32*j }

// crashAfter plays a process that dies right after sending its first
// envelope of round: from then on it sends and receives nothing.
type crashAfter struct {
	Transport
	round   uint8
	crashed atomic.Bool
}

var errCrashed = errors.New("process crashed")

func (c *crashAfter) Send(ctx context.Context, to envelope.Party, raw []byte) error {
	if c.crashed.Load() {
		return errCrashed
	}
	err := c.Transport.Send(ctx, to, raw)
	if e, uerr := envelope.Unmarshal(raw); uerr == nil && e.Round == c.round {
		c.crashed.Store(true)
	}
	return err
}

func (c *crashAfter) Recv(ctx context.Context) ([]byte, error) {
	if c.crashed.Load() {
		return nil, errCrashed
	}
	return c.Transport.Recv(ctx)
}

// TestKeygenAdversarial: a member that sends a bad share, equivocates,
// stays silent, or crashes; a party whose durable write fails. The
// investigation names the right culprit, and nobody succeeds while an
// honest party holds nothing (DESIGN §3's invariant).
func TestKeygenAdversarial(t *testing.T) {
	const n, thr, cheat = 3, 2, 2
	addr := testkit.Relay(t)

	t.Run("bad share", func(t *testing.T) {
		q := newQuorum(t, addr, n)
		culprit := q.ids[cheat].Public()
		out := q.runKeygen(thr, slow*10*time.Second, func(i int, p *KeygenParams) {
			if i == cheat {
				// The same bad message to everyone: party 0's share is wrong.
				p.tamper = func(m []byte) []byte {
					m = slices.Clone(m)
					m[encShareOffset(thr, 0)+31] ^= 1
					return m
				}
			}
		}, nil, nil)
		checkInvariant(t, out, []int{0, 1})
		var ae *AbortError
		if !errors.As(out[0].err, &ae) || !errors.Is(ae, ErrBadShare) || ae.Culprit != culprit {
			t.Fatalf("victim: %v, want a bad share naming the cheat", out[0].err)
		}
		// The victim refused instead of signing: the others discard.
		expectStates(t, out, "none", "none", "none")
	})

	for name, tamper := range map[string]func([]byte) []byte{
		// The proof of possession follows the t commitments.
		"bad proof of possession": func(m []byte) []byte { m = slices.Clone(m); m[33*thr+10] ^= 1; return m },
		"malformed first message": func(m []byte) []byte { return m[:len(m)-1] },
	} {
		t.Run(name, func(t *testing.T) {
			q := newQuorum(t, addr, n)
			culprit := q.ids[cheat].Public()
			out := q.runKeygen(thr, slow*10*time.Second, func(i int, p *KeygenParams) {
				if i == cheat {
					p.tamper = tamper
				}
			}, nil, nil)
			checkInvariant(t, out, []int{0, 1})
			// The first to see the message names the cheat. The abort can be
			// so quick that the room is gone before the other honest party
			// took its seat: then it fails with the relay's refusal.
			named := false
			for _, i := range []int{0, 1} {
				var ae *AbortError
				switch {
				case !errors.As(out[i].err, &ae):
					t.Errorf("party %d: want an abort, got %v", i, out[i].err)
				case errors.Is(ae, ErrProtocol) && ae.Culprit == culprit:
					named = true
				case errors.Is(ae, ErrRemoteAbort), errors.Is(ae, ErrTransport):
				default:
					t.Errorf("party %d: %v, want the cheat named", i, ae)
				}
			}
			if !named {
				t.Error("no honest party named the cheat")
			}
			expectStates(t, out, "none", "none", "none")
		})
	}

	t.Run("equivocation", func(t *testing.T) {
		q := newQuorum(t, addr, n)
		culprit := q.ids[cheat].Public()
		params := chilldkg.SessionParams{T: thr}
		for _, p := range q.parties() {
			params.HostPubkeys = append(params.HostPubkeys, p[:])
		}
		hk := q.ids[cheat].PrivateBytes()
		var r2 [32]byte
		rand.Read(r2[:])
		_, alt, err := chilldkg.ParticipantStep1(hk[:], params, r2[:])
		if err != nil {
			t.Fatal(err)
		}
		out := q.runKeygen(thr, slow*4*time.Second, func(i int, p *KeygenParams) {
			if i == cheat {
				// Another valid first message for party 0 alone.
				p.split = func(round uint8, to envelope.Party, pl []byte) ([]byte, bool) {
					if round == roundKeygen1 && to == q.ids[0].Public() {
						return alt, true
					}
					return pl, true
				}
			}
		}, nil, nil)
		checkInvariant(t, out, []int{0, 1})
		for _, i := range []int{0, 1} {
			var ae *AbortError
			if !errors.As(out[i].err, &ae) || !errors.Is(ae, ErrDKGEquivocation) || ae.Culprit != culprit {
				t.Errorf("party %d: %v, want equivocation naming the cheat", i, out[i].err)
			}
		}
		// The parties announce their transcripts before signing and see
		// them differ: nobody signs, so no certificate can exist and every
		// party discards.
		expectStates(t, out, "none", "none", "none")
	})

	t.Run("silence", func(t *testing.T) {
		q := newQuorum(t, addr, n)
		culprit := q.ids[cheat].Public()
		out := q.runKeygen(thr, slow*3*time.Second, nil, map[int]bool{cheat: true}, nil)
		expectAbort(t, out, []int{0, 1}, ErrTimeout, &culprit)
		expectStates(t, out, "none", "none", "none")
	})

	t.Run("durable write fails", func(t *testing.T) {
		q := newQuorum(t, addr, n)
		out := q.runKeygen(thr, slow*10*time.Second, nil, nil, map[int]error{1: errors.New("disk full")})
		checkInvariant(t, out, []int{0, 1, 2})
		if !errors.Is(out[1].err, ErrCommit) {
			t.Fatalf("party 1: %v, want a commit failure", out[1].err)
		}
		expectStates(t, out, "none", "none", "none")
		// Nothing half-written: the same parties key again in a new room.
		out[1].failPrepare = nil
		checkKeygen(t, q.runKeygen(thr, slow*30*time.Second, nil, nil, nil), thr)
	})

	t.Run("crash after signing, restart", func(t *testing.T) {
		q := newQuorum(t, addr, n)
		out := q.runKeygen(thr, slow*10*time.Second, func(i int, p *KeygenParams) {
			if i == cheat {
				p.Transport = &crashAfter{Transport: p.Transport, round: roundCertify}
			}
		}, nil, nil)
		checkInvariant(t, out, []int{0, 1, 2})
		// Its signature made the certificate: the others are ready; the
		// crashed party kept its prepared share.
		expectStates(t, out, "ready", "ready", "pending")
		// Restarted, it recovers from a peer's recovery data and signs.
		recoverFrom(t, q, out, cheat, 0)
		ki := out[cheat].rd.keyInfo(t, q.ids[cheat])
		out[cheat].info = &ki
		msg := bytes.Repeat([]byte{7}, 32)
		for _, s := range q.runSign(out, []int{0, cheat}, msg, nil, slow*30*time.Second, nil) {
			if s.err != nil {
				t.Fatal(s.err)
			}
			verifyBTCEC(t, out[0].info.XOnly(), msg, s.sig)
		}
	})

	t.Run("crash after signing, recovered by signing", func(t *testing.T) {
		q := newQuorum(t, addr, n)
		out := q.runKeygen(thr, slow*10*time.Second, func(i int, p *KeygenParams) {
			if i == cheat {
				p.Transport = &crashAfter{Transport: p.Transport, round: roundCertify}
			}
		}, nil, nil)
		expectStates(t, out, "ready", "ready", "pending")
		// Restarted and still pending, it signs with a ready party, which
		// attaches the certificate (ChillDKG's CertEq signatures, checked
		// over the key's eq_input) so the pending party records it first.
		out[cheat].info = out[0].info
		var adopted Certificate
		msg := bytes.Repeat([]byte{9}, 32)
		for _, s := range q.runSign(out, []int{1, cheat}, msg, nil, slow*30*time.Second, func(i int, p *SignParams) {
			if i == cheat {
				p.Pending = true
				p.OnCertified = func(c Certificate) error { adopted = c; return nil }
			}
		}) {
			if s.err != nil {
				t.Fatal(s.err)
			}
			verifyBTCEC(t, out[0].info.XOnly(), msg, s.sig)
		}
		if adopted == nil || out[0].info.VerifyCertificate(adopted) != nil {
			t.Fatal("the pending signer did not adopt a valid certificate")
		}
		// A quorumd-style certificate over the transcript is not a keygen's.
		var forged Certificate
		for i := range q.ids {
			sig, err := signTranscript(q.ids[i], out[0].info.Transcript)
			if err != nil {
				t.Fatal(err)
			}
			forged = append(forged, sig)
		}
		if out[0].info.VerifyCertificate(forged) == nil {
			t.Fatal("a certificate of the wrong scheme verified")
		}
	})
}

// TestRecoverKeygenRejects: keygen recovery data is checked before a share
// is handed out.
func TestRecoverKeygenRejects(t *testing.T) {
	q := newQuorum(t, testkit.Relay(t), 3)
	out := q.runKeygen(2, slow*30*time.Second, nil, nil, nil)
	checkKeygen(t, out, 2)
	good := out[1].rd.Marshal()
	stranger, _ := envelope.GenerateIdentity()
	badCert := *out[1].rd
	badCert.Cert = slices.Clone(badCert.Cert)
	badCert.Cert[2][5] ^= 1
	badEq := *out[1].rd
	badEq.Deal = flipAt(badEq.Deal, 40)
	pending := *out[1].rd
	pending.Cert = nil
	asImport := *out[1].rd
	asImport.Kind = envelope.KindImport
	cases := map[string]struct {
		id   *envelope.Identity
		data []byte
		want error
	}{
		"not a party":        {stranger, good, ErrNotAParty},
		"no certificate":     {q.ids[2], pending.Marshal(), ErrRecovery},
		"forged certificate": {q.ids[2], badCert.Marshal(), ErrRecovery},
		"tampered eq_input":  {q.ids[2], badEq.Marshal(), ErrRecovery},
		"wrong kind":         {q.ids[2], asImport.Marshal(), ErrRecovery},
	}
	for name, c := range cases {
		if _, _, err := Recover(c.id, c.data); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

// BenchmarkKeygen measures whole keygen ceremonies through a relay on
// loopback, one at a time, beside imports of the same size in the same run
// (the stores are in memory: this is protocol and compute only).
func BenchmarkKeygen(b *testing.B) {
	addr := testkit.Relay(b)
	for _, tc := range []struct{ t, n int }{{2, 3}, {3, 5}, {7, 10}} {
		b.Run(fmt.Sprintf("%d-of-%d", tc.t, tc.n), func(b *testing.B) {
			q := newQuorum(&testing.T{}, addr, tc.n)
			x := randomScalar(b)
			var kg, imp []time.Duration
			for range b.N {
				start := time.Now()
				out := q.runKeygen(tc.t, 30*time.Second, nil, nil, nil)
				kg = append(kg, time.Since(start))
				if out[0].err != nil {
					b.Fatal(out[0].err)
				}
				start = time.Now()
				out = q.runImport(x, 0, tc.t, 30*time.Second, nil, nil)
				imp = append(imp, time.Since(start))
				if out[0].err != nil {
					b.Fatal(out[0].err)
				}
			}
			slices.Sort(kg)
			slices.Sort(imp)
			k, i := float64(kg[len(kg)/2].Microseconds())/1000, float64(imp[len(imp)/2].Microseconds())/1000
			b.ReportMetric(k, "keygen-p50-ms")
			b.ReportMetric(i, "import-p50-ms")
			b.ReportMetric(k/i, "keygen/import")
		})
	}
}
