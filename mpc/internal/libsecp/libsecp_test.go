package libsecp

import (
	"sync"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"
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
