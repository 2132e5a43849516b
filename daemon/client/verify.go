package client

import (
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"

	"github.com/quorumd/quorumd/mpc/bip340"
)

// VerifySignature checks a BIP340 signature with libsecp256k1
// (bip340.Verify), the project's pure-Go verifier and, for 32-byte
// messages (the only ones btcec accepts), btcec/v2/schnorr: three
// implementations that share no code. All inputs are public.
func VerifySignature(pub, msg, sig []byte) error {
	if err := bip340.Verify(pub, msg, sig); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidSignature, err)
	}
	if err := bip340.VerifyReference(pub, msg, sig); err != nil {
		return fmt.Errorf("%w: the pure-Go verifier rejects a signature libsecp256k1 accepted: %v", ErrInvalidSignature, err)
	}
	if len(msg) != 32 {
		return nil
	}
	pk, err := schnorr.ParsePubKey(pub)
	if err != nil {
		return fmt.Errorf("%w: btcec: %v", ErrInvalidSignature, err)
	}
	s, err := schnorr.ParseSignature(sig)
	if err != nil {
		return fmt.Errorf("%w: btcec: %v", ErrInvalidSignature, err)
	}
	if !s.Verify(msg, pk) {
		return fmt.Errorf("%w: btcec/schnorr rejects a signature bip340.Verify accepted", ErrInvalidSignature)
	}
	return nil
}

// XOnlyPubkey returns the BIP340 x-only public key of a 32-byte private
// key, or ErrUsage if it is not 0 < x < n. Constant time in the key: the
// range check is ModNScalar's and bip340.PublicKey multiplies through the
// constant-time mpc/secp; only the final valid/invalid outcome branches.
func XOnlyPubkey(privateKey []byte) ([32]byte, error) {
	if len(privateKey) != 32 {
		return [32]byte{}, usagef("the private key must be 32 bytes")
	}
	var kb [32]byte
	copy(kb[:], privateKey)
	defer clear(kb[:])
	var s btcec.ModNScalar
	defer s.Zero()
	if s.SetBytes(&kb)|s.IsZeroBit() != 0 {
		return [32]byte{}, usagef("the private key must encode 0 < x < n")
	}
	return bip340.PublicKey(&s)
}
