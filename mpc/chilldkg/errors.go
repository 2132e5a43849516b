package chilldkg

import (
	"errors"
	"fmt"
)

// The spec's exceptions are Go error types; match them with errors.As (the
// typed ones) or errors.Is (the sentinels). Messages never carry secrets.

// ErrInvalidInput is the spec's structural ValueError: an argument of the
// wrong length or shape (a 16-byte key, a list of the wrong size, a message of
// the wrong length). It blames nobody: the caller passed something malformed.
var ErrInvalidInput = errors.New("chilldkg: invalid input")

// ErrSessionParams is matched (errors.Is) by every session-parameter error:
// ThresholdOrCountError, InvalidHostPubkeyError, DuplicateHostPubkeyError.
var ErrSessionParams = errors.New("chilldkg: invalid session parameters")

// ErrProtocol is matched (errors.Is) by every error caused by a received
// protocol message: FaultyParticipantError, FaultyParticipantOrCoordinatorError,
// FaultyCoordinatorError, UnknownFaultyParticipantOrCoordinatorError.
var ErrProtocol = errors.New("chilldkg: protocol error")

// ErrNoFault is returned by ParticipantInvestigate when the investigation
// message is consistent with the received share, which only happens if the
// caller passed inputs that do not belong together (the spec's RuntimeError).
var ErrNoFault = errors.New("chilldkg: investigation found every contribution consistent")

func invalidInput(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidInput}, args...)...)
}

// HostSeckeyError: the host secret key is invalid (zero or ≥ n) or does not
// match the expected host public key.
type HostSeckeyError struct{ Msg string }

func (e *HostSeckeyError) Error() string {
	if e.Msg == "" {
		return "chilldkg: invalid host secret key"
	}
	return "chilldkg: " + e.Msg
}

// ThresholdOrCountError: 1 <= t <= len(hostpubkeys) <= 2^32-1 does not hold.
type ThresholdOrCountError struct{ T, N int }

func (e *ThresholdOrCountError) Error() string {
	return fmt.Sprintf("chilldkg: need 1 <= t <= n <= 2^32-1, have t=%d n=%d", e.T, e.N)
}

// Unwrap lets errors.Is(err, ErrSessionParams) match.
func (e *ThresholdOrCountError) Unwrap() error { return ErrSessionParams }

// InvalidHostPubkeyError: participant ParticipantID's host public key is not
// a valid compressed point; that participant is faulty.
type InvalidHostPubkeyError struct{ ParticipantID int }

func (e *InvalidHostPubkeyError) Error() string {
	return fmt.Sprintf("chilldkg: host public key of participant %d is invalid", e.ParticipantID)
}

// Unwrap lets errors.Is(err, ErrSessionParams) match.
func (e *InvalidHostPubkeyError) Unwrap() error { return ErrSessionParams }

// DuplicateHostPubkeyError: two participants have the same host public key;
// at least one of them is faulty.
type DuplicateHostPubkeyError struct{ ParticipantID1, ParticipantID2 int }

func (e *DuplicateHostPubkeyError) Error() string {
	return fmt.Sprintf("chilldkg: participants %d and %d have the same host public key", e.ParticipantID1, e.ParticipantID2)
}

// Unwrap lets errors.Is(err, ErrSessionParams) match.
func (e *DuplicateHostPubkeyError) Unwrap() error { return ErrSessionParams }

// RandomnessError: the randomness passed to ParticipantStep1 is all zeroes,
// the sign of a broken random number generator.
type RandomnessError struct{}

func (e *RandomnessError) Error() string { return "chilldkg: randomness is all zeroes" }

// FaultyParticipantError is raised by the coordinator's functions: participant
// ParticipantID deviated from the protocol (assuming the message reached the
// coordinator intact).
type FaultyParticipantError struct {
	ParticipantID int
	Msg           string
}

func (e *FaultyParticipantError) Error() string {
	return fmt.Sprintf("chilldkg: participant %d is faulty: %s", e.ParticipantID, e.Msg)
}

// Unwrap lets errors.Is(err, ErrProtocol) match.
func (e *FaultyParticipantError) Unwrap() error { return ErrProtocol }

// FaultyParticipantOrCoordinatorError is raised by a participant's functions:
// participant ParticipantID is faulty, or the coordinator is and framed it.
type FaultyParticipantOrCoordinatorError struct {
	ParticipantID int
	Msg           string
}

