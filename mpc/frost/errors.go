package frost

import (
	"errors"
	"fmt"
)

// ErrInvalidInput is matched (errors.Is) by every *InputError: an input broke
// a precondition (the spec reference's ValueError).
var ErrInvalidInput = errors.New("frost: invalid input")

// ErrInvalidContribution is matched (errors.Is) by every
// *InvalidContributionError.
var ErrInvalidContribution = errors.New("frost: invalid contribution")

// ErrNonceReused is returned when a SecNonce that was already consumed by Sign
// (or destroyed) is used again.
var ErrNonceReused = errors.New("frost: secret nonce already used")

// ErrPartialSigInvalid reports a partial signature that fails verification;
// PartialSigVerify wraps it in an *InvalidContributionError naming the signer.
var ErrPartialSigInvalid = errors.New("frost: partial signature does not verify")

// ErrSelfVerify reports that Sign produced a partial signature that does not
// verify (a computation fault); the partial signature is withheld.
var ErrSelfVerify = errors.New("frost: own partial signature failed verification")

// ErrRandom reports a failure of the random source given to NonceGen.
var ErrRandom = errors.New("frost: reading randomness failed")

// Reasons carried by *InputError. Each one names one precondition of the spec;
// the comment gives the reference implementation's ValueError message.
var (
	// "The threshold must be 1 <= t <= n."
	ErrThresholdRange = errors.New("frost: threshold must satisfy 1 <= t <= n")
	// "The number of signers must be between t and n."
	ErrSignerCount = errors.New("frost: number of signers must be between t and n")
	// "The pubshares and ids arrays must have the same length."
	ErrPubSharesLength = errors.New("frost: pubshares and ids differ in length")
	// "The participant identifier at index %d is out of range."
	ErrIDOutOfRange = errors.New("frost: participant identifier out of range")
	// "Invalid pubshare at index %d."
	ErrInvalidPubShare = errors.New("frost: invalid pubshare")
	// "The participant identifier list contains duplicate elements."
	ErrDuplicateIDs = errors.New("frost: participant identifier list contains duplicates")
	// "The threshold pubkey must not be the point at infinity."
	ErrThreshPKInfinity = errors.New("frost: threshold public key is the point at infinity")
	// "The provided key material is incorrect."
	ErrKeyMaterial = errors.New("frost: public shares do not match the threshold public key")
	// TweakCtxInit: the threshold public key does not decode.
	ErrInvalidThreshPK = errors.New("frost: invalid threshold public key")
	// "The tweak must be a 32-byte array."
	ErrTweakLength = errors.New("frost: tweak must be 32 bytes")
	// "The tweaks and is_xonly arrays must have the same length."
	ErrTweakModesLength = errors.New("frost: tweaks and tweak modes differ in length")
	// "The tweak value is out of range."
	ErrTweakOutOfRange = errors.New("frost: tweak value out of range")
	// "The result of tweaking cannot be infinity."
	ErrTweakInfinity = errors.New("frost: tweaking resulted in the point at infinity")
	// "first secnonce value is out of range."
	ErrSecNonce1OutOfRange = errors.New("frost: first secnonce value out of range")
	// "second secnonce value is out of range."
	ErrSecNonce2OutOfRange = errors.New("frost: second secnonce value out of range")
	// "The signer's secret share value is out of range."
	ErrSecShareOutOfRange = errors.New("frost: secret share out of range")
	// "The signer's pubshare must be included in the list of pubshares."
	ErrPubShareNotInSet = errors.New("frost: signer's pubshare not in the signer set")
	// "The signer's id must be present in the participant identifier list."
	ErrIDNotInSet = errors.New("frost: signer's id not in the signer set")
	// "The psigs and ids arrays must have the same length."
	ErrPsigsLength = errors.New("frost: psigs and ids differ in length")
	// "The pubnonces and ids arrays must have the same length."
	ErrPubNoncesLength = errors.New("frost: pubnonces and ids differ in length")
	// PartialSigVerify: the signer index i is not in 0..u-1.
	ErrSignerIndex = errors.New("frost: signer index out of range")
	// NonceGen: an optional argument has the wrong length.
	ErrOptionalArgLength = errors.New("frost: optional argument has the wrong length")
	// A byte string does not decode (length, point or scalar range).
	ErrEncoding = errors.New("frost: malformed encoding")
)

// InputError is the spec's ValueError: Reason is one of the ErrXxx reasons
// above and Index the position in the input list it refers to, or -1.
type InputError struct {
	Reason error
	Index  int
}

func inputErr(reason error) *InputError { return &InputError{Reason: reason, Index: -1} }

func inputErrAt(reason error, index int) *InputError {
	return &InputError{Reason: reason, Index: index}
}

func (e *InputError) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("%v (index %d)", e.Reason, e.Index)
	}
	return e.Reason.Error()
}

// Unwrap exposes the reason to errors.Is.
func (e *InputError) Unwrap() error { return e.Reason }

// Is makes every InputError match ErrInvalidInput.
func (e *InputError) Is(target error) bool { return target == ErrInvalidInput }

// Contrib names the kind of protocol contribution found invalid.
type Contrib string

// The contribution kinds used by the spec.
const (
	ContribPubNonce      Contrib = "pubnonce"
	ContribAggNonce      Contrib = "aggnonce"
	ContribAggOtherNonce Contrib = "aggothernonce"
	ContribPsig          Contrib = "psig"
)

// CoordinatorCulprit is the Signer value blaming the coordinator (the spec's
// signer_index None).
const CoordinatorCulprit = -1

// InvalidContributionError blames a party for an invalid protocol message:
// Signer is the index of the culprit in the input list (not its id), or
// CoordinatorCulprit. Err, when set, gives the underlying cause.
type InvalidContributionError struct {
	Signer  int
	Contrib Contrib
	Err     error
}

func (e *InvalidContributionError) Error() string {
	who := "coordinator"
	if e.Signer != CoordinatorCulprit {
		who = fmt.Sprintf("signer at index %d", e.Signer)
	}
	if e.Err != nil {
		return fmt.Sprintf("frost: invalid %s from %s: %v", e.Contrib, who, e.Err)
	}
	return fmt.Sprintf("frost: invalid %s from %s", e.Contrib, who)
}

// Unwrap exposes the cause, if any.
func (e *InvalidContributionError) Unwrap() error { return e.Err }

// Is makes every InvalidContributionError match ErrInvalidContribution.
func (e *InvalidContributionError) Is(target error) bool { return target == ErrInvalidContribution }
