package store_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/quorumd/quorumd/daemon/store"
)

// Deterministic fixtures: every field of a record is derived from its
// key_id, so a reader can check a record is exactly what was written, field
// by field, without any side channel from the writer (the crash test relies
// on this).

func fxHash(keyID string, parts ...any) [32]byte {
	return sha256.Sum256([]byte(fmt.Sprint(append([]any{keyID}, parts...)...)))
}

// fxPoint derives a 33-byte compressed-point-shaped value.
func fxPoint(keyID string, parts ...any) []byte {
	h := fxHash(keyID, parts...)
	return append([]byte{0x02 | h[0]&1}, h[:]...)
}

// fxBlob derives a sealed-blob-shaped value of a key-dependent length, so
// records span different page layouts.
func fxBlob(keyID, what string) []byte {
	h := fxHash(keyID, what)
	n := 48 + int(h[0])%200
	out := make([]byte, 0, n+32)
	for i := 0; len(out) < n; i++ {
		b := fxHash(keyID, what, i)
		out = append(out, b[:]...)
	}
	return out[:n]
}

func fxOwner(keyID string) string {
	return fmt.Sprintf("user-%d", fxHash(keyID, "owner")[0]%4)
}

func fxSlot(keyID string) store.Slot {
	return store.Slot{
		KeyID: keyID, Owner: fxOwner(keyID), Scheme: "bip340",
		KeygenID:          fxPoint(keyID, "own-keygen-id"),
		SealedIdentityKey: fxBlob(keyID, "identity"),
	}
}

func fxCommitment(keyID string) store.Commitment {
	h := fxHash(keyID, "shape")
	n := 2 + int(h[0])%4
	t := 1 + int(h[1])%n
	own := int(h[2]) % n
	c := store.Commitment{
		Source: store.SourceImport, T: t, N: n, OwnID: own,
		PublicKey:   fxPoint(keyID, "Q"),
		SealedShare: fxBlob(keyID, "share"),
	}
	for i := range n {
		if i == own {
			c.KeygenIDs = append(c.KeygenIDs, fxPoint(keyID, "own-keygen-id"))
		} else {
			c.KeygenIDs = append(c.KeygenIDs, fxPoint(keyID, "keygen-id", i))
		}
		c.PublicShares = append(c.PublicShares, fxPoint(keyID, "pubshare", i))
	}
	return c
}

// fxReady is the full ready record for keyID (timestamps given).
func fxReady(keyID string, at time.Time) store.Record {
	s, c := fxSlot(keyID), fxCommitment(keyID)
	return store.Record{
		KeyID: keyID, Owner: s.Owner, Scheme: s.Scheme, State: store.StateReady,
		KeygenID: s.KeygenID, SealedIdentityKey: s.SealedIdentityKey,
		Source: c.Source, T: c.T, N: c.N, OwnID: c.OwnID, KeygenIDs: c.KeygenIDs,
		PublicShares: c.PublicShares, PublicKey: c.PublicKey, SealedShare: c.SealedShare,
		CreatedAt: at, CommittedAt: at,
	}
}

// fxCheck reports how r differs from the fixture for its state.
func fxCheck(r store.Record) error {
	s := fxSlot(r.KeyID)
	if r.Owner != s.Owner || r.Scheme != s.Scheme || !bytes.Equal(r.KeygenID, s.KeygenID) || r.CreatedAt.IsZero() {
		return fmt.Errorf("%s: slot fields differ", r.KeyID)
	}
	switch r.State {
	case store.StateCreated:
		if !bytes.Equal(r.SealedIdentityKey, s.SealedIdentityKey) {
			return fmt.Errorf("%s: sealed identity key differs", r.KeyID)
		}
		if r.N != 0 || r.SealedShare != nil || r.PublicKey != nil || !r.CommittedAt.IsZero() {
			return fmt.Errorf("%s: created record carries commit fields", r.KeyID)
		}
	case store.StatePending:
		c := fxPending(r.KeyID)
		if !bytes.Equal(r.SealedShare, c.SealedShare) || !bytes.Equal(r.Transcript, c.Transcript) ||
			!bytes.Equal(r.RecoveryData, c.RecoveryData) || r.PreparedAt.IsZero() || !r.CommittedAt.IsZero() {
			return fmt.Errorf("%s: pending record differs from what was prepared", r.KeyID)
		}
	case store.StateReady:
		c := fxCommitment(r.KeyID)
		if !bytes.Equal(r.SealedIdentityKey, s.SealedIdentityKey) || r.Source != c.Source ||
			r.T != c.T || r.N != c.N || r.OwnID != c.OwnID || !bytes.Equal(r.PublicKey, c.PublicKey) ||
			!bytes.Equal(r.SealedShare, c.SealedShare) || len(r.KeygenIDs) != c.N ||
			len(r.PublicShares) != c.N || r.CommittedAt.IsZero() {
			return fmt.Errorf("%s: ready record differs from what was committed", r.KeyID)
		}
		for i := range c.N {
			if !bytes.Equal(r.KeygenIDs[i], c.KeygenIDs[i]) || !bytes.Equal(r.PublicShares[i], c.PublicShares[i]) {
				return fmt.Errorf("%s: participant %d differs", r.KeyID, i)
			}
		}
	default:
		return fmt.Errorf("%s: unexpected state %q", r.KeyID, r.State)
	}
	return nil
}
