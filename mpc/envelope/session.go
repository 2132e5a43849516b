package envelope

import (
	"bytes"
	"encoding/binary"
	"slices"

	"github.com/quorumd/quorumd/mpc/bip340"
)

// Ceremony kinds carried in every envelope header.
const (
	KindImport uint8 = 1
	KindSign   uint8 = 2
	// 3 is keygen's.
	KindRefresh uint8 = 4
	KindReshare uint8 = 5
)

// SessionID binds a ceremony to its protocol label and version, its room,
// the sorted set of parties, t and n, and any ceremony-specific context
// (for signing: the key, message and tweaks). Envelopes carry it, so an
// envelope from another room or ceremony is detected.
func SessionID(label, room string, parties []Party, t, n int, context []byte) [SessionIDSize]byte {
	sorted := slices.Clone(parties)
	SortParties(sorted)
	var b []byte
	b = appendField(b, []byte(label))
	b = appendField(b, []byte(room))
	b = binary.BigEndian.AppendUint32(b, uint32(len(sorted)))
	for _, p := range sorted {
		b = append(b, p[:]...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(t))
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = appendField(b, context)
	return bip340.TaggedHash("quorumd/session/v1", b)
}

func appendField(b, f []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
	return append(b, f...)
}

// SortParties sorts parties bytewise; a party's BIP445 id is its index.
func SortParties(ps []Party) {
	slices.SortFunc(ps, func(a, b Party) int { return bytes.Compare(a[:], b[:]) })
}
