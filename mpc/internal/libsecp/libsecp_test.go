package libsecp

import (
	"bytes"
	"crypto/rand"
	"sync"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"

	"github.com/quorumd/quorumd/mpc/internal/dudect"
)

// TestConcurrent: the shared context is used from many goroutines at once
// (run under -race in make test); every goroutine's valid signature verifies
// and its tampered one does not.
func TestConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := btcec.NewPrivateKey()
			if err != nil {
				t.Error(err)
				return
			}
			msg := []byte{byte(g), 1, 2, 3}
			msg32 := [32]byte{byte(g)}
			sig, err := schnorr.Sign(k, msg32[:])
			if err != nil {
				t.Error(err)
				return
			}
			pub := [32]byte(schnorr.SerializePubKey(k.PubKey()))
			s := [64]byte(sig.Serialize())
			for range 50 {
				if got := VerifySchnorr(&pub, msg32[:], &s); got != Valid {
					t.Errorf("valid signature: %v", got)
					return
				}
				if got := VerifySchnorr(&pub, msg, &s); got != Invalid {
					t.Errorf("other message: %v", got)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestBadPublicKey(t *testing.T) {
	var pub [32]byte
	pub[31] = 5 // x = 5: x³ + 7 is not a square mod p
	var sig [64]byte
	if got := VerifySchnorr(&pub, nil, &sig); got != BadPublicKey {
		t.Fatalf("got %v, want BadPublicKey", got)
	}
}

func uncompressed(p *btcec.JacobianPoint) [65]byte {
	a := *p
	a.ToAffine()
	var out [65]byte
	out[0] = 4
	a.X.PutBytesUnchecked(out[1:33])
	a.Y.PutBytesUnchecked(out[33:])
	return out
}

// TestMulPointMatchesBtcec: k·P equals btcec's ScalarMultNonConst on random
// and edge scalars; a zero or out-of-range k and an off-curve P are refused.
func TestMulPointMatchesBtcec(t *testing.T) {
	// 10,000 in make test's timing run (no -race); the race detector slows
	// btcec's side ~10×.
	iterations := 10_000
	if dudect.RaceEnabled {
		iterations = 600
	}
	var nMinus1, nMinus2, two btcec.ModNScalar
	nMinus1.SetInt(1).Negate()
	nMinus2.SetInt(2).Negate()
	two.SetInt(2)
	edges := []btcec.ModNScalar{*new(btcec.ModNScalar).SetInt(1), two, nMinus1, nMinus2, *new(btcec.ModNScalar).SetInt(0xffffffff)}
	for i := range iterations + len(edges) {
		var k, pk btcec.ModNScalar
		if i < len(edges) {
			k = edges[i]
		} else {
			var b [32]byte
			rand.Read(b[:])
			k.SetBytes(&b)
		}
		var b [32]byte
		rand.Read(b[:])
		pk.SetBytes(&b)
		var p, want btcec.JacobianPoint
		btcec.ScalarBaseMultNonConst(&pk, &p)
		btcec.ScalarMultNonConst(&k, &p, &want)
		in := uncompressed(&p)
		kb := k.Bytes()
		got, ok := MulPoint(&in, &kb)
		if !ok || got != uncompressed(&want) {
			t.Fatalf("#%d: k·P differs from btcec (ok=%v)", i, ok)
		}
	}
	var one btcec.ModNScalar
	one.SetInt(1)
	var g btcec.JacobianPoint
	btcec.ScalarBaseMultNonConst(&one, &g)
	in := uncompressed(&g)
	var zero [32]byte
	if _, ok := MulPoint(&in, &zero); ok {
		t.Error("accepted k = 0")
	}
	n := [32]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
		0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41}
	if _, ok := MulPoint(&in, &n); ok {
		t.Error("accepted k = n")
	}
	off := in
	off[64] ^= 1
	k := [32]byte{31: 2}
	if _, ok := MulPoint(&off, &k); ok {
		t.Error("accepted an off-curve point")
	}
}

func BenchmarkMulPoint(b *testing.B) {
	var k btcec.ModNScalar
	var kr [32]byte
	rand.Read(kr[:])
	k.SetBytes(&kr)
	var p btcec.JacobianPoint
	btcec.ScalarBaseMultNonConst(&k, &p)
	in := uncompressed(&p)
	kb := k.Bytes()
	b.Run("libsecp256k1", func(b *testing.B) {
		for b.Loop() {
			MulPoint(&in, &kb)
		}
	})
	b.Run("btcec NonConst", func(b *testing.B) {
		var r btcec.JacobianPoint
		for b.Loop() {
			btcec.ScalarMultNonConst(&k, &p, &r)
		}
	})
}

// TestParseCompressed agrees with btcec on random points, both parities, and
// refuses what btcec refuses: x ≥ p, x off the curve, a wrong tag or length.
func TestParseCompressed(t *testing.T) {
	for i := range 200 {
		k, _ := btcec.NewPrivateKey()
		pub := k.PubKey()
		enc := pub.SerializeCompressed()
		var out [64]byte
		if !ParseCompressed(enc, &out) {
			t.Fatalf("case %d: valid point refused", i)
		}
		if !bytes.Equal(out[:], pub.SerializeUncompressed()[1:]) {
			t.Fatalf("case %d: coordinates differ from btcec", i)
		}
	}
	k, _ := btcec.NewPrivateKey()
	good := k.PubKey().SerializeCompressed()
	bad := [][]byte{
		nil, good[:32], append(append([]byte(nil), good...), 0),
		append([]byte{4}, good[1:]...), append([]byte{0}, good[1:]...),
		append([]byte{2}, bytes.Repeat([]byte{0xff}, 32)...), // x ≥ p
	}
	for x := byte(0); len(bad) < 8; x++ { // an x off the curve
		b := append([]byte{2}, bytes.Repeat([]byte{x}, 32)...)
		if _, err := btcec.ParsePubKey(b); err != nil {
			bad = append(bad, b)
		}
	}
	for i, b := range bad {
		var out [64]byte
		if ParseCompressed(b, &out) {
			t.Fatalf("bad encoding %d (%x) accepted", i, b)
		}
	}
}

func BenchmarkParseCompressed(b *testing.B) {
	k, _ := btcec.NewPrivateKey()
	enc := k.PubKey().SerializeCompressed()
	b.Run("libsecp", func(b *testing.B) {
		var out [64]byte
		for b.Loop() {
			if !ParseCompressed(enc, &out) {
				b.Fatal("rejected")
			}
		}
	})
	b.Run("btcec", func(b *testing.B) {
		for b.Loop() {
			if _, err := btcec.ParsePubKey(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestVerifySchnorrKeyCache: VerifySchnorrKnownKey, under remembered keys,
// gives the answers of a fresh parse: a signature verifies under its own key only,
// whichever key was parsed first, also once they were evicted;
// an x that is not on the curve is refused every time.
func TestVerifySchnorrKeyCache(t *testing.T) {
	type signed struct {
		pub [32]byte
		sig [64]byte
	}
	msg := make([]byte, 32) // btcec/schnorr signs 32-byte messages
	copy(msg, "cached keys")
	var keys []signed
	for range 3 {
		k, err := btcec.NewPrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		sig, err := schnorr.Sign(k, msg)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, signed{[32]byte(schnorr.SerializePubKey(k.PubKey())), [64]byte(sig.Serialize())})
	}
	check := func(round int) {
		for i := range keys {
			for j := range keys {
				want := Invalid
				if i == j {
					want = Valid
				}
				got := VerifySchnorrKnownKey(&keys[j].pub, msg, &keys[i].sig)
				if fresh := VerifySchnorr(&keys[j].pub, msg, &keys[i].sig); got != want || fresh != want {
					t.Fatalf("round %d: signature %d under key %d: %v (fresh parse %v), want %v", round, i, j, got, fresh, want)
				}
			}
		}
		var bad [32]byte
		bad[31] = 5
		if got := VerifySchnorrKnownKey(&bad, msg, &keys[0].sig); got != BadPublicKey {
			t.Fatalf("round %d: x off the curve: %v", round, got)
		}
	}
	check(0) // parsed
	check(1) // remembered
	var filler [32]byte
	for i := range 3 * maxXOnlyKeys { // about half are curve points: the first keys are evicted
		filler[0], filler[1] = byte(i), byte(i>>8)
		parseXOnly(&filler)
	}
	check(2)
}
