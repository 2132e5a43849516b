package envelope

import (
	"crypto/rand"
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/secp"
)

// Identity is a party's long-lived identity key pair for one key slot. The
// public half is the party's keygen_id.
type Identity struct {
	priv btcec.ModNScalar
	pub  Party
}

// NewIdentity derives the identity for a 32-byte private key; constant time
// in the key (secp.ScalarBaseMult). The caller keeps ownership of priv.
func NewIdentity(priv *btcec.ModNScalar) (*Identity, error) {
	if priv.IsZero() {
		return nil, fmt.Errorf("envelope: zero identity key")
	}
	id := &Identity{priv: *priv}
	var p btcec.JacobianPoint
	secp.ScalarBaseMult(&id.priv, &p)
	id.pub = compress(&p)
	return id, nil
}

// GenerateIdentity makes a fresh identity key from crypto/rand.
func GenerateIdentity() (*Identity, error) {
	var b [32]byte
	defer clear(b[:])
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("envelope: reading randomness: %w", err)
		}
		var k btcec.ModNScalar
		if overflow := k.SetBytes(&b); overflow == 0 && !k.IsZero() {
			id, err := NewIdentity(&k)
			k.Zero()
			return id, err
		}
	}
}

// Public returns the identity's public key (keygen_id).
func (id *Identity) Public() Party { return id.pub }

// PrivateBytes returns the 32-byte private key, for sealing under the HSM.
// The caller must zero it after use.
func (id *Identity) PrivateBytes() [32]byte { return id.priv.Bytes() }

// Zero wipes the private key.
func (id *Identity) Zero() { id.priv.Zero() }

func compress(p *btcec.JacobianPoint) Party {
	var out Party
	out[0] = 0x02 | byte(p.Y.IsOddBit())
	p.X.PutBytesUnchecked(out[1:])
	return out
}

// ParseParty checks that b is a valid compressed secp256k1 point.
func ParseParty(b []byte) (Party, error) {
	var p Party
	if len(b) != PartySize {
		return p, fmt.Errorf("envelope: party key must be %d bytes, got %d", PartySize, len(b))
	}
	if _, err := btcec.ParsePubKey(b); err != nil || (b[0] != 2 && b[0] != 3) {
		return p, fmt.Errorf("envelope: party key is not a compressed curve point")
	}
	copy(p[:], b)
	return p, nil
}

// PrivateScalar returns a copy of the private key for a signature the
// caller makes itself; the caller must Zero it.
func (id *Identity) PrivateScalar() btcec.ModNScalar { return id.priv }

// Bytes returns the 33-byte encoding.
func (p Party) Bytes() []byte { return p[:] }
