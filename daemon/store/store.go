// Package store keeps key records: the public data of each key share plus
// the HSM-sealed share and identity key. Writes are atomic and durable before
// they return, so a crash leaves a record either absent or complete.
//
// Store is the interface the daemon uses. Bolt implements it on one bbolt
// file; Postgres on a PostgreSQL database that several replicas of a party
// share (and, as a KeyLocker, serialises a key's ceremonies across them).
// Both hold the same semantics, checked by one contract suite: a unique
// key_id, conditional transitions (created→pending by Prepare,
// pending→ready by MarkReady, created|pending→ready by Commit,
// pending→created by Discard, pending→pending by MarkRefused, any
// live→deleted), each atomic, and
// owner-scoped reads that cannot tell "absent" from "someone else's".
package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors returned by Store implementations; match them with errors.Is.
var (
	// ErrNotFound: no such key for this owner (also for another owner's key
	// and for deleted keys, so callers cannot probe foreign key_ids).
	ErrNotFound = errors.New("store: key not found")
	// ErrDuplicate: CreateSlot with a key_id that exists or existed.
	ErrDuplicate = errors.New("store: key_id already exists")
	// ErrAlreadyCommitted: Commit on a key that already holds a share.
	ErrAlreadyCommitted = errors.New("store: key already committed")
	// ErrNotCommitted: an operation that needs a share on a key that has none.
	ErrNotCommitted = errors.New("store: key not committed")
	// ErrInvalid: the record to write is incomplete or inconsistent.
	ErrInvalid = errors.New("store: invalid record")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrCorrupt: a stored record cannot be decoded.
	ErrCorrupt = errors.New("store: corrupt record")
	// ErrQuotaExceeded: CreateSlot for an owner who already has Slot.Quota
	// live records.
	ErrQuotaExceeded = errors.New("store: key quota exceeded")
)

// State is a key record's life-cycle stage.
type State string

// Key record states: a slot is created by /bip340/create; a ceremony makes
// it pending (share and recovery data stored, durably, before the party
// signs the transcript), then ready once the success certificate is known;
// deleted when the owner deletes it. A pending record goes back to created
// only on proof that no certificate can exist (Discard).
const (
	StateCreated State = "created"
	StatePending State = "pending"
	StateReady   State = "ready"
	StateDeleted State = "deleted"
)

// Source says how a key share was obtained.
type Source string

// Share sources.
const (
	SourceImport Source = "import"
	SourceKeygen Source = "keygen"
	// A new generation of an existing key (DESIGN §4a), under a new key_id.
	SourceRefresh Source = "refresh"
	SourceReshare Source = "reshare"
)

// Limits enforced on records (far above what the API accepts) so that a bug
// upstream cannot write unbounded data.
const (
	MaxIDLen     = 128
	MaxParties   = 1024
	MaxPointLen  = 65
	MaxSealedLen = 4096
	// MaxRecoveryLen bounds recovery data (a deal for 255 parties plus
	// their certificate is about 40 KiB).
	MaxRecoveryLen = 512 << 10
	// MaxTranscriptLen bounds a transcript hash.
	MaxTranscriptLen = 64
)

