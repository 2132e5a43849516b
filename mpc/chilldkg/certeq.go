package chilldkg

import (
	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/bip340"
)

// CertEq, the equality check: every participant signs the transcript with
// its host key (plain BIP340, the message domain-separated by a 33-byte
// zero-padded prefix as BIP340 recommends), and the n signatures in id order
// form the success certificate. Recovery acknowledgments are the same
// construction over the recovery data.

func prefixedMsg(prefix string, id int, x []byte) []byte {
	b := make([]byte, 33, 33+4+len(x))
	copy(b, bipTag+prefix)
	b = append(b, be32(id)...)
	return append(b, x...)
}

// signPrefixed signs prefix ‖ id ‖ x with the host key; constant time in the
// key (mpc/bip340).
func signPrefixed(hostkey *btcec.ModNScalar, hostpubkey []byte, prefix string, id int, x []byte, auxRand []byte) ([]byte, error) {
	sig, err := bip340.SignWithPublicKey(hostkey, (*[33]byte)(hostpubkey), prefixedMsg(prefix, id, x), [32]byte(auxRand))
	if err != nil {
		return nil, err
	}
	return sig[:], nil
}

// verifyCert checks the certificate over x and returns the id of the first
// invalid signature, or -1. The caller has checked its length.
func verifyCert(hostpubkeys [][]byte, x, cert []byte) int {
	for i, pk := range hostpubkeys {
		// Dropping the parity byte is fine: x commits to every full host key.
		if bip340.Verify(pk[1:], prefixedMsg("certeq message", i, x), cert[64*i:64*(i+1)]) != nil {
			return i
		}
	}
	return -1
}
