package relay

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

type roomState uint8

const (
	roomOpen roomState = iota
	roomClosed
	roomExpired
)

func (s roomState) String() string {
	switch s {
	case roomOpen:
		return "open"
	case roomClosed:
		return "closed"
	default:
		return "expired"
	}
}

// message is one stored envelope; immutable once appended, so fetchers may
// read it after releasing the room lock.
type message struct {
	seq  uint64
	from string
	to   string
	body []byte
}

type member struct {
	name string
	left bool
}

// room is one ceremony's mailbox. Everything below mu is guarded by it.
type room struct {
	id      string
	size    int
	created time.Time
	expires time.Time
	ended   atomic.Bool // mirrors state != roomOpen for lock-free sweeps

	mu       sync.Mutex
	state    roomState
	members  []member // ≤ size entries, linear scan is cheaper than a map at these sizes
	msgs     []*message
	bytes    int
	lastSeq  uint64
	notify   chan struct{} // closed (and replaced) to wake long-pollers
	watched  bool          // someone holds notify; skip the close/alloc otherwise
	forgetAt time.Time     // set once closed or expired
	final    roomSummary   // set once closed or expired
}

// roomSummary is what is kept for the log once a room's contents are freed.
type roomSummary struct {
	members int
	bytes   int
}

func newRoom(id string, size int, now time.Time, ttl time.Duration) *room {
	return &room{
		id:      id,
		size:    size,
		created: now,
		expires: now.Add(ttl),
		notify:  make(chan struct{}),
	}
}

// wakeLocked wakes every long-poller of the room.
func (r *room) wakeLocked() {
	if r.watched {
		close(r.notify)
		r.notify = make(chan struct{})
		r.watched = false
	}
}

// waitChanLocked returns the channel closed on the next change to the room.
func (r *room) waitChanLocked() <-chan struct{} {
	r.watched = true
	return r.notify
}

// endLocked moves an open room to a final state, frees its envelopes and
// member list (a tombstone only needs its id and times) and wakes its
// waiters. It reports whether this call did the transition.
func (r *room) endLocked(st roomState, now time.Time, forgetAfter time.Duration) bool {
	if r.state != roomOpen {
		return false
	}
	r.state = st
	r.ended.Store(true)
	r.final = roomSummary{members: len(r.members), bytes: r.bytes}
	r.msgs = nil
	r.members = nil
	r.bytes = 0
	r.forgetAt = now.Add(forgetAfter)
	r.watched = true
	r.wakeLocked()
	return true
}

// admitLocked makes name a member if there is a free seat and reports the
// wire code when it may not act in the room. leaving=true (used by leave)
// accepts a member that already left, so leaving twice is idempotent.
func (r *room) admitLocked(name string, leaving bool) (idx int, code string) {
	for i := range r.members {
		if r.members[i].name == name {
			if r.members[i].left && !leaving {
				return i, CodePartyLeft
			}
			return i, ""
		}
	}
	if len(r.members) >= r.size {
		return -1, CodeRoomFull
	}
	r.members = append(r.members, member{name: name})
	return len(r.members) - 1, ""
}

// allLeftLocked reports whether every member so far has left.
func (r *room) allLeftLocked() bool {
	if len(r.members) == 0 {
		return false
	}
	for _, m := range r.members {
		if !m.left {
			return false
		}
	}
	return true
}

// collectLocked returns the envelopes after seq `after` that party may read:
// addressed to it, or broadcast by someone else. At least one message is
// returned when any is pending, then at most maxBytes of bodies.
func (r *room) collectLocked(party string, after uint64, maxBytes int) []*message {
	start := sort.Search(len(r.msgs), func(i int) bool { return r.msgs[i].seq > after })
	var out []*message
	total := 0
	for _, m := range r.msgs[start:] {
		if m.to == party || (m.to == "" && m.from != party) {
			if len(out) > 0 && total+len(m.body) > maxBytes {
				break
			}
			out = append(out, m)
			total += len(m.body)
		}
	}
	return out
}