// Record is a key record. Sealed fields hold hsm blobs, never plaintext.
type Record struct {
	KeyID  string `json:"key_id"`
	Owner  string `json:"owner"`  // user_id of the owner
	Scheme string `json:"scheme"` // e.g. "bip340"
	State  State  `json:"state"`

	// Set by CreateSlot.
	KeygenID          []byte `json:"keygen_id,omitempty"` // this party's identity public key (compressed point)
	SealedIdentityKey []byte `json:"sealed_identity_key,omitempty"`

	// Set by Prepare (pending) or Commit (ready).
	Source       Source   `json:"source,omitempty"`
	T            int      `json:"t,omitempty"`
	N            int      `json:"n,omitempty"`
	OwnID        int      `json:"own_id"`                  // this party's participant id, 0..N-1
	KeygenIDs    [][]byte `json:"keygen_ids,omitempty"`    // all participants' identity keys, indexed by participant id
	PublicShares [][]byte `json:"public_shares,omitempty"` // all participants' public shares, indexed by participant id
	PublicKey    []byte   `json:"public_key,omitempty"`    // the threshold public key (compressed point)
	SealedShare  []byte   `json:"sealed_share,omitempty"`
	// Transcript is the hash the parties certified (or will): it names the
	// key's generation. RecoveryData is the ceremony's public recovery data
	// (DESIGN §3a), with the success certificate once ready. Both are empty
	// in records written before import v2.
	Transcript   []byte `json:"transcript,omitempty"`
	RecoveryData []byte `json:"recovery_data,omitempty"`
	// RefusedBy, on a pending record only, is the keygen_id of a member
	// that refused after this party signed the transcript (MarkRefused):
	// not proof that no certificate exists, so the record stays pending.
	RefusedBy []byte `json:"refused_by,omitempty"`

	CreatedAt   time.Time `json:"created_at"`
	PreparedAt  time.Time `json:"prepared_at,omitzero"`  // zero unless pending or ready through Prepare
	CommittedAt time.Time `json:"committed_at,omitzero"` // zero until ready
	DeletedAt   time.Time `json:"deleted_at,omitzero"`   // zero unless deleted
}

// Slot is what CreateSlot stores.
type Slot struct {
	KeyID, Owner, Scheme string
	KeygenID             []byte
	SealedIdentityKey    []byte
	CreatedAt            time.Time // zero: now
	// Quota, when > 0, is the most live (created, pending or ready)
	// records Owner may have: CreateSlot counts them and inserts in the
	// same transaction (a SQL backend: under a lock on the owner, e.g. an
	// advisory lock or SELECT … FOR UPDATE on an owner row), so concurrent
	// creations cannot overshoot it. 0 means no limit.
	Quota int
}

// Commitment is what Prepare or Commit adds to a slot.
type Commitment struct {
	Source       Source
	T, N, OwnID  int
	KeygenIDs    [][]byte
	PublicShares [][]byte
	PublicKey    []byte
	SealedShare  []byte
	Transcript   []byte    // required by Prepare; Commit from pending must match it
	RecoveryData []byte    // required by Prepare (without certificate)
	CommittedAt  time.Time // zero: now
}

// ResealFunc receives a ready record and returns its share and identity key
// sealed afresh (e.g. under a new wrapping key).
type ResealFunc func(r Record) (sealedShare, sealedIdentityKey []byte, err error)

