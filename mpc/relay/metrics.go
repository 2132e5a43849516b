package relay

import (
	"strconv"
	"sync/atomic"
)

// rejectCodes lists every reason a request can be refused, in exposition order.
var rejectCodes = []string{
	CodeBadRequest, CodeNotFound, CodeMethodNotAllowed, CodeUnknownRoom,
	CodeRoomExpired, CodeRoomFull, CodePartyLeft, CodeTooLarge,
	CodeRoomMessageLimit, CodeTooManyRooms, CodeStorageFull, CodeShuttingDown, codeRequestTimeout,
	CodeSeatRequired, CodeBadSeatClaim, CodeStaleSeatClaim, CodeRoomSetsFull, CodeClientRoomLimit, CodeClientRateLimit,
}

// codeRequestTimeout answers a request that was not read in time.
const codeRequestTimeout = "request_timeout"

var rejectIndex = func() map[string]int {
	m := make(map[string]int, len(rejectCodes))
	for i, c := range rejectCodes {
		m[c] = i
	}
	return m
}()

type metrics struct {
	requests          atomic.Uint64
	roomsCreated      atomic.Uint64
	seatsClaimed      atomic.Uint64
	roomsClosedLeft   atomic.Uint64
	roomsClosedExpire atomic.Uint64
	messages          atomic.Uint64
	messageBytes      atomic.Uint64
	delivered         atomic.Uint64
	dropped           atomic.Uint64 // by the fault-injection hook
	waiters           atomic.Int64
	rejects           [24]atomic.Uint64
}

func (m *metrics) reject(code string) {
	if i, ok := rejectIndex[code]; ok {
		m.rejects[i].Add(1)
	}
}

// Stats is a point-in-time snapshot of the relay's counters.
type Stats struct {
	RoomsOpen         int
	Tombstones        int
	Requests          uint64 // HTTP requests handled, /metrics and /healthz included
	RoomsCreated      uint64
	SeatsClaimed      uint64
	StoredMessages    int64 // envelopes held in open rooms
	Clients           int   // client identities with open rooms or spent rate
	RoomsClosedLeft   uint64
	RoomsClosedExpire uint64
	Messages          uint64
	MessageBytes      uint64
	Delivered         uint64
	Dropped           uint64
	LongPollWaiters   int64
	StoredBytes       int64 // accounted heap held in open rooms
	Rejects           map[string]uint64
}

// Stats returns the current counters (the same numbers /metrics exposes).
func (s *Server) Stats() Stats {
	s.mu.RLock()
	open, tombs := s.open, len(s.tombs)-s.tombHead
	s.mu.RUnlock()
	st := Stats{
		RoomsOpen:         open,
		Tombstones:        tombs,
		Requests:          s.m.requests.Load(),
		RoomsCreated:      s.m.roomsCreated.Load(),
		SeatsClaimed:      s.m.seatsClaimed.Load(),
		StoredMessages:    s.totalMsgs.Load(),
		Clients:           s.clients.count(),
		RoomsClosedLeft:   s.m.roomsClosedLeft.Load(),
		RoomsClosedExpire: s.m.roomsClosedExpire.Load(),
		Messages:          s.m.messages.Load(),
		MessageBytes:      s.m.messageBytes.Load(),
		Delivered:         s.m.delivered.Load(),
		Dropped:           s.m.dropped.Load(),
		LongPollWaiters:   s.m.waiters.Load(),
		StoredBytes:       s.totalBytes.Load(),
		Rejects:           make(map[string]uint64, len(rejectCodes)),
	}
	for i, c := range rejectCodes {
		st.Rejects[c] = s.m.rejects[i].Load()
	}
	return st
}

// appendMetrics writes the Prometheus text exposition format (version 0.0.4).
func (s *Server) appendMetrics(b []byte) []byte {
	st := s.Stats()
	family := func(name, typ, help string) {
		b = append(b, "# HELP "...)
		b = append(b, name...)
		b = append(b, ' ')
		b = append(b, help...)
		b = append(b, "\n# TYPE "...)
		b = append(b, name...)
		b = append(b, ' ')
		b = append(b, typ...)
		b = append(b, '\n')
	}
	sample := func(name, labels string, v uint64) {
		b = append(b, name...)
		b = append(b, labels...)
		b = append(b, ' ')
		b = strconv.AppendUint(b, v, 10)
		b = append(b, '\n')
	}
	family("quorum_relay_rooms_open", "gauge", "Rooms currently open.")
	sample("quorum_relay_rooms_open", "", uint64(st.RoomsOpen))
	family("quorum_relay_rooms_tombstones", "gauge", "Closed or expired rooms still answering 410.")
	sample("quorum_relay_rooms_tombstones", "", uint64(st.Tombstones))
	family("quorum_relay_stored_bytes", "gauge", "Heap held in open rooms: envelopes with their overhead, member sets and seats.")
	sample("quorum_relay_stored_bytes", "", uint64(max(st.StoredBytes, 0)))
	family("quorum_relay_stored_messages", "gauge", "Envelopes held in open rooms.")
	sample("quorum_relay_stored_messages", "", uint64(max(st.StoredMessages, 0)))
	family("quorum_relay_clients", "gauge", "Client identities tracked for per-client room limits.")
	sample("quorum_relay_clients", "", uint64(st.Clients))
	family("quorum_relay_requests_total", "counter", "HTTP requests handled.")
	sample("quorum_relay_requests_total", "", st.Requests)
	family("quorum_relay_seats_claimed_total", "counter", "Seat claims accepted.")
	sample("quorum_relay_seats_claimed_total", "", st.SeatsClaimed)
	family("quorum_relay_rooms_created_total", "counter", "Rooms created.")
	sample("quorum_relay_rooms_created_total", "", st.RoomsCreated)
	family("quorum_relay_rooms_closed_total", "counter", "Rooms ended, by reason.")
	sample("quorum_relay_rooms_closed_total", `{reason="left"}`, st.RoomsClosedLeft)
	sample("quorum_relay_rooms_closed_total", `{reason="expired"}`, st.RoomsClosedExpire)
	family("quorum_relay_messages_total", "counter", "Envelopes accepted.")
	sample("quorum_relay_messages_total", "", st.Messages)
	family("quorum_relay_message_bytes_total", "counter", "Envelope bytes accepted.")
	sample("quorum_relay_message_bytes_total", "", st.MessageBytes)
	family("quorum_relay_messages_delivered_total", "counter", "Envelopes returned to fetching parties.")
	sample("quorum_relay_messages_delivered_total", "", st.Delivered)
	family("quorum_relay_messages_dropped_total", "counter", "Envelopes dropped by the fault-injection hook (always 0 in production).")
	sample("quorum_relay_messages_dropped_total", "", st.Dropped)
	family("quorum_relay_longpoll_waiters", "gauge", "Fetches currently waiting for an envelope.")
	w := st.LongPollWaiters
	if w < 0 {
		w = 0
	}
	sample("quorum_relay_longpoll_waiters", "", uint64(w))
	family("quorum_relay_rejects_total", "counter", "Requests refused, by error code.")
	for _, c := range rejectCodes {
		sample("quorum_relay_rejects_total", `{reason="`+c+`"}`, st.Rejects[c])
	}
	return b
}
