package chilldkg

import (
	"bytes"
	"crypto/sha256"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/secp"
)

// EncPedPop's encryption of VSS shares: a multi-recipient hashed-ElGamal KEM.
// Participant i derives the pad for recipient j ≠ i from the ECDH of its
// secret nonce and j's host key, and the pad to itself from its host secret
// key used as a symmetric key. Shares are scalars; encryption adds the pad,
// so the coordinator can sum ciphertexts. Constant time in the secret nonce,
// the host secret key, the pads and the shares.

// encContext is t ‖ enckeys, the context every pad is bound to.
func encContext(t int, enckeys [][]byte) []byte {
	return append(be32(t), bytes.Join(enckeys, nil)...)
}

// ecdhPad returns H("encpedpop ecdh", sha256(compressed(sec·their)) ‖
// sender's pubnonce ‖ recipient's enckey ‖ context) reduced mod n. their
// must be a valid point; ok is false only for sec ≡ 0.
func ecdhPad(sec *btcec.ModNScalar, their *point, noncePub, enckey, ctx []byte, out *btcec.ModNScalar) bool {
	var r btcec.JacobianPoint
	secp.ScalarMult(sec, &their.j, &r)
	if r.Z.IsZero() {
		return false
	}
	r.X.Normalize()
	r.Y.Normalize()
	var shared [33]byte
	shared[0] = 2 | byte(r.Y.IsOddBit())
	r.X.PutBytesUnchecked(shared[1:])
	r.X.Zero()
	r.Y.Zero()
	dh := sha256.Sum256(shared[:])
	clear(shared[:])
	h := taggedHash("encpedpop ecdh", dh[:], noncePub, enckey, ctx)
	clear(dh[:])
	out.SetBytes(&h)
	clear(h[:])
	return true
}

// selfPad is the pad for a share a participant encrypts to itself:
// H("encaps_multi self_pad", deckey ‖ pubnonce ‖ context) mod n.
func selfPad(deckey *[32]byte, pubnonce, ctx []byte, out *btcec.ModNScalar) {
	h := taggedHash("encaps_multi self_pad", deckey[:], pubnonce, ctx)
	out.SetBytes(&h)
	clear(h[:])
}

// recipientContext is recipient id ‖ t ‖ enckeys.
func recipientContext(id int, ctx []byte) []byte { return append(be32(id), ctx...) }

// encryptShares sets enc[j] = shares[j] + pad_{me,j} for every recipient j.
// enckeys are validated host keys.
func encryptShares(secnonce *btcec.ModNScalar, pubnonce []byte, deckey *[32]byte, enckeys [][]byte, ctx []byte, me int, shares []btcec.ModNScalar) ([]btcec.ModNScalar, error) {
	enc := make([]btcec.ModNScalar, len(enckeys))
	var pad btcec.ModNScalar
	defer pad.Zero()
	for j, ek := range enckeys {
		rctx := recipientContext(j, ctx)
		if j == me {
			selfPad(deckey, pubnonce, rctx, &pad)
		} else {
			their, err := parsePoint(ek)
			if err != nil {
				return nil, &InvalidHostPubkeyError{ParticipantID: j}
			}
			if !ecdhPad(secnonce, &their, pubnonce, ek, rctx, &pad) {
				return nil, errDerivation
			}
		}
		enc[j].Set(&shares[j]).Add(&pad)
	}
	return enc, nil
}

// decryptPads returns pad_{j,me} for every sender j: the pads that, summed,
// decrypt the aggregated share. An invalid public nonce blames its sender.
func decryptPads(deckey *btcec.ModNScalar, deckeyBytes *[32]byte, enckey []byte, pubnonces [][]byte, ctx []byte, me int) ([]btcec.ModNScalar, error) {
	rctx := recipientContext(me, ctx)
	pads := make([]btcec.ModNScalar, len(pubnonces))
	for j, pn := range pubnonces {
		if j == me {
			selfPad(deckeyBytes, pn, rctx, &pads[j])
			continue
		}
		their, err := parsePoint(pn)
		if err != nil || !ecdhPad(deckey, &their, pn, enckey, rctx, &pads[j]) {
			zeroScalars(pads)
			return nil, &FaultyParticipantOrCoordinatorError{ParticipantID: j, Msg: "invalid public nonce"}
		}
	}
	return pads, nil
}

func zeroScalars(s []btcec.ModNScalar) {
	for i := range s {
		s[i].Zero()
	}
}

// sumScalars returns Σ s.
func sumScalars(s []btcec.ModNScalar) btcec.ModNScalar {
	var acc btcec.ModNScalar
	for i := range s {
		acc.Add(&s[i])
	}
	return acc
}
