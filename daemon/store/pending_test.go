package store_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/quorumd/quorumd/daemon/store"
)

func fxPending(keyID string) store.Commitment {
	c := fxCommitment(keyID)
	h := fxHash(keyID, "transcript")
	c.Transcript = h[:]
	c.RecoveryData = fxBlob(keyID, "recovery")
	return c
}

// testPendingLifecycle: the v2 transitions created → pending → ready, the
// refusal noted on a pending record, the discard back to created, recovery (Commit) from pending and from created,
// and every transition refused from the wrong state or transcript; each
// survives a reopen.
func testPendingLifecycle(t *testing.T, b backend) {
	s, reopenStore := b.open(t)
	k := "key-p"
	sl := fxSlot(k)
	owner := sl.Owner
	if err := s.CreateSlot(ctx, sl); err != nil {
		t.Fatal(err)
	}
	c := fxPending(k)
	other := bytes.Repeat([]byte{9}, 32)
	if err := s.MarkReady(ctx, owner, k, c.Transcript, []byte("rd")); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("MarkReady on a created slot: %v", err)
	}
	bad := c
	bad.RecoveryData = nil
	if err := s.Prepare(ctx, owner, k, bad); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Prepare without recovery data: %v", err)
	}
	if err := s.Prepare(ctx, owner, k, c); err != nil {
		t.Fatal(err)
	}
	if err := s.Prepare(ctx, owner, k, c); !errors.Is(err, store.ErrAlreadyCommitted) {
		t.Fatalf("second Prepare: %v", err)
	}
	r, err := s.GetOwned(ctx, owner, k)
	if err != nil || r.State != store.StatePending || !bytes.Equal(r.SealedShare, c.SealedShare) || r.PreparedAt.IsZero() || !r.CommittedAt.IsZero() {
		t.Fatalf("pending record %+v, %v", r, err)
	}
	if err := s.MarkReady(ctx, owner, k, other, []byte("rd")); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("MarkReady for another transcript: %v", err)
	}
	if err := s.Discard(ctx, owner, k, other); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Discard for another transcript: %v", err)
	}
	cc := c
	cc.Transcript = other
	if err := s.Commit(ctx, owner, k, cc); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Commit of another transcript over a pending record: %v", err)
	}
	// A member's refusal after this party signed: still pending, the
	// refuser noted (and kept across a reopen); Discard clears it.
	refuser := bytes.Repeat([]byte{2}, 33)
	if err := s.MarkRefused(ctx, owner, k, other, refuser); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("MarkRefused for another transcript: %v", err)
	}
	if err := s.MarkRefused(ctx, owner, k, c.Transcript, nil); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("MarkRefused naming nobody: %v", err)
	}
	for range 2 {
		if err := s.MarkRefused(ctx, owner, k, c.Transcript, refuser); err != nil {
			t.Fatal(err)
		}
	}
	s = reopenStore(t, s)
	r, err = s.GetOwned(ctx, owner, k)
	if err != nil || r.State != store.StatePending || !bytes.Equal(r.RefusedBy, refuser) || !bytes.Equal(r.SealedShare, c.SealedShare) {
		t.Fatalf("refused pending record %+v, %v", r, err)
	}
	// Discard: back to a clean slot that keeps its identity key.
	if err := s.Discard(ctx, owner, k, c.Transcript); err != nil {
		t.Fatal(err)
	}
	s = reopenStore(t, s)
	r, err = s.GetOwned(ctx, owner, k)
	if err != nil || r.State != store.StateCreated || len(r.SealedShare) != 0 || len(r.RecoveryData) != 0 || len(r.RefusedBy) != 0 || !bytes.Equal(r.SealedIdentityKey, sl.SealedIdentityKey) {
		t.Fatalf("discarded record %+v, %v", r, err)
	}
	// Prepare again, then the lazy ready mark.
	if err := s.Prepare(ctx, owner, k, c); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkRefused(ctx, owner, k, c.Transcript, refuser); err != nil {
		t.Fatal(err)
	}
	certified := []byte("recovery data with certificate")
	if err := s.MarkReady(ctx, owner, k, c.Transcript, certified); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkReady(ctx, owner, k, c.Transcript, certified); err != nil {
		t.Fatalf("MarkReady twice: %v", err)
	}
	s = reopenStore(t, s)
	r, err = s.GetOwned(ctx, owner, k)
	if err != nil || r.State != store.StateReady || !bytes.Equal(r.RecoveryData, certified) || r.CommittedAt.IsZero() || len(r.RefusedBy) != 0 {
		t.Fatalf("ready record %+v, %v", r, err)
	}
	if err := s.Discard(ctx, owner, k, c.Transcript); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Discard of a ready record: %v", err)
	}
	// Recovery from pending (Commit with the same transcript) and
	// from a created slot.
	for i, from := range []string{"pending", "created"} {
		k := []string{"key-q", "key-r"}[i]
		sl := fxSlot(k)
		c := fxPending(k)
		if err := s.CreateSlot(ctx, sl); err != nil {
			t.Fatal(err)
		}
		if from == "pending" {
			if err := s.Prepare(ctx, sl.Owner, k, c); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Commit(ctx, sl.Owner, k, c); err != nil {
			t.Fatalf("recovery from %s: %v", from, err)
		}
		if r, err := s.GetOwned(ctx, sl.Owner, k); err != nil || r.State != store.StateReady || !bytes.Equal(r.Transcript, c.Transcript) {
			t.Fatalf("recovered from %s: %+v, %v", from, r, err)
		}
	}
	// Delete drops the recovery data with the share.
	if err := s.Delete(ctx, owner, k); err != nil {
		t.Fatal(err)
	}
	raw, err := store.RawValue(s, k)
	if err != nil || bytes.Contains(raw, []byte(`"recovery_data"`)) || bytes.Contains(raw, []byte(`"sealed_`)) {
		t.Fatalf("tombstone keeps recovery data or sealed material (%v): %s", err, raw)
	}
}
