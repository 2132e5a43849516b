package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"github.com/quorumd/quorumd/mpc/bip340"
)

const (
	sigTag  = "quorumd/envelope/v1"
	hkdfTag = "quorumd/p2p/v1"
	nonceSz = 12
)

// Sender writes the envelopes of one party in one session, numbering each
// channel (broadcast, and each recipient) 1, 2, 3, … Seal may be called from
// several goroutines, for different recipients: the envelopes of one channel
// are numbered in the order their Seal calls began.
type Sender struct {
	id      *Identity
	session [SessionIDSize]byte
	kind    uint8
	ch      *Channels
	mu      sync.Mutex
	seq     map[Party]uint32
}

// NewSender returns a Sender for id in session.
func NewSender(id *Identity, kind uint8, session [SessionIDSize]byte) *Sender {
	return &Sender{id: id, session: session, kind: kind, seq: map[Party]uint32{}}
}

// WithChannels makes s take its ECDH secrets from ch (id's, shared with the
// ceremony's Inbox) instead of deriving one per envelope; it returns s.
func (s *Sender) WithChannels(ch *Channels) *Sender {
	s.ch = ch
	return s
}

// Seal builds and signs an envelope. Payloads to a single recipient are
// encrypted when encrypt is set (broadcasts never are). Signing and the ECDH
// are constant time in the identity key.
func (s *Sender) Seal(round uint8, to Party, payload []byte, encrypt bool) ([]byte, error) {
	s.mu.Lock()
	s.seq[to]++
	seq := s.seq[to]
	s.mu.Unlock()
	e := &Envelope{Kind: s.kind, Round: round, Session: s.session, From: s.id.pub, To: to, Seq: seq}
	if encrypt {
		if to.IsBroadcast() {
			return nil, errors.New("envelope: broadcasts cannot be encrypted")
		}
		e.Flags |= FlagEncrypted
		aead, err := channelAEAD(s.id, s.ch, to, hkdfTag, e.From, e.To, e.Session)
		if err != nil {
			return nil, err
		}
		ct := make([]byte, nonceSz, nonceSz+len(payload)+aead.Overhead())
		if _, err := rand.Read(ct); err != nil {
			return nil, fmt.Errorf("envelope: nonce: %w", err)
		}
		// The header's payload length covers nonce, ciphertext and tag.
		e.Payload = make([]byte, nonceSz+len(payload)+aead.Overhead())
		ad := e.header()
		ct = aead.Seal(ct, ct[:nonceSz], payload, ad)
		e.Payload = ct
	} else {
		e.Payload = append([]byte(nil), payload...)
	}
	var aux [32]byte
	if _, err := rand.Read(aux[:]); err != nil {
		return nil, fmt.Errorf("envelope: aux randomness: %w", err)
	}
	digest := e.Digest()
	sig, err := s.id.Sign(digest[:], aux)
	if err != nil {
		return nil, fmt.Errorf("envelope: signing: %w", err)
	}
	e.Sig = sig
	return e.Marshal(), nil
}

// verifySig checks the sender's BIP340 signature (public data, variable time).
func verifySig(e *Envelope) error {
	d := e.Digest()
	return bip340.Verify(e.From[1:], d[:], e.Sig[:])
}

// Digest is what the sender signed: a tagged hash of header and payload (as
// sent, i.e. the ciphertext of an encrypted payload). Two parties holding
// envelopes with the same digest hold the same message.
func (e *Envelope) Digest() [32]byte { return bip340.TaggedHash(sigTag, e.signedPart()) }

// VerifyDigest reports whether sig is from's envelope signature over digest:
// a party can prove what another party's envelope said without the envelope.
func VerifyDigest(from Party, digest [32]byte, sig [SigSize]byte) bool {
	return bip340.Verify(from[1:], digest[:], sig[:]) == nil
}

// Verify decodes raw and checks only its format and its sender's signature,
// for an envelope kept outside its session (recovery data); the caller
// checks session, kind, round and sender.
func Verify(raw []byte) (*Envelope, error) {
	e, err := Unmarshal(raw)
	if err != nil {
		return nil, err
	}
	if verifySig(e) != nil {
		return nil, &RejectError{Claimed: e.From, Err: ErrBadSignature}
	}
	return e, nil
}

// open decrypts an encrypted payload addressed to id (ch as in channelAEAD).
func open(id *Identity, ch *Channels, e *Envelope) ([]byte, error) {
	if len(e.Payload) < nonceSz {
		return nil, fmt.Errorf("%w: ciphertext too short", ErrMalformed)
	}
	aead, err := channelAEAD(id, ch, e.From, hkdfTag, e.From, e.To, e.Session)
	if err != nil {
		return nil, err
	}
	return aead.Open(nil, e.Payload[:nonceSz], e.Payload[nonceSz:], e.header())
}

// channelAEAD derives the AES-256-GCM key of the (from → to) channel in a
// session: HKDF-SHA256 over the ECDH x coordinate of id and peer (from ch,
// which may be nil), salted with the session id. ECDH is constant time in
// id's key; the secret and the derived key are wiped once the cipher is
// keyed.
func channelAEAD(id *Identity, ch *Channels, peer Party, tag string, from, to Party, session [SessionIDSize]byte) (cipher.AEAD, error) {
	var shared [32]byte
	defer clear(shared[:])
	if err := ch.shared(id, peer, &shared); err != nil {
		return nil, err
	}
	info := make([]byte, 0, len(tag)+2*PartySize)
	info = append(append(append(info, tag...), from[:]...), to[:]...)
	key, err := hkdf.Key(sha256.New, shared[:], session[:], string(info), 32)
	if err != nil {
		return nil, fmt.Errorf("envelope: HKDF: %w", err)
	}
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
