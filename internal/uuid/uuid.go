// Package uuid makes and checks the random identifiers quorumd hands out
// (key_id, user_id, room ids): version-4 UUIDs in canonical lowercase text.
package uuid

import (
	"crypto/rand"
	"encoding/hex"
)

// Size is the length of the text form, 8-4-4-4-12 hex digits.
const Size = 36

// New returns a random version-4 UUID in canonical lowercase text form.
func New() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24: it aborts the program instead
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [Size]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// Valid reports whether s is a UUID in canonical lowercase text form (any
// version), so it is also a safe single path segment.
func Valid(s string) bool {
	if len(s) != Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}
