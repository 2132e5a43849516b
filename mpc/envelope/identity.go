package envelope

import (
	"crypto/rand"
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/bip340"
	"github.com/quorumd/quorumd/mpc/internal/bounded"
	"github.com/quorumd/quorumd/mpc/internal/libsecp"
	"github.com/quorumd/quorumd/mpc/secp"
)

// Identity is a party's long-lived identity key pair for one key slot. The
// public half is the party's keygen_id.
type Identity struct {
	priv *btcec.ModNScalar // own, or storage given to NewIdentityAt
	own  btcec.ModNScalar
	pub  Party
}

// NewIdentity derives the identity for a 32-byte private key; constant time
// in the key (secp.ScalarBaseMult). The identity keeps its own copy; the
// caller keeps ownership of priv.
func NewIdentity(priv *btcec.ModNScalar) (*Identity, error) {
	id := &Identity{}
	id.own = *priv
	id.priv = &id.own
	if err := id.derive(); err != nil {
		id.own.Zero()
		return nil, err
	}
	return id, nil
}

// NewIdentityAt derives the identity for the private key held in storage
// and keeps using storage in place, without a copy, so a key kept in locked
// memory (package daemon/secmem) stays there; Zero wipes storage. storage
// must outlive the Identity. Constant time in the key.
func NewIdentityAt(storage *btcec.ModNScalar) (*Identity, error) {
	id := &Identity{priv: storage}
	if err := id.derive(); err != nil {
		return nil, err
	}
	return id, nil
}

// NewIdentityAtWithPublic is NewIdentityAt for a caller that stored the
// public key (keygen_id) beside the sealed private key: it skips the
// constant-time k·G. A pub that does not belong to the key cannot produce a
// valid envelope: signing fails its self-check, and peers' ECDH with pub
// yields another channel key, so their decryption fails.
func NewIdentityAtWithPublic(storage *btcec.ModNScalar, pub Party) (*Identity, error) {
	if storage.IsZero() {
		return nil, fmt.Errorf("envelope: zero identity key")
	}
	if _, err := ParseParty(pub[:]); err != nil {
		return nil, err
	}
	return &Identity{priv: storage, pub: pub}, nil
}

func (id *Identity) derive() error {
	if id.priv.IsZero() {
		return fmt.Errorf("envelope: zero identity key")
	}
	var p btcec.JacobianPoint
	secp.ScalarBaseMult(id.priv, &p)
	id.pub = compress(&p)
	return nil
}

// GenerateIdentity makes a fresh identity key from crypto/rand.
func GenerateIdentity() (*Identity, error) {
	id := &Identity{}
	id.priv = &id.own
	if err := randomScalar(id.priv); err != nil {
		return nil, err
	}
	if err := id.derive(); err != nil {
		return nil, err
	}
	return id, nil
}

// GenerateIdentityAt makes a fresh identity key from crypto/rand directly
// in storage and keeps using it in place, as NewIdentityAt does.
func GenerateIdentityAt(storage *btcec.ModNScalar) (*Identity, error) {
	if err := randomScalar(storage); err != nil {
		return nil, err
	}
	return NewIdentityAt(storage)
}

// randomScalar sets k to a uniform non-zero scalar by rejection sampling;
// the candidate bytes are cleared. The overflow and zero checks are
// constant time; the number of draws (almost always one) is not secret.
func randomScalar(k *btcec.ModNScalar) error {
	var b [32]byte
	defer clear(b[:])
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("envelope: reading randomness: %w", err)
		}
		if overflow := k.SetBytes(&b); overflow == 0 && !k.IsZero() {
			return nil
		}
	}
}

// Sign returns the BIP340 signature of msg under the identity key, reusing
// the public key derived at construction. Constant time in the key.
func (id *Identity) Sign(msg []byte, auxRand [32]byte) ([64]byte, error) {
	pub := [33]byte(id.pub)
	return bip340.SignWithPublicKey(id.priv, &pub, msg, auxRand)
}

// Public returns the identity's public key (keygen_id).
func (id *Identity) Public() Party { return id.pub }

// PrivateBytes returns the 32-byte private key, for sealing under the HSM.
// The caller must zero it after use.
func (id *Identity) PrivateBytes() [32]byte { return id.priv.Bytes() }

// PutPrivateBytes writes the 32-byte private key into dst[:32] (e.g. locked
// memory), so no copy lands on the stack; constant time. It panics if dst
// is shorter than 32 bytes. The caller must zero it after use.
func (id *Identity) PutPrivateBytes(dst []byte) { id.priv.PutBytesUnchecked(dst[:32]) }

// Zero wipes the private key: the identity's own copy, or the storage given
// to NewIdentityAt / GenerateIdentityAt.
func (id *Identity) Zero() { id.priv.Zero() }

func compress(p *btcec.JacobianPoint) Party {
	var out Party
	out[0] = 0x02 | byte(p.Y.IsOddBit())
	p.X.PutBytesUnchecked(out[1:])
	return out
}

// partyPoints holds decoded party keys (x ‖ y), public data only; failures
// are never remembered.
var partyPoints = bounded.New[Party, [64]byte](4096)

// ParseParty checks that b is a valid compressed secp256k1 point.
func ParseParty(b []byte) (Party, error) {
	var p Party
	if len(b) != PartySize {
		return p, fmt.Errorf("envelope: party key must be %d bytes, got %d", PartySize, len(b))
	}
	if _, err := partyPoint(b); err != nil {
		return p, err
	}
	copy(p[:], b)
	return p, nil
}

// partyPoint decodes a compressed party key. Public data: libsecp256k1
// decompresses it at about half the cost of btcec.ParsePubKey, and the
// same few keys (this daemon's identities, their peers) come back every
// ceremony, so decoded keys are remembered.
func partyPoint(b []byte) (*btcec.PublicKey, error) {
	if len(b) != PartySize {
		return nil, fmt.Errorf("envelope: party key is not a compressed curve point")
	}
	xy, ok := partyPoints.Get(Party(b))
	if !ok {
		if !libsecp.ParseCompressed(b, &xy) {
			return nil, fmt.Errorf("envelope: party key is not a compressed curve point")
		}
		partyPoints.Put(Party(b), xy)
	}
	var x, y btcec.FieldVal
	x.SetBytes((*[32]byte)(xy[:32]))
	y.SetBytes((*[32]byte)(xy[32:]))
	return btcec.NewPublicKey(&x, &y), nil
}

// PrivateScalar returns a copy of the private key for a signature the
// caller makes itself; the caller must Zero it.
func (id *Identity) PrivateScalar() btcec.ModNScalar { return *id.priv }

// Bytes returns the 33-byte encoding.
func (p Party) Bytes() []byte { return p[:] }
