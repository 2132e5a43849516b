package envelope

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// Reasons an Inbox refuses an envelope; match them with errors.Is.
var (
	ErrWrongSession = errors.New("envelope from another session or room")
	ErrNonMember    = errors.New("envelope from a non-member")
	ErrBadSignature = errors.New("envelope signature invalid (forged or tampered in transit)")
	ErrReplay       = errors.New("envelope replayed")
	ErrReordered    = errors.New("envelope out of order")
	ErrMisrouted    = errors.New("envelope addressed to another party")
	ErrDecrypt      = errors.New("envelope payload failed to decrypt (tampered in transit)")
	ErrWrongKind    = errors.New("envelope of another ceremony kind")
)

// RejectError says why an envelope was refused and which party it claimed to
// come from. Claimed is only proven to be the sender when the signature
// verified (Signed).
type RejectError struct {
	Claimed Party
	Signed  bool
	Err     error
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("%v (claimed sender %s)", e.Err, Short(e.Claimed))
}

func (e *RejectError) Unwrap() error { return e.Err }

// Short is a printable prefix of a party key, for logs and error messages.
func Short(p Party) string { return hex.EncodeToString(p[:8]) }

type channel struct{ from, to Party }

// Inbox checks envelopes arriving for one party in one session: format,
// session, membership, signature, addressing, per-channel sequence (no
// replay, no reordering, no gaps) and decryption.
type Inbox struct {
	id      *Identity
	kind    uint8
	session [SessionIDSize]byte
	members map[Party]bool
	next    map[channel]uint32
	ch      *Channels
}

// NewInbox returns an Inbox for id among members (which include id).
func NewInbox(id *Identity, kind uint8, session [SessionIDSize]byte, members []Party) *Inbox {
	m := make(map[Party]bool, len(members))
	for _, p := range members {
		m[p] = true
	}
	return &Inbox{id: id, kind: kind, session: session, members: m, next: map[channel]uint32{}}
}

// WithChannels makes in take its ECDH secrets from ch (id's, shared with the
// ceremony's Sender) instead of deriving one per envelope; it returns in.
func (in *Inbox) WithChannels(ch *Channels) *Inbox {
	in.ch = ch
	return in
}

// Accept decodes and checks raw, returning the envelope with a plaintext
// payload. Any failure is a *RejectError (or ErrMalformed).
func (in *Inbox) Accept(raw []byte) (*Envelope, error) {
	e, err := Unmarshal(raw)
	if err != nil {
		return nil, err
	}
	reject := func(signed bool, err error) (*Envelope, error) {
		return nil, &RejectError{Claimed: e.From, Signed: signed, Err: err}
	}
	sigErr := verifySig(e)
	if !in.members[e.From] {
		return reject(sigErr == nil, ErrNonMember)
	}
	if sigErr != nil {
		return reject(false, ErrBadSignature)
	}
	if e.Session != in.session {
		return reject(true, ErrWrongSession)
	}
	if e.Kind != in.kind {
		return reject(true, ErrWrongKind)
	}
	if e.From == in.id.pub || !(e.To.IsBroadcast() || e.To == in.id.pub) {
		return reject(true, ErrMisrouted)
	}
	ch := channel{e.From, e.To}
	want := in.next[ch] + 1
	switch {
	case e.Seq < want:
		return reject(true, fmt.Errorf("%w: sequence %d, expected %d", ErrReplay, e.Seq, want))
	case e.Seq > want:
		return reject(true, fmt.Errorf("%w: sequence %d, expected %d", ErrReordered, e.Seq, want))
	}
	if e.Flags&FlagEncrypted != 0 {
		if e.To.IsBroadcast() {
			return reject(true, fmt.Errorf("%w: encrypted broadcast", ErrMalformed))
		}
		pt, err := open(in.id, in.ch, e)
		if err != nil {
			return reject(true, ErrDecrypt)
		}
		e.Payload = pt
	}
	in.next[ch] = want
	return e, nil
}

// Kind returns the ceremony kind the Inbox accepts.
func (in *Inbox) Kind() uint8 { return in.kind }

// Session returns the session the Inbox accepts.
func (in *Inbox) Session() [SessionIDSize]byte { return in.session }
