package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the wire format version this package writes and accepts. 2:
// import v2 (prepare-then-certify, one broadcast deal), typed rounds and
// encrypted partial signatures; a v1 party cannot be mixed with a v2 one.
const Version = 2

// Sizes of the fixed fields.
const (
	SessionIDSize = 32
	PartySize     = 33 // compressed secp256k1 identity key (keygen_id)
	SigSize       = 64
	headerSize    = 4 + 1 + 1 + 1 + 1 + SessionIDSize + PartySize + PartySize + 4 + 4
	// MaxPayload bounds a payload; ceremonies of N ≤ 255 parties stay far below.
	MaxPayload = 256 << 10
)

var magic = [4]byte{'Q', 'R', 'M', 'E'}

// Flags.
const (
	FlagEncrypted = 1 << 0
)

// Party is a participant's identity: its compressed identity public key.
type Party [PartySize]byte

// Broadcast is the zero Party, used as the recipient of broadcast envelopes.
var Broadcast Party

// IsBroadcast reports whether p is the broadcast address.
func (p Party) IsBroadcast() bool { return p == Broadcast }

// Envelope is one message of a ceremony.
type Envelope struct {
	Kind    uint8 // ceremony kind (import, sign)
	Round   uint8
	Flags   uint8
	Session [SessionIDSize]byte
	From    Party
	To      Party // Broadcast for broadcast envelopes
	Seq     uint32
	Payload []byte
	Sig     [SigSize]byte
}

// ErrMalformed is returned for any envelope that does not decode.
var ErrMalformed = errors.New("envelope: malformed")

// header encodes every field but the payload and the signature; it is the
// AEAD associated data and the prefix of the signed message.
func (e *Envelope) header() []byte {
	b := make([]byte, 0, headerSize)
	b = append(b, magic[:]...)
	b = append(b, Version, e.Kind, e.Round, e.Flags)
	b = append(b, e.Session[:]...)
	b = append(b, e.From[:]...)
	b = append(b, e.To[:]...)
	b = binary.BigEndian.AppendUint32(b, e.Seq)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Payload)))
	return b
}

// signedPart is what the sender signs: header and payload.
func (e *Envelope) signedPart() []byte {
	return append(e.header(), e.Payload...)
}

// Marshal encodes the envelope (header, payload, signature).
func (e *Envelope) Marshal() []byte {
	return append(e.signedPart(), e.Sig[:]...)
}

// Unmarshal decodes an envelope strictly: wrong magic or version, bad
// lengths or trailing bytes are ErrMalformed. It does not check the
// signature; Inbox does.
func Unmarshal(b []byte) (*Envelope, error) {
	if len(b) < headerSize+SigSize {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrMalformed, len(b))
	}
	if [4]byte(b[:4]) != magic {
		return nil, fmt.Errorf("%w: bad magic", ErrMalformed)
	}
	if b[4] != Version {
		return nil, fmt.Errorf("%w: unsupported version %d", ErrMalformed, b[4])
	}
	e := &Envelope{Kind: b[5], Round: b[6], Flags: b[7]}
	if e.Flags&^FlagEncrypted != 0 {
		return nil, fmt.Errorf("%w: unknown flags %#x", ErrMalformed, e.Flags)
	}
	off := 8
	copy(e.Session[:], b[off:])
	off += SessionIDSize
	copy(e.From[:], b[off:])
	off += PartySize
	copy(e.To[:], b[off:])
	off += PartySize
	e.Seq = binary.BigEndian.Uint32(b[off:])
	off += 4
	n := binary.BigEndian.Uint32(b[off:])
	off += 4
	if n > MaxPayload || uint64(len(b)) != uint64(headerSize)+uint64(n)+SigSize {
		return nil, fmt.Errorf("%w: payload length %d does not match %d bytes", ErrMalformed, n, len(b))
	}
	e.Payload = append([]byte(nil), b[off:off+int(n)]...)
	copy(e.Sig[:], b[off+int(n):])
	if e.From.IsBroadcast() {
		return nil, fmt.Errorf("%w: empty sender", ErrMalformed)
	}
	if e.Seq == 0 {
		return nil, fmt.Errorf("%w: sequence number 0", ErrMalformed)
	}
	return e, nil
}