// Store is the key-record store. Owner-scoped methods answer ErrNotFound for
// another owner's key exactly as for an absent one.
type Store interface {
	// CreateSlot stores a new record in state created; ErrDuplicate if the
	// key_id was ever used, ErrQuotaExceeded if s.Quota > 0 and the owner
	// already has that many live records (counted in the same transaction).
	CreateSlot(ctx context.Context, s Slot) error
	// Commit moves the owner's slot to ready with c, atomically and durably:
	// from created, or from pending when c.Transcript equals the pending
	// record's (recovery of a stuck party; ErrInvalid otherwise).
	// ErrAlreadyCommitted if it is ready already.
	Commit(ctx context.Context, owner, keyID string, c Commitment) error
	// Prepare moves the owner's slot from created to pending with c (sealed
	// share, transcript and recovery data required), atomically and
	// durably: it returns only once a crash can no longer lose the share,
	// because the party signs the transcript right after.
	// ErrAlreadyCommitted if the slot is pending or ready already.
	Prepare(ctx context.Context, owner, keyID string, c Commitment) error
	// MarkReady moves the owner's pending record with this transcript to
	// ready and replaces its recovery data with recoveryData (which now
	// carries the success certificate). It need not be durable before it
	// returns (a pending record plus a certificate anywhere is complete, and
	// recovery finishes it after a crash). Ready with the same transcript
	// already: nil. Another transcript, or a created slot: ErrInvalid.
	MarkReady(ctx context.Context, owner, keyID string, transcript, recoveryData []byte) error
	// MarkRefused notes on the owner's pending record with this transcript
	// that member by (a keygen_id) refused after this party signed; the
	// record stays pending. Not pending with that transcript: ErrInvalid.
	MarkRefused(ctx context.Context, owner, keyID string, transcript, by []byte) error
	// Discard moves the owner's pending record with this transcript back to
	// created, dropping its share and recovery data but keeping the
	// identity key (so a certificate shown later can still recover it).
	// Callers discard only on proof that no certificate can exist.
	// Not pending with that transcript: ErrInvalid.
	Discard(ctx context.Context, owner, keyID string, transcript []byte) error
	// Get returns a live (created, pending or ready) record whatever its owner.
	Get(ctx context.Context, keyID string) (Record, error)
	// GetOwned returns the owner's live record.
	GetOwned(ctx context.Context, owner, keyID string) (Record, error)
	// ListByOwner returns the owner's live records ordered by key_id.
	ListByOwner(ctx context.Context, owner string) ([]Record, error)
	// CountByOwner returns how many live records the owner has, cheaply
	// (the key quota is checked on every key creation).
	CountByOwner(ctx context.Context, owner string) (int, error)
	// ListAll returns every live record ordered by key_id.
	ListAll(ctx context.Context) ([]Record, error)
	// Reseal replaces the sealed material of a live record with what fn
	// returns, in one transaction (wrapping-key rotation).
	Reseal(ctx context.Context, keyID string, fn ResealFunc) error
	// Delete replaces the owner's record by its tombstone (only key_id,
	// owner, scheme, state and timestamps; nothing sealed, no public key
	// data) and makes the old versions' bytes unrecoverable from the store's
	// files (bbolt: zeroes freed pages; SQL: the row is updated in place and
	// the old tuple must not survive, e.g. VACUUM) before it returns; the
	// key_id stays reserved. The sealed blobs are also sealed under a per-key
	// HSM data key that the caller destroys after Delete returns.
	Delete(ctx context.Context, owner, keyID string) error
	// Blobs holds the few named values replicas share (blobs.go).
	Blobs
	// Close releases the store.
	Close() error
}

// tombstone is what a deleted record keeps: enough to reserve its key_id
// and say whose it was and when, nothing sealed and no public key data.
// Implementations write exactly this in Delete.
func tombstone(r Record, now time.Time) Record {
	return Record{KeyID: r.KeyID, Owner: r.Owner, Scheme: r.Scheme, State: StateDeleted,
		CreatedAt: r.CreatedAt, DeletedAt: now}
}

func checkID(what, v string) error {
	if v == "" || len(v) > MaxIDLen {
		return fmt.Errorf("%w: %s must be 1..%d bytes", ErrInvalid, what, MaxIDLen)
	}
	return nil
}

func checkBytes(what string, v []byte, max int) error {
	if len(v) == 0 || len(v) > max {
		return fmt.Errorf("%w: %s must be 1..%d bytes", ErrInvalid, what, max)
	}
	return nil
}

func (s Slot) validate() error {
	if err := checkID("key_id", s.KeyID); err != nil {
		return err
	}
	if err := checkID("owner", s.Owner); err != nil {
		return err
	}
	if err := checkID("scheme", s.Scheme); err != nil {
		return err
	}
	if s.Quota < 0 {
		return fmt.Errorf("%w: negative quota", ErrInvalid)
	}
	if err := checkBytes("keygen_id", s.KeygenID, MaxPointLen); err != nil {
		return err
	}
	return checkBytes("sealed identity key", s.SealedIdentityKey, MaxSealedLen)
}

