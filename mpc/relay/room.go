package relay

import (
	"encoding/hex"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumd/quorumd/mpc/envelope"
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
// read it after releasing the room lock. from and to share the member set's
// name strings, so a message costs its body plus MessageOverhead.
type message struct {
	seq  uint64
	from string
	to   string
	body []byte
}

// seat is one party's place in one member set, reached through its token.
type seat struct {
	set    *memberSet
	party  string   // hex name, shared with set.names
	tok    [32]byte // tokenKey of the current token
	lastMs int64    // time of the last accepted claim: later claims must be newer
	left   bool
	// readDone: a fetch with leave_after brought all the seat will read.
	// It may still post while the room is open, reads no more, and counts
	// as left for closing the room: everyone else's last read includes
	// its last post.
	readDone bool
}

// gone reports whether the seat is done with the room (left, or done reading).
func (st *seat) gone() bool { return st.left || st.readDone }

// memberSet is the mailbox of the seats that declared one member set. Its
// sequence numbers are its own: other sets of the room are invisible.
type memberSet struct {
	id      [32]byte
	names   []string // sorted hex keygen_ids, substrings of one allocation
	cap     int      // seats it may hold: min(room size, members)
	seats   []*seat
	msgs    []*message
	lastSeq uint64
}

func newMemberSet(id [32]byte, members []envelope.Party, size int) *memberSet {
	all := make([]byte, 0, len(members)*2*envelope.PartySize)
	for i := range members {
		all = hex.AppendEncode(all, members[i][:])
	}
	joined := string(all)
	names := make([]string, len(members))
	for i := range names {
		names[i] = joined[i*2*envelope.PartySize : (i+1)*2*envelope.PartySize]
	}
	return &memberSet{id: id, names: names, cap: min(size, len(members))}
}

// member returns the set's own copy of name, or "" if name is not a member.
func (ms *memberSet) member(name string) string {
	i := sort.SearchStrings(ms.names, name)
	if i < len(ms.names) && ms.names[i] == name {
		return ms.names[i]
	}
	return ""
}

func (ms *memberSet) seatOf(name string) *seat {
	for _, st := range ms.seats {
		if st.party == name {
			return st
		}
	}
	return nil
}

// done reports whether the set's ceremony is over: it held all its seats
// and every one has left.
func (ms *memberSet) done() bool {
	if len(ms.seats) < ms.cap {
		return false
	}
	for _, st := range ms.seats {
		if !st.gone() {
			return false
		}
	}
	return true
}

// room is one ceremony's meeting place. Everything below mu is guarded by it.
type room struct {
	id      string
	size    int
	client  string // creator's client identity, for the per-client room count
	created time.Time
	expires time.Time
	ended   atomic.Bool // mirrors state != roomOpen for lock-free sweeps

	mu       sync.Mutex
	state    roomState
	sets     []*memberSet
	tokens   map[[32]byte]*seat
	nmsgs    int
	bytes    int           // accounted heap: envelopes, sets and seats (see memory.go)
	notify   chan struct{} // closed (and replaced) to wake long-pollers
	watched  bool          // someone holds notify; skip the close/alloc otherwise
	forgetAt time.Time     // set once closed or expired
	final    roomSummary   // set once closed or expired
}

// roomSummary is what is kept for the log once a room's contents are freed.
type roomSummary struct {
	seats int
	sets  int
	msgs  int
	bytes int
}

func newRoom(id string, size int, client string, now time.Time, ttl time.Duration) *room {
	return &room{
		id:      id,
		size:    size,
		client:  client,
		created: now,
		expires: now.Add(ttl),
		tokens:  make(map[[32]byte]*seat),
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

// endLocked moves an open room to a final state, frees its envelopes, sets
// and seats (a tombstone only needs its id and times) and wakes its
// waiters. It reports whether this call did the transition.
func (r *room) endLocked(st roomState, now time.Time, forgetAfter time.Duration) bool {
	if r.state != roomOpen {
		return false
	}
	r.state = st
	r.ended.Store(true)
	r.final = roomSummary{seats: len(r.tokens), sets: len(r.sets), msgs: r.nmsgs, bytes: r.bytes}
	r.sets = nil
	r.tokens = nil
	r.nmsgs = 0
	r.bytes = 0
	r.forgetAt = now.Add(forgetAfter)
	r.watched = true
	r.wakeLocked()
	return true
}

// setLocked returns the room's set with id, or nil.
func (r *room) setLocked(id [32]byte) *memberSet {
	for _, ms := range r.sets {
		if ms.id == id {
			return ms
		}
	}
	return nil
}

// seatLocked returns the seat holding token key k, or nil.
func (r *room) seatLocked(k [32]byte) *seat { return r.tokens[k] }

// doneLocked reports whether the room can close: some set finished its
// ceremony, or every seat taken so far has left.
func (r *room) doneLocked() bool {
	any, all := false, true
	for _, ms := range r.sets {
		if ms.done() {
			return true
		}
		for _, st := range ms.seats {
			any = true
			all = all && st.gone()
		}
	}
	return any && all
}

// collectLocked returns the envelopes of st's set after seq `after` that st
// may read: addressed to it, or broadcast by another seat. At least one
// message is returned when any is pending, then as many as fit in maxBytes
// of encoded answer (see encodedSize).
func collectLocked(st *seat, after uint64, maxBytes int) []*message {
	msgs := st.set.msgs
	start := sort.Search(len(msgs), func(i int) bool { return msgs[i].seq > after })
	var out []*message
	total := len(`{"messages":[]}`)
	for _, m := range msgs[start:] {
		if m.to == st.party || (m.to == "" && m.from != st.party) {
			n := encodedSize(m)
			if len(out) > 0 && total+n > maxBytes {
				break
			}
			out = append(out, m)
			total += n
		}
	}
	return out
}
