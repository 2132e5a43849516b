package policy

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/quorumd/quorumd/internal/uuid"
)

const (
	lookupIDLen = 16 // hex digits of 8 random bytes
	secretLen   = 43 // base64url (no padding) of 32 random bytes
	apiKeyLen   = lookupIDLen + 1 + secretLen
	secretBytes = 32
	userIDLen   = 36 // UUID text form
)

// newAPIKey returns a fresh API key, its lookup id and the hex SHA-256 of
// its secret part. The random secret bytes are zeroed before returning; the
// returned key string cannot be (Go strings are immutable), so callers hand
// it to the client once and drop it.
func newAPIKey() (key, lookupID, digestHex string, err error) {
	var id [lookupIDLen / 2]byte
	var sec [secretBytes]byte
	defer clear(sec[:])
	if _, err := rand.Read(id[:]); err != nil {
		return "", "", "", fmt.Errorf("policy: random: %w", err)
	}
	if _, err := rand.Read(sec[:]); err != nil {
		return "", "", "", fmt.Errorf("policy: random: %w", err)
	}
	var buf [apiKeyLen]byte
	defer clear(buf[:])
	hex.Encode(buf[:lookupIDLen], id[:])
	buf[lookupIDLen] = '.'
	base64.RawURLEncoding.Encode(buf[lookupIDLen+1:], sec[:])
	d := sha256.Sum256(buf[lookupIDLen+1:])
	return string(buf[:]), string(buf[:lookupIDLen]), hex.EncodeToString(d[:]), nil
}

// parseAPIKey splits "<lookup_id>.<secret>". The lookup id is public and
// checked with ordinary branches; the secret's alphabet check runs in time
// independent of its content (only its fixed length shapes the work).
func parseAPIKey(key string) (lookupID, secret string, ok bool) {
	if len(key) != apiKeyLen || key[lookupIDLen] != '.' {
		return "", "", false
	}
	// The lookup id is cloned: caches keep it, and a substring would keep
	// the whole key (secret included) alive, or, when the daemon passes a
	// view of its request buffer, change under the cache when it is wiped.
	lookupID, secret = strings.Clone(key[:lookupIDLen]), key[lookupIDLen+1:]
	if !validLookupID(lookupID) || !base64URLAlphabet(secret) {
		return "", "", false
	}
	return lookupID, secret, true
}

// base64URLAlphabet reports whether every byte of s is in [A-Za-z0-9_-],
// branch-free over the content (constant time for a given length).
func base64URLAlphabet(s string) bool {
	bad := 0
	for i := 0; i < len(s); i++ {
		c := int(s[i])
		in := inRange(c, 'A', 'Z') | inRange(c, 'a', 'z') | inRange(c, '0', '9') |
			eq(c, '-') | eq(c, '_')
		bad |= in ^ 1
	}
	return bad == 0
}

// inRange returns 1 if lo ≤ c ≤ hi else 0, without branches (c, lo, hi in
// 0..255).
func inRange(c, lo, hi int) int {
	return int(uint(c-lo)>>63^1) & int(uint(hi-c)>>63^1)
}

func eq(c, v int) int { return subtle.ConstantTimeByteEq(uint8(c), uint8(v)) }

// secretDigest is SHA-256 of the secret text. The copy into a stack buffer
// keeps the hot path allocation-free and is zeroed afterwards; SHA-256 runs
// in time independent of the data.
func secretDigest(secret string) [32]byte {
	var buf [secretLen]byte
	copy(buf[:], secret)
	d := sha256.Sum256(buf[:])
	clear(buf[:])
	return d
}

// digestEqual compares two digests in constant time.
func digestEqual(a, b *[32]byte) bool {
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// validLookupID accepts 16 lowercase hex digits.
func validLookupID(s string) bool {
	if len(s) != lookupIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// newUserID returns a random (version 4) UUID in lowercase text form.
func newUserID() (string, error) { return uuid.New(), nil }

// validUserID accepts a lowercase UUID text form, so a user id is always a
// safe single path segment.
func validUserID(s string) bool { return uuid.Valid(s) }

var errHex = errors.New("bad hex")

// decodeHex decodes exactly len(dst) bytes of hex (public data only).
func decodeHex(dst []byte, s string) (int, error) {
	if len(s) != 2*len(dst) {
		return 0, errHex
	}
	return hex.Decode(dst, []byte(s))
}
