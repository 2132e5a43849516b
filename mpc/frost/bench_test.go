package frost

import (
	"fmt"
	mrand "math/rand/v2"
	"testing"
)

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