func (e *FaultyParticipantOrCoordinatorError) Error() string {
	return fmt.Sprintf("chilldkg: participant %d or the coordinator is faulty: %s", e.ParticipantID, e.Msg)
}

// Unwrap lets errors.Is(err, ErrProtocol) match.
func (e *FaultyParticipantOrCoordinatorError) Unwrap() error { return ErrProtocol }

// FaultyCoordinatorError is raised by a participant's functions: the
// coordinator deviated from the protocol.
type FaultyCoordinatorError struct{ Msg string }

func (e *FaultyCoordinatorError) Error() string {
	return "chilldkg: coordinator is faulty: " + e.Msg
}

// Unwrap lets errors.Is(err, ErrProtocol) match.
func (e *FaultyCoordinatorError) Unwrap() error { return ErrProtocol }

// UnknownFaultyParticipantOrCoordinatorError is raised by ParticipantStep2
// when the received secret share is invalid: some participant or the
// coordinator is faulty, and ParticipantInvestigate with the coordinator's
// investigation message names which. It holds secret investigation data
// (never printed); ParticipantInvestigate zeroes it, or call Zero.
type UnknownFaultyParticipantOrCoordinatorError struct {
	Msg string
	inv *investigationData
}

func (e *UnknownFaultyParticipantOrCoordinatorError) Error() string {
	return "chilldkg: some participant or the coordinator is faulty: " + e.Msg
}

// Unwrap lets errors.Is(err, ErrProtocol) match.
func (e *UnknownFaultyParticipantOrCoordinatorError) Unwrap() error { return ErrProtocol }

// Zero erases the secret investigation data; the error can no longer be
// investigated afterwards.
func (e *UnknownFaultyParticipantOrCoordinatorError) Zero() {
	if e.inv != nil {
		e.inv.zero()
		e.inv = nil
	}
}

// RecoveryDataError: the recovery data is malformed, names invalid session
// parameters, or its success certificate does not verify.
type RecoveryDataError struct {
	Msg string
	Err error // the underlying cause, if any
}

func (e *RecoveryDataError) Error() string {
	if e.Err != nil {
		return "chilldkg: " + e.Msg + ": " + e.Err.Error()
	}
	return "chilldkg: " + e.Msg
}

// Unwrap returns the underlying cause.
func (e *RecoveryDataError) Unwrap() error { return e.Err }

// InvalidRecoveryAckError: participant ParticipantID's recovery
// acknowledgment does not verify. The session itself succeeded; only the
// confirmation that this participant holds the recovery data is missing. It
// also matches *FaultyParticipantError through errors.As, as in the spec.
type InvalidRecoveryAckError struct{ ParticipantID int }

func (e *InvalidRecoveryAckError) Error() string {
	return fmt.Sprintf("chilldkg: recovery acknowledgment of participant %d is invalid", e.ParticipantID)
}

// Unwrap exposes the FaultyParticipantError this error specialises.
func (e *InvalidRecoveryAckError) Unwrap() error {
	return &FaultyParticipantError{ParticipantID: e.ParticipantID, Msg: "invalid recovery acknowledgment"}
}

// Blame says whom a protocol error accuses: Participant ≥ 0 names a
// participant (possibly framed by the coordinator when Coordinator is also
// true), Participant = -1 with Coordinator names the coordinator alone.
type Blame struct {
	Participant int
	Coordinator bool
}

// BlameOf extracts the accused party from err; ok is false when err accuses
// nobody (input errors, unknown culprit before investigation).
func BlameOf(err error) (b Blame, ok bool) {
	var fp *FaultyParticipantError
	var fpc *FaultyParticipantOrCoordinatorError
	var fc *FaultyCoordinatorError
	var ih *InvalidHostPubkeyError
	switch {
	case errors.As(err, &fp):
		return Blame{Participant: fp.ParticipantID}, true
	case errors.As(err, &fpc):
		return Blame{Participant: fpc.ParticipantID, Coordinator: true}, true
	case errors.As(err, &fc):
		return Blame{Participant: -1, Coordinator: true}, true
	case errors.As(err, &ih):
		return Blame{Participant: ih.ParticipantID}, true
	}
	return Blame{Participant: -1}, false
}
