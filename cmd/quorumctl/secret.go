package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/daemon/client"
	"github.com/quorumd/quorumd/mpc/secp"
)

// errBadPrivateKey never carries the offending value.
var errBadPrivateKey = errors.New("private key must be 64 hex characters encoding 0 < x < n")

// privateKey is the importer's secret: 32 big-endian bytes of 0 < x < n.
// Its buffer is zeroed by wipe; a copy that came in as a Go string (a flag
// or environment value) cannot be zeroed, which is why -generate and
// -private-key-file are preferred.
type privateKey struct{ b [32]byte }

func (k *privateKey) wipe() { clear(k.b[:]) }

// generatePrivateKey draws a fresh key from the OS CSPRNG. Constant time:
// the range check is ModNScalar's constant-time SetBytes and IsZeroBit; a
// rejection (probability ~2^-128) only costs another draw.
func generatePrivateKey() (*privateKey, error) {
	k := &privateKey{}
	for {
		if _, err := rand.Read(k.b[:]); err != nil {
			return nil, fmt.Errorf("random private key: %w", err)
		}
		var s btcec.ModNScalar
		bad := s.SetBytes(&k.b) | s.IsZeroBit()
		s.Zero()
		if bad == 0 {
			return k, nil
		}
	}
}

// parsePrivateKeyHex decodes 64 hex digits (surrounding whitespace
// ignored). Constant time in the digits and the value: ctHexDecode is
// branch-free and the range check is ModNScalar's; only the final
// valid/invalid outcome branches. The error never contains the input.
func parsePrivateKeyHex(s string) (*privateKey, error) {
	s = strings.TrimSpace(s)
	if len(s) != 64 {
		return nil, errBadPrivateKey
	}
	k := &privateKey{}
	digits := []byte(s) // a copy we can zero; s itself cannot be
	defer clear(digits)
	bad := secp.DecodeHex(k.b[:], digits)
	var sc btcec.ModNScalar
	bad |= sc.SetBytes(&k.b) | sc.IsZeroBit()
	sc.Zero()
	if bad != 0 {
		k.wipe()
		return nil, errBadPrivateKey
	}
	return k, nil
}

// readPrivateKeyFile reads a hex private key from path and zeroes the file
// buffer after parsing. The file must not be readable by group or others.
func readPrivateKeyFile(path string) (*privateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("private key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("private key file %s: mode %v is readable by others; want 0600", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("private key file: %w", err)
	}
	defer clear(b)
	trimmed := b
	for len(trimmed) > 0 && (trimmed[len(trimmed)-1] == '\n' || trimmed[len(trimmed)-1] == '\r' || trimmed[len(trimmed)-1] == ' ') {
		trimmed = trimmed[:len(trimmed)-1]
	}
	if len(trimmed) != 64 {
		return nil, fmt.Errorf("private key file %s: %w", path, errBadPrivateKey)
	}
	k := &privateKey{}
	bad := secp.DecodeHex(k.b[:], trimmed)
	var sc btcec.ModNScalar
	bad |= sc.SetBytes(&k.b) | sc.IsZeroBit()
	sc.Zero()
	if bad != 0 {
		k.wipe()
		return nil, fmt.Errorf("private key file %s: %w", path, errBadPrivateKey)
	}
	return k, nil
}

// xonlyPubkey returns the BIP340 x-only public key of k (constant time in
// the key, see client.XOnlyPubkey).
func (k *privateKey) xonlyPubkey() ([32]byte, error) { return client.XOnlyPubkey(k.b[:]) }
