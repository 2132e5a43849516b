package store

import (
	"bytes"
	"fmt"
	"time"
)

// The key record's state machine, shared by every backend. Each function
// checks that r may take the transition and applies it to r in memory; the
// backend reads r and writes it back in one transaction (bbolt's write
// transaction, PostgreSQL's row lock), so a transition is atomic.

// newSlot is the record CreateSlot inserts.
func newSlot(sl Slot, now time.Time) Record {
	created := sl.CreatedAt
	if created.IsZero() {
		created = now
	}
	return Record{
		KeyID: sl.KeyID, Owner: sl.Owner, Scheme: sl.Scheme, State: StateCreated,
		KeygenID: clone(sl.KeygenID), SealedIdentityKey: clone(sl.SealedIdentityKey),
		CreatedAt: created.UTC(),
	}
}

// commitTo: created, or pending for c's transcript → ready.
func commitTo(r *Record, c Commitment, now time.Time) error {
	switch r.State {
	case StateReady:
		return fmt.Errorf("%w: %q", ErrAlreadyCommitted, r.KeyID)
	case StatePending:
		if !bytes.Equal(r.Transcript, c.Transcript) {
			return fmt.Errorf("%w: %q is pending for another transcript", ErrInvalid, r.KeyID)
		}
	}
	if err := c.validate(r.KeygenID); err != nil {
		return err
	}
	committed := c.CommittedAt
	if committed.IsZero() {
		committed = now
	}
	r.setCommitment(c)
	r.State = StateReady
	r.RefusedBy = nil
	r.CommittedAt = committed.UTC()
	return nil
}

// prepareTo: created → pending.
func prepareTo(r *Record, c Commitment, now time.Time) error {
	if r.State != StateCreated {
		return fmt.Errorf("%w: %q is %s", ErrAlreadyCommitted, r.KeyID, r.State)
	}
	if err := c.validatePending(r.KeygenID); err != nil {
		return err
	}
	r.setCommitment(c)
	r.State = StatePending
	r.PreparedAt = now
	return nil
}

// markReady: pending for transcript → ready; already ready for it is a
// no-op (changed false).
func markReady(r *Record, transcript, recoveryData []byte, now time.Time) (changed bool, err error) {
	if err := checkBytes("recovery data", recoveryData, MaxRecoveryLen); err != nil {
		return false, err
	}
	if !bytes.Equal(r.Transcript, transcript) || r.State == StateCreated {
		return false, fmt.Errorf("%w: %q is not prepared for this transcript", ErrInvalid, r.KeyID)
	}
	if r.State == StateReady {
		return false, nil
	}
	r.State = StateReady
	r.RecoveryData = clone(recoveryData)
	r.RefusedBy = nil
	r.CommittedAt = now
	return true, nil
}

// markRefused: pending for transcript → pending, noting who refused; the
// same member again is a no-op (changed false).
func markRefused(r *Record, transcript, by []byte) (changed bool, err error) {
	if err := checkBytes("refused_by", by, MaxPointLen); err != nil {
		return false, err
	}
	if r.State != StatePending || !bytes.Equal(r.Transcript, transcript) {
		return false, fmt.Errorf("%w: %q is not pending for this transcript", ErrInvalid, r.KeyID)
	}
	if bytes.Equal(r.RefusedBy, by) {
		return false, nil
	}
	r.RefusedBy = clone(by)
	return true, nil
}

// discard: pending for transcript → created, keeping the identity key.
func discard(r *Record, transcript []byte) error {
	if r.State != StatePending || !bytes.Equal(r.Transcript, transcript) {
		return fmt.Errorf("%w: %q is not pending for this transcript", ErrInvalid, r.KeyID)
	}
	r.setCommitment(Commitment{})
	r.OwnID = 0
	r.RefusedBy = nil
	r.State = StateCreated
	r.PreparedAt = time.Time{}
	return nil
}

// resealTo replaces r's sealed blobs with a rotation's output.
func resealTo(r *Record, share, ident []byte) error {
	if err := checkBytes("sealed identity key", ident, MaxSealedLen); err != nil {
		return err
	}
	switch r.State {
	case StateReady, StatePending:
		if err := checkBytes("sealed share", share, MaxSealedLen); err != nil {
			return err
		}
	case StateCreated:
		if len(share) != 0 {
			return fmt.Errorf("%w: a created slot has no share to reseal", ErrInvalid)
		}
	}
	r.SealedShare, r.SealedIdentityKey = clone(share), clone(ident)
	return nil
}

func (r *Record) setCommitment(c Commitment) {
	r.Source, r.T, r.N, r.OwnID = c.Source, c.T, c.N, c.OwnID
	r.KeygenIDs, r.PublicShares = cloneAll(c.KeygenIDs), cloneAll(c.PublicShares)
	r.PublicKey, r.SealedShare = clone(c.PublicKey), clone(c.SealedShare)
	r.Transcript, r.RecoveryData = clone(c.Transcript), clone(c.RecoveryData)
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

func cloneAll(bs [][]byte) [][]byte {
	out := make([][]byte, len(bs))
	for i, b := range bs {
		out[i] = clone(b)
	}
	return out
}
