package ceremony

import (
	"errors"
	"fmt"

	"github.com/quorumd/quorumd/mpc/envelope"
)

// Failure classes of an aborted ceremony; AbortError wraps one of them.
var (
	ErrTimeout      = errors.New("timed out")
	ErrProtocol     = errors.New("protocol violation")
	ErrBadShare     = errors.New("share does not match the commitments")
	ErrEquivocation = errors.New("importer sent different deals to different parties")
	ErrMismatch     = errors.New("transcripts do not match")
	// ErrOldKey: a refresh or reshare dealer presents another old key than
	// the one its peers hold, or a sub-dealing that does not match its old
	// public share.
	ErrOldKey        = errors.New("dealer lies about the old key")
	ErrBadPartialSig = errors.New("invalid partial signature")
	ErrRejected      = errors.New("envelope rejected")
	ErrRemoteAbort   = errors.New("aborted by another party")
	ErrInput         = errors.New("invalid ceremony input")
	ErrCommit        = errors.New("commit failed")
	ErrTransport     = errors.New("transport failure")
	// ErrPending: this party durably prepared its share and signed the
	// transcript, but holds no success certificate yet and no proof that
	// none can exist; its record stays pending until recovery (DESIGN §3a).
	ErrPending = errors.New("pending: share stored, success certificate not received")
	// ErrRecovery: recovery data that does not verify.
	ErrRecovery = errors.New("invalid recovery data")
)

// AbortError is how every ceremony failure is returned: which round, why,
// and the culprit party where the protocol can know it. It never carries
// secret material.
type AbortError struct {
	Round      uint8
	Culprit    envelope.Party // zero when unknown
	ReportedBy envelope.Party // set when another party reported the abort
	Err        error          // one of the Err… classes above, possibly wrapped
	Detail     string
	// Refused: ReportedBy's notice was a refusal, sent instead of its
	// transcript signature (see party.signed).
	Refused bool
}

func (e *AbortError) Error() string {
	s := fmt.Sprintf("ceremony aborted in round %d: %v", e.Round, e.Err)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.HasCulprit() {
		s += fmt.Sprintf(" (culprit %x)", e.Culprit[:])
	}
	if e.ReportedBy != envelope.Broadcast {
		s += fmt.Sprintf(" (reported by %x)", e.ReportedBy[:])
	}
	return s
}

func (e *AbortError) Unwrap() error { return e.Err }

// HasCulprit reports whether a culprit party is named.
func (e *AbortError) HasCulprit() bool { return e.Culprit != envelope.Broadcast }

func abortf(round uint8, culprit envelope.Party, err error, format string, args ...any) *AbortError {
	return &AbortError{Round: round, Culprit: culprit, Err: err, Detail: fmt.Sprintf(format, args...)}
}
