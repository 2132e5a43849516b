package frost

import (
	"fmt"
	mrand "math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/quorumd/quorumd/mpc/internal/bounded"
)

// processCPU is the process's user+system CPU time: per-operation CPU is
// less noisy than wall time on a shared machine.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchSession is a ready signing session of the first u ids of a t-of-n key.
type benchSession struct {
	k         *testKey
	ids       []uint32
	pubnonces []PubNonce
	psigs     []PartialSig
	sess      *SessionCtx
}

func newBenchSession(b *testing.B, th, n uint32) *benchSession {
	rng := mrand.New(mrand.NewPCG(1, 2))
	k := dealTestKey(b, rng, th, n)
	bs := &benchSession{k: k}
	for id := range th {
		bs.ids = append(bs.ids, id)
	}
	secnonces := make([]*SecNonce, th)
	for i, id := range bs.ids {
		sn, pn, err := NonceGen(nil, &NonceGenArgs{SecShare: &k.shares[id]})
		if err != nil {
			b.Fatal(err)
		}
		secnonces[i] = sn
		bs.pubnonces = append(bs.pubnonces, pn)
	}
	agg, err := NonceAgg(bs.pubnonces)
	if err != nil {
		b.Fatal(err)
	}
	bs.sess = &SessionCtx{Signers: *k.signers(bs.ids), AggNonce: agg, Msg: make([]byte, 32)}
	for i, id := range bs.ids {
		ps, err := Sign(secnonces[i], &k.shares[id], id, bs.sess)
		if err != nil {
			b.Fatal(err)
		}
		bs.psigs = append(bs.psigs, ps)
	}
	return bs
}

var benchConfigs = [][2]uint32{{2, 3}, {7, 10}}

