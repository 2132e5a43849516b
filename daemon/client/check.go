package client

import (
	"encoding/hex"
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/internal/uuid"
)

// Checks of public answer fields; none of it is secret, so plain
// (variable-time) parsing is fine here.

// checkKeygenID checks a 33-byte compressed secp256k1 point in hex.
func checkKeygenID(s string) error {
	b, err := DecodeHex(s, 32+1)
	if err != nil {
		return err
	}
	if _, err := btcec.ParsePubKey(b); err != nil || (b[0] != 2 && b[0] != 3) {
		return fmt.Errorf("not a compressed secp256k1 point")
	}
	return nil
}

// DecodeHex decodes public hex data of exactly n bytes.
func DecodeHex(s string, n int) ([]byte, error) {
	if len(s) != 2*n {
		return nil, fmt.Errorf("want %d hex characters, got %d", 2*n, len(s))
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not hex")
	}
	return b, nil
}

// checkID refuses an id that is not a lowercase UUID before it becomes a
// path segment.
func checkID(what, id string) error {
	if !uuid.Valid(id) {
		return usagef("%s %q is not a lowercase UUID", what, printable([]byte(id), 64))
	}
	return nil
}

// appendHexCT appends the lowercase hex encoding of src to dst without
// table lookups or branches on the data (for secrets).
func appendHexCT(dst, src []byte) []byte {
	for _, b := range src {
		dst = append(dst, ctHexDigit(b>>4), ctHexDigit(b&0x0f))
	}
	return dst
}

// ctHexDigit maps a nibble to '0'-'9' / 'a'-'f', branch-free.
func ctHexDigit(n byte) byte {
	v := int32(n)
	// isLetter = 1 when v > 9: (9 - v) is negative then.
	isLetter := ((9 - v) >> 31) & 1
	return byte(v + '0' + isLetter*('a'-'0'-10))
}
