package chilldkg

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// TestErrorClasses: the sentinels match their families, BlameOf reads the
// accused party, and no error message repeats secret input.
func TestErrorClasses(t *testing.T) {
	for _, c := range []struct {
		err         error
		family      error
		participant int
		coordinator bool
		blames      bool
	}{
		{&ThresholdOrCountError{T: 0, N: 3}, ErrSessionParams, -1, false, false},
		{&InvalidHostPubkeyError{ParticipantID: 2}, ErrSessionParams, 2, false, true},
		{&DuplicateHostPubkeyError{0, 2}, ErrSessionParams, -1, false, false},
		{&FaultyParticipantError{ParticipantID: 1, Msg: "x"}, ErrProtocol, 1, false, true},
		{&FaultyParticipantOrCoordinatorError{ParticipantID: 3, Msg: "x"}, ErrProtocol, 3, true, true},
		{&FaultyCoordinatorError{Msg: "x"}, ErrProtocol, -1, true, true},
		{&UnknownFaultyParticipantOrCoordinatorError{Msg: "x"}, ErrProtocol, -1, false, false},
		{&InvalidRecoveryAckError{ParticipantID: 4}, ErrProtocol, 4, false, true},
		{invalidInput("short"), ErrInvalidInput, -1, false, false},
	} {
		if !errors.Is(c.err, c.family) {
			t.Errorf("%T does not match %v", c.err, c.family)
		}
		b, ok := BlameOf(c.err)
		if ok != c.blames || b.Participant != c.participant || b.Coordinator != c.coordinator {
			t.Errorf("%T: BlameOf = %+v, %v", c.err, b, ok)
		}
	}
	// A bad host key must not appear in the error.
	key := bytes.Repeat([]byte{0xff}, 32)
	_, err := HostPubkeyGen(key)
	var he *HostSeckeyError
	if !errors.As(err, &he) || strings.Contains(strings.ToLower(err.Error()), hex.EncodeToString(key)) {
		t.Fatalf("HostPubkeyGen(≥n): %v", err)
	}
}
