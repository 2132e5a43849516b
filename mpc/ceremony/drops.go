package ceremony

import (
	"errors"
	"sync/atomic"

	"github.com/quorumd/quorumd/mpc/envelope"
)

// Dropped-envelope reasons, the keys of DroppedEnvelopes.
var dropReasons = []struct {
	name string
	err  error
}{
	{"malformed", envelope.ErrMalformed},
	{"bad_signature", envelope.ErrBadSignature},
	{"non_member", envelope.ErrNonMember},
	{"wrong_session", envelope.ErrWrongSession},
	{"replay", envelope.ErrReplay},
	{"reordered", envelope.ErrReordered},
	{"misrouted", envelope.ErrMisrouted},
	{"mistyped", errMistyped},
	{"late", errLate},
}

var dropCounts = make([]atomic.Uint64, len(dropReasons)+1) // last: other

func countDrop(err error) {
	for i, r := range dropReasons {
		if errors.Is(err, r.err) {
			dropCounts[i].Add(1)
			return
		}
	}
	dropCounts[len(dropReasons)].Add(1)
}

// DroppedEnvelopes returns, by reason, how many envelopes this process's
// ceremonies dropped since start (for a metrics counter). A steady rise of
// bad_signature or non_member means someone is posting into rooms.
func DroppedEnvelopes() map[string]uint64 {
	out := make(map[string]uint64, len(dropCounts))
	for i, r := range dropReasons {
		out[r.name] = dropCounts[i].Load()
	}
	out["other"] = dropCounts[len(dropReasons)].Load()
	return out
}
