package vss

import (
	"errors"
	"fmt"
)

// Errors returned by this package; match them with errors.Is. Errors about a
// particular participant's share come wrapped in *ShareError.
var (
	// ErrInvalidParameters: t < 1, t > n, n > MaxParticipants, or a
	// coefficient/commitment count that does not match t.
	ErrInvalidParameters = errors.New("vss: invalid threshold parameters")
	// ErrInvalidCommitment: a commitment is missing or not a valid point.
	ErrInvalidCommitment = errors.New("vss: invalid commitment")
	// ErrInvalidShare: a secret share does not match the commitments.
	ErrInvalidShare = errors.New("vss: share does not match the commitments")
	// ErrZeroShare: a share is zero (its public share is the point at
	// infinity), which BIP445 forbids.
	ErrZeroShare = errors.New("vss: zero share")
	// ErrInvalidPublicShare: a public share is missing or not a valid point.
	ErrInvalidPublicShare = errors.New("vss: invalid public share")
	// ErrInconsistentPublicShares: the public shares do not lie on one
	// polynomial of degree t-1.
	ErrInconsistentPublicShares = errors.New("vss: public shares are not on one degree t-1 polynomial")
	// ErrThresholdKeyMismatch: the public shares interpolate to a key other
	// than the expected threshold key.
	ErrThresholdKeyMismatch = errors.New("vss: public shares do not interpolate to the threshold key")
	// ErrInvalidID: a participant id out of range, duplicated, or absent
	// from the signer set.
	ErrInvalidID = errors.New("vss: invalid participant id")
	// ErrInvalidCoefficient: a zero polynomial coefficient (its commitment
	// would be the point at infinity, which has no encoding).
	ErrInvalidCoefficient = errors.New("vss: zero coefficient")
	// ErrSubDealing: a reshare dealer's constant commitment is not its
	// Lagrange-weighted old public share.
	ErrSubDealing = errors.New("vss: sub-dealing does not match the dealer's old public share")
	// ErrRandomness: the randomness source failed.
	ErrRandomness = errors.New("vss: randomness source failed")
)

// ShareError reports a problem with the share or public share of participant
// ID (a BIP445 id, 0-based). Err is one of the sentinel errors above.
type ShareError struct {
	ID  int
	Err error
}

func (e *ShareError) Error() string {
	return fmt.Sprintf("participant %d: %v", e.ID, e.Err)
}

func (e *ShareError) Unwrap() error { return e.Err }