// validate checks c against the slot it commits: the party's own keygen_id
// must sit at OwnID, so a share can never be filed under the wrong identity.
func (c Commitment) validate(slotKeygenID []byte) error {
	switch c.Source {
	case SourceImport, SourceKeygen, SourceRefresh, SourceReshare:
	default:
		return fmt.Errorf("%w: unknown source %q", ErrInvalid, c.Source)
	}
	if c.N < 1 || c.N > MaxParties || c.T < 1 || c.T > c.N {
		return fmt.Errorf("%w: t=%d n=%d", ErrInvalid, c.T, c.N)
	}
	if c.OwnID < 0 || c.OwnID >= c.N {
		return fmt.Errorf("%w: own id %d outside 0..%d", ErrInvalid, c.OwnID, c.N-1)
	}
	if len(c.KeygenIDs) != c.N || len(c.PublicShares) != c.N {
		return fmt.Errorf("%w: %d keygen_ids and %d public shares for n=%d", ErrInvalid, len(c.KeygenIDs), len(c.PublicShares), c.N)
	}
	for i := range c.N {
		if err := checkBytes("keygen_id", c.KeygenIDs[i], MaxPointLen); err != nil {
			return err
		}
		if err := checkBytes("public share", c.PublicShares[i], MaxPointLen); err != nil {
			return err
		}
	}
	if !bytes.Equal(c.KeygenIDs[c.OwnID], slotKeygenID) {
		return fmt.Errorf("%w: keygen_ids[%d] is not this slot's keygen_id", ErrInvalid, c.OwnID)
	}
	if err := checkBytes("public key", c.PublicKey, MaxPointLen); err != nil {
		return err
	}
	return checkBytes("sealed share", c.SealedShare, MaxSealedLen)
}

// validatePending checks what Prepare needs beyond validate.
func (c Commitment) validatePending(slotKeygenID []byte) error {
	if err := c.validate(slotKeygenID); err != nil {
		return err
	}
	if err := checkBytes("transcript", c.Transcript, MaxTranscriptLen); err != nil {
		return err
	}
	return checkBytes("recovery data", c.RecoveryData, MaxRecoveryLen)
}

// complete reports whether r satisfies every invariant of its state; reads
// use it to refuse (rather than return) a record that is not whole.
func (r *Record) complete() error {
	if r.KeyID == "" || r.Owner == "" || r.Scheme == "" || r.CreatedAt.IsZero() {
		return fmt.Errorf("%w: %q lacks identity fields", ErrCorrupt, r.KeyID)
	}
	switch r.State {
	case StateCreated:
		if len(r.KeygenID) == 0 || len(r.SealedIdentityKey) == 0 || r.N != 0 || len(r.SealedShare) != 0 || len(r.RecoveryData) != 0 || len(r.RefusedBy) != 0 {
			return fmt.Errorf("%w: created record %q is not a clean slot", ErrCorrupt, r.KeyID)
		}
	case StateReady:
		c := r.commitment()
		if err := c.validate(r.KeygenID); err != nil || len(r.SealedIdentityKey) == 0 || r.CommittedAt.IsZero() {
			return fmt.Errorf("%w: ready record %q is incomplete: %v", ErrCorrupt, r.KeyID, err)
		}
	case StatePending:
		c := r.commitment()
		if err := c.validatePending(r.KeygenID); err != nil || len(r.SealedIdentityKey) == 0 || r.PreparedAt.IsZero() || !r.CommittedAt.IsZero() {
			return fmt.Errorf("%w: pending record %q is incomplete: %v", ErrCorrupt, r.KeyID, err)
		}
		if len(r.RefusedBy) > MaxPointLen {
			return fmt.Errorf("%w: pending record %q: refused_by of %d bytes", ErrCorrupt, r.KeyID, len(r.RefusedBy))
		}
	case StateDeleted:
		if len(r.SealedShare) != 0 || len(r.SealedIdentityKey) != 0 || r.DeletedAt.IsZero() {
			return fmt.Errorf("%w: deleted record %q still holds sealed material", ErrCorrupt, r.KeyID)
		}
	default:
		return fmt.Errorf("%w: %q has unknown state %q", ErrCorrupt, r.KeyID, r.State)
	}
	return nil
}

func (r *Record) commitment() Commitment {
	return Commitment{Source: r.Source, T: r.T, N: r.N, OwnID: r.OwnID, KeygenIDs: r.KeygenIDs,
		PublicShares: r.PublicShares, PublicKey: r.PublicKey, SealedShare: r.SealedShare,
		Transcript: r.Transcript, RecoveryData: r.RecoveryData}
}
