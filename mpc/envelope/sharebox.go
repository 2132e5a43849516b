package envelope

import (
	"crypto/rand"
	"errors"
	"fmt"
)

// boxTag separates sealed boxes (secrets inside a broadcast, e.g. the shares
// of a deal) from point-to-point envelope payloads in the key derivation.
const boxTag = "quorumd/box/v2"

// BoxOverhead is the size a box adds to its plaintext: nonce and GCM tag.
const BoxOverhead = nonceSz + 16

// ErrBox: a box does not open (wrong key, wrong context, or tampered).
var ErrBox = errors.New("envelope: box does not open")

// SealBox encrypts plaintext from id to the party to, bound to session and
// ad: ECDH between the identity keys (from ch, which may be nil) → HKDF
// salted with the session → AES-256-GCM. Unlike an encrypted envelope, a box
// may sit inside a broadcast and be kept for later (recovery data): to opens
// it with OpenBox. to may be id itself (a dealer's own share). Constant time
// in the identity key.
func SealBox(id *Identity, ch *Channels, to Party, session [SessionIDSize]byte, ad, plaintext []byte) ([]byte, error) {
	aead, err := channelAEAD(id, ch, to, boxTag, id.pub, to, session)
	if err != nil {
		return nil, err
	}
	out := make([]byte, nonceSz, nonceSz+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("envelope: nonce: %w", err)
	}
	return aead.Seal(out, out[:nonceSz], plaintext, ad), nil
}

// OpenBox decrypts a box that from sealed to id (see SealBox; ch may be
// nil). The caller owns (and must clear) the plaintext.
func OpenBox(id *Identity, ch *Channels, from Party, session [SessionIDSize]byte, ad, box []byte) ([]byte, error) {
	if len(box) < BoxOverhead {
		return nil, fmt.Errorf("%w: %d bytes", ErrBox, len(box))
	}
	aead, err := channelAEAD(id, ch, from, boxTag, from, id.pub, session)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, box[:nonceSz], box[nonceSz:], ad)
	if err != nil {
		return nil, ErrBox
	}
	return pt, nil
}