func BenchmarkNonceGen(b *testing.B) {
	rng := mrand.New(mrand.NewPCG(3, 4))
	k := dealTestKey(b, rng, 2, 3)
	args := &NonceGenArgs{SecShare: &k.shares[0], PubShare: k.pubshares[0][:], ThreshPKXOnly: k.threshPK[1:], Msg: make([]byte, 32), HasMsg: true}
	for b.Loop() {
		if _, _, err := NonceGen(nil, args); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSign is one signer's Sign, including its self-verification, in a
// new session each time (a different message), as in a real ceremony.
func BenchmarkSign(b *testing.B) {
	for _, c := range benchConfigs {
		b.Run(fmt.Sprintf("%dof%d", c[0], c[1]), func(b *testing.B) {
			bs := newBenchSession(b, c[0], c[1])
			rng := mrand.New(mrand.NewPCG(5, 6))
			nonces := make([]*SecNonce, b.N)
			sessions := make([]SessionCtx, b.N)
			for i := range nonces {
				k1, k2 := randScalar(b, rng), randScalar(b, rng)
				nonces[i] = newSecNonce(&k1, &k2)
				sessions[i] = *bs.sess
				sessions[i].Msg = []byte(fmt.Sprintf("message %d", i))
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := Sign(nonces[i], &bs.k.shares[0], 0, &sessions[i]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPartialSigVerify is the coordinator's check of one partial
// signature.
func BenchmarkPartialSigVerify(b *testing.B) {
	for _, c := range benchConfigs {
		b.Run(fmt.Sprintf("%dof%d", c[0], c[1]), func(b *testing.B) {
			bs := newBenchSession(b, c[0], c[1])
			for b.Loop() {
				if err := PartialSigVerify(bs.psigs[0], bs.pubnonces, &bs.sess.Signers, nil, bs.sess.Msg, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPartialSigAgg(b *testing.B) {
	for _, c := range benchConfigs {
		b.Run(fmt.Sprintf("%dof%d", c[0], c[1]), func(b *testing.B) {
			bs := newBenchSession(b, c[0], c[1])
			for b.Loop() {
				if _, err := PartialSigAgg(bs.psigs, bs.sess); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyAllAndAgg is one party's verification of every partial
// signature followed by aggregation, as the ceremony does it.
func BenchmarkVerifyAllAndAgg(b *testing.B) {
	for _, c := range benchConfigs {
		b.Run(fmt.Sprintf("%dof%d", c[0], c[1]), func(b *testing.B) {
			bs := newBenchSession(b, c[0], c[1])
			for b.Loop() {
				for i := range bs.ids {
					if err := PartialSigVerifyInternal(bs.psigs[i], bs.ids[i], bs.pubnonces[i], bs.sess.Signers.PubShares[i], bs.sess); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := PartialSigAgg(bs.psigs, bs.sess); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSignerRound is one signer's whole part of a session once every
// nonce is in, as a ceremony signer runs it, in a new session each time:
// aggregate the nonces, sign (with the self-check), verify every other
// signer's partial signature and aggregate. "spec" runs the spec
// functions on a SessionCtx, "session" runs Session.
func BenchmarkSignerRound(b *testing.B) {
	for _, c := range benchConfigs {
		for _, mode := range []string{"spec", "session"} {
			b.Run(fmt.Sprintf("%dof%d/%s", c[0], c[1], mode), func(b *testing.B) {
				bs := newBenchSession(b, c[0], c[1])
				sc := &bs.sess.Signers
				rng := mrand.New(mrand.NewPCG(7, 8))
				type round struct {
					msg   []byte
					mine  *SecNonce
					pns   []PubNonce
					psigs []PartialSig
				}
				rounds := make([]round, b.N)
				for r := range rounds {
					rd := &rounds[r]
					rd.msg = []byte(fmt.Sprintf("message %d", r))
					sns := make([]*SecNonce, len(bs.ids))
					for i := range sns {
						k1, k2 := randScalar(b, rng), randScalar(b, rng)
						sns[i] = newSecNonce(&k1, &k2)
						rd.pns = append(rd.pns, sns[i].pub)
					}
					k1, k2 := sns[0].k1, sns[0].k2
					rd.mine = newSecNonce(&k1, &k2)
					agg, _ := NonceAgg(rd.pns)
					sess := &SessionCtx{Signers: *sc, AggNonce: agg, Msg: rd.msg}
					rd.psigs = make([]PartialSig, len(bs.ids))
					for i, id := range bs.ids {
						var err error
						if rd.psigs[i], err = Sign(sns[i], &bs.k.shares[id], id, sess); err != nil {
							b.Fatal(err)
						}
					}
				}
				sessionCache = bounded.New[string, *sessionValues](64) // as in a daemon: each session new
				b.ResetTimer()
				cpu0 := processCPU()
				defer func() { b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op") }()
				for r := 0; r < b.N; r++ {
					rd := &rounds[r]
					if mode == "spec" {
						agg, err := NonceAgg(rd.pns)
						if err != nil {
							b.Fatal(err)
						}
						sess := &SessionCtx{Signers: *sc, AggNonce: agg, Msg: rd.msg}
						if _, err := Sign(rd.mine, &bs.k.shares[0], bs.ids[0], sess); err != nil {
							b.Fatal(err)
						}
						for i := 1; i < len(bs.ids); i++ {
							if err := PartialSigVerifyInternal(rd.psigs[i], bs.ids[i], rd.pns[i], sc.PubShares[i], sess); err != nil {
								b.Fatal(err)
							}
						}
						if _, err := PartialSigAgg(rd.psigs, sess); err != nil {
							b.Fatal(err)
						}
						continue
					}
					s, err := NewSignerSession(sc, rd.pns, nil, rd.msg, rd.mine)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := s.Sign(rd.mine, &bs.k.shares[0], bs.ids[0]); err != nil {
						b.Fatal(err)
					}
					for i := 1; i < len(bs.ids); i++ {
						if err := s.Verify(rd.psigs[i], i); err != nil {
							b.Fatal(err)
						}
					}
					if _, err := s.Agg(rd.psigs); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkTweakCtxFor is the tweaked key of a BIP32 path of depth 5 plus
// a BIP341 tweak: computed (a new path each time) and remembered (the
// second use in the same signature: the session after the nonce).
func BenchmarkTweakCtxFor(b *testing.B) {
	rng := mrand.New(mrand.NewPCG(9, 10))
	k := dealTestKey(b, rng, 2, 3)
	path := func() []Tweak {
		var tws []Tweak
		for range 5 {
			tws = append(tws, Tweak{Value: randTweak(b, rng)})
		}
		return append(tws, Tweak{Value: randTweak(b, rng), XOnly: true})
	}
	b.Run("computed", func(b *testing.B) {
		paths := make([][]Tweak, b.N)
		for i := range paths {
			paths[i] = path()
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := TweakCtxFor(k.threshPK, paths[i]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("remembered", func(b *testing.B) {
		tws := path()
		for b.Loop() {
			if _, err := TweakCtxFor(k.threshPK, tws); err != nil {
				b.Fatal(err)
			}
		}
	})
}
