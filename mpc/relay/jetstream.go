package relay

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"
)

// Rooms in NATS JetStream (DESIGN §8): with Config.NATS set, every room
// lives in a JetStream key-value bucket (one record per room: size, expiry,
// member sets, seats with their token hashes) and every envelope in a
// stream (one subject per room and member set), so any number of
// quorum-relay instances serve the same rooms: a party may post to one and
// fetch from another, and an instance may die mid-ceremony while its
// parties carry on through another. The HTTP contract is the same as in
// memory; only room bookkeeping moves.

// NATSConfig selects JetStream storage for rooms and envelopes.
type NATSConfig struct {
	URL      string // nats://host:port (comma-separated for a cluster)
	Prefix   string // names the stream (<Prefix>_MSGS), the bucket (<Prefix>_ROOMS) and the subjects; default QUORUM_RELAY
	Memory   bool   // keep the stream and bucket in memory instead of files (tests)
	Replicas int    // copies of the stream and bucket in a NATS cluster (0 = 1)
}

// postIDHeader carries the client's id for one post; retries of the post
// (to another instance after a failure) reuse it, so JetStream stores the
// envelope once.
const postIDHeader = "X-Post-Id"

// jsState is the JetStream side of a Server.
type jsState struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	msgs    jetstream.Stream
	rooms   jetstream.KeyValue
	subject string // subject prefix: <subject>.<room>.<set>

	// One subscription to every envelope subject wakes this instance's
	// long-polls; it exists before any fetch, so no envelope stored while
	// a fetch reads the stream can slip past it.
	sub     *nats.Subscription
	mu      sync.Mutex
	waiters map[string]*jsWaiters // by subject
}

// jsWaiters is the wake-up channel of the long-polls on one subject.
type jsWaiters struct {
	ch chan struct{}
	n  int
}

// watch registers a long-poll on subj; the channel closes on its next
// envelope. Call the returned func when done waiting.
func (j *jsState) watch(subj string) (<-chan struct{}, func()) {
	j.mu.Lock()
	defer j.mu.Unlock()
	w := j.waiters[subj]
	if w == nil {
		w = &jsWaiters{ch: make(chan struct{})}
		j.waiters[subj] = w
	}
	w.n++
	return w.ch, func() {
		j.mu.Lock()
		defer j.mu.Unlock()
		w.n--
		if w.n == 0 && j.waiters[subj] == w {
			delete(j.waiters, subj)
		}
	}
}

func (j *jsState) wake(m *nats.Msg) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if w := j.waiters[m.Subject]; w != nil {
		close(w.ch)
		delete(j.waiters, m.Subject)
	}
}

// jsRoom is a room's record in the bucket.
type jsRoom struct {
	Size    int       `json:"size"`
	Expires time.Time `json:"expires"`
	Closed  bool      `json:"closed,omitempty"`
	Sets    []jsSet   `json:"sets,omitempty"`
}

type jsSet struct {
	ID      string   `json:"id"` // hex
	Members []string `json:"members"`
	Cap     int      `json:"cap"`
	Seats   []jsSeat `json:"seats,omitempty"`
}

type jsSeat struct {
	Party  string `json:"party"`
	Tok    string `json:"tok"` // hex SHA-256 of the token
	LastMs int64  `json:"last_ms"`
	Left   bool   `json:"left,omitempty"`
}

func openJetStream(c *Config) (*jsState, error) {
	n := c.NATS
	if c.Name == "" {
		return nil, errors.New("relay: config Name is required with NATS: every instance must sign-check claims for the same name")
	}
	prefix := n.Prefix
	if prefix == "" {
		prefix = "QUORUM_RELAY"
	}
	nc, err := nats.Connect(n.URL, nats.Name("quorum-relay"), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("relay: connect to NATS: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("relay: JetStream: %w", err)
	}
	storage := jetstream.FileStorage
	if n.Memory {
		storage = jetstream.MemoryStorage
	}
	subject := strings.ToLower(prefix) + ".msg"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:                 prefix + "_MSGS",
		Subjects:             []string{subject + ".>"},
		Storage:              storage,
		MaxAge:               c.MaxRoomTTL,
		MaxBytes:             c.MaxTotalBytes,
		MaxMsgs:              int64(c.MaxTotalMessages),
		MaxMsgsPerSubject:    int64(c.MaxRoomMessages),
		MaxMsgSize:           int32(c.MaxEnvelopeBytes + 4096), // headers
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		Duplicates:           2 * time.Minute,
		Replicas:             n.Replicas,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("relay: JetStream stream: %w", err)
	}
	rooms, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:   prefix + "_ROOMS",
		TTL:      c.MaxRoomTTL + c.ForgetAfter,
		History:  1,
		Storage:  storage,
		Replicas: n.Replicas,
		// The room count is not kept across instances; the bucket's size
		// bounds rooms (and their tombstones) instead.
		MaxBytes: int64(c.MaxRooms) * jsRoomBudget,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("relay: JetStream bucket: %w", err)
	}
	j := &jsState{nc: nc, js: js, msgs: msgs, rooms: rooms, subject: subject, waiters: make(map[string]*jsWaiters)}
	if j.sub, err = nc.Subscribe(subject+".>", j.wake); err != nil {
		nc.Close()
		return nil, fmt.Errorf("relay: NATS subscribe: %w", err)
	}
	if err := nc.FlushTimeout(10 * time.Second); err != nil {
		nc.Close()
		return nil, fmt.Errorf("relay: NATS flush: %w", err)
	}
	return j, nil
}

func (j *jsState) close() { j.nc.Close() }

// jsRoomBudget is the bucket space -max-rooms buys per room: a room record
// with a few member sets of a handful of parties takes 1–4 KiB.
const jsRoomBudget = 16 << 10

// jsOpTimeout bounds one request's JetStream operations. They get a context
// of their own: a fasthttp.RequestCtx is recycled once the handler returns,
// while contexts derived from it live on in other goroutines.
const jsOpTimeout = 10 * time.Second

func jsContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), jsOpTimeout)
}

func (j *jsState) setSubject(room, set string) string { return j.subject + "." + room + "." + set }

// load returns room id's record and revision, or the code to answer.
func (j *jsState) load(ctx context.Context, id string) (*jsRoom, uint64, string) {
	e, err := j.rooms.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, CodeUnknownRoom
	}
	if err != nil {
		return nil, 0, CodeStorageFull
	}
	var r jsRoom
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, 0, CodeStorageFull
	}
	if r.Closed || !time.Now().Before(r.Expires) {
		return &r, e.Revision(), CodeRoomExpired
	}
	return &r, e.Revision(), ""
}

// update applies fn to room id's record under compare-and-set, retrying on
// a concurrent change; fn returns a code to refuse with (nothing written).
func (j *jsState) update(ctx context.Context, id string, fn func(*jsRoom) string) string {
	for range 20 {
		r, rev, code := j.load(ctx, id)
		if code != "" {
			return code
		}
		if code := fn(r); code != "" {
			return code
		}
		b, err := json.Marshal(r)
		if err != nil {
			return CodeStorageFull
		}
		if _, err := j.rooms.Update(ctx, id, b, rev); err == nil {
			return ""
		} else if !errors.Is(err, jetstream.ErrKeyExists) && !strings.Contains(err.Error(), "wrong last sequence") {
			return CodeStorageFull
		}
	}
	return CodeStorageFull
}

// seat finds the seat holding token in r.
func (r *jsRoom) seat(tok string) (*jsSet, *jsSeat) {
	k := tokenKey(tok)
	h := hex.EncodeToString(k[:])
	for i := range r.Sets {
		for k := range r.Sets[i].Seats {
			if r.Sets[i].Seats[k].Tok == h {
				return &r.Sets[i], &r.Sets[i].Seats[k]
			}
		}
	}
	return nil, nil
}

func (r *jsRoom) done() bool {
	any, all := false, true
	for _, ms := range r.Sets {
		left := 0
		for _, st := range ms.Seats {
			any = true
			all = all && st.Left
			if st.Left {
				left++
			}
		}
		if len(ms.Seats) >= ms.Cap && left == len(ms.Seats) {
			return true
		}
	}
	return any && all
}

func (s *Server) jsCreateRoom(ctx *fasthttp.RequestCtx, size int, ttl time.Duration) {
	jc, cancel := jsContext()
	defer cancel()
	now := time.Now()
	r := jsRoom{Size: size, Expires: now.Add(ttl)}
	b, _ := json.Marshal(r)
	id := newRoomID()
	if _, err := s.js.rooms.Create(jc, id, b); err != nil {
		s.reject(ctx, CodeStorageFull, "room store unavailable")
		return
	}
	s.m.roomsCreated.Add(1)
	if s.roomLogs() {
		s.log.Debug("room created", "room", id, "size", size, "ttl", ttl.String(), "client", clientID(ctx))
	}
	writeJSON(ctx, fasthttp.StatusOK, appendRoomJSON(make([]byte, 0, 128), &room{id: id, size: size, expires: r.Expires}))
}

func (s *Server) jsRoomInfo(ctx *fasthttp.RequestCtx, id string) {
	jc, cancel := jsContext()
	defer cancel()
	r, _, code := s.js.load(jc, id)
	if code != "" {
		s.rejectRoom(ctx, code, id)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, appendRoomJSON(make([]byte, 0, 128), &room{id: id, size: r.Size, expires: r.Expires}))
}

// jsClaimSeat is claimSeat's store in JetStream: the seat in the room's
// record (compare-and-set), then the claim's envelope, if any, in the
// stream, then the fetch the request asked for. A refused envelope leaves
// the seat taken (the record was written first); the client's next claim
// takes it back with a fresh token.
func (s *Server) jsClaimSeat(ctx *fasthttp.RequestCtx, id string, c *claim, tok, name, to string, drop bool, fa fetchArgs) {
	jc, cancel := context.WithTimeout(context.Background(), fa.wait+jsOpTimeout)
	defer cancel()
	setID := hex.EncodeToString(c.set[:])
	k := tokenKey(tok)
	tokHash := hex.EncodeToString(k[:])
	var msg string
	var seats, size int
	var expires time.Time
	code := s.js.update(jc, id, func(r *jsRoom) string {
		var ms *jsSet
		for i := range r.Sets {
			if r.Sets[i].ID == setID {
				ms = &r.Sets[i]
			}
		}
		if ms == nil {
			if len(r.Sets) >= s.cfg.MaxSetsPerRoom {
				return CodeRoomSetsFull
			}
			names := make([]string, len(c.members))
			for i := range c.members {
				names[i] = hex.EncodeToString(c.members[i][:])
			}
			r.Sets = append(r.Sets, jsSet{ID: setID, Members: names, Cap: min(r.Size, len(names))})
			ms = &r.Sets[len(r.Sets)-1]
		}
		var st *jsSeat
		for i := range ms.Seats {
			if ms.Seats[i].Party == name {
				st = &ms.Seats[i]
			}
		}
		switch {
		case st != nil && c.timeMs <= st.LastMs:
			msg = "seat claim is not newer than the last one accepted for this seat (replayed?)"
			return CodeStaleSeatClaim
		case st != nil && st.Left:
			return CodePartyLeft
		case st == nil && len(ms.Seats) >= ms.Cap:
			return CodeRoomFull
		case st == nil:
			ms.Seats = append(ms.Seats, jsSeat{Party: name})
			st = &ms.Seats[len(ms.Seats)-1]
		}
		st.LastMs, st.Tok = c.timeMs, tokHash
		seats, size, expires = ms.Cap, r.Size, r.Expires
		return ""
	})
	switch {
	case code == "":
	case msg != "":
		s.reject(ctx, code, msg)
		return
	default:
		s.rejectRoom(ctx, code, id)
		return
	}
	s.m.seatsClaimed.Add(1)
	head := appendSeatHead(make([]byte, 0, 224), tok, c.set, seats, size)
	subj := s.js.setSubject(id, setID)
	if c.env != nil {
		seq, ok := s.jsPublish(ctx, jc, id, subj, name, to, c.env, drop)
		if !ok {
			return
		}
		head = appendSeqField(head, seq)
	}
	if !fa.asked {
		writeJSON(ctx, fasthttp.StatusOK, closeHead(head))
		return
	}
	s.jsAwait(ctx, jc, id, subj, name, expires, fa, head)
}

// jsSeatOf loads the room and the seat the request's token holds, or
// answers the request and returns nil.
func (s *Server) jsSeatOf(ctx *fasthttp.RequestCtx, jc context.Context, id string) (*jsRoom, *jsSet, *jsSeat) {
	if !ValidRoomID(id) {
		s.reject(ctx, CodeBadRequest, "room id must be a lowercase UUID v4")
		return nil, nil, nil
	}
	tok, ok := seatToken(&ctx.Request.Header)
	if !ok {
		s.reject(ctx, CodeSeatRequired, `this request needs "Authorization: Seat <token>" from a seat claim in room `+id)
		return nil, nil, nil
	}
	r, _, code := s.js.load(jc, id)
	if code != "" {
		s.rejectRoom(ctx, code, id)
		return nil, nil, nil
	}
	ms, st := r.seat(tok)
	if st == nil {
		s.reject(ctx, CodeSeatRequired, "no seat in room "+id+" holds this token")
		return nil, nil, nil
	}
	if st.Left {
		s.rejectRoom(ctx, CodePartyLeft, id)
		return nil, nil, nil
	}
	return r, ms, st
}

func (s *Server) jsPost(ctx *fasthttp.RequestCtx, id, to string, body []byte, fa fetchArgs) {
	jc, cancel := context.WithTimeout(context.Background(), fa.wait+jsOpTimeout)
	defer cancel()
	r, ms, st := s.jsSeatOf(ctx, jc, id)
	if st == nil {
		return
	}
	if to != "" && !containsString(ms.Members, to) {
		s.reject(ctx, CodeBadRequest, "recipient is not a member of this seat's member set")
		return
	}
	drop := false
	if s.cfg.Intercept != nil {
		var nb []byte
		if nb, drop = s.cfg.Intercept(id, st.Party, to, body); nb != nil {
			body = nb
		}
	}
	subj := s.js.setSubject(id, ms.ID)
	seq, ok := s.jsPublish(ctx, jc, id, subj, st.Party, to, body, drop)
	if !ok {
		return
	}
	head := appendSeqField(append(make([]byte, 0, 32), '{'), seq)
	if !fa.asked {
		writeJSON(ctx, fasthttp.StatusOK, closeHead(head))
		return
	}
	s.jsAwait(ctx, jc, id, subj, st.Party, r.Expires, fa, head)
}

// jsPublish stores an envelope from `from` on subj and returns its seq, or
// answers the request. The client's post id (X-Post-Id) makes a retry at
// another instance a duplicate JetStream stores once.
func (s *Server) jsPublish(ctx *fasthttp.RequestCtx, jc context.Context, id, subj, from, to string, body []byte, drop bool) (uint64, bool) {
	if drop {
		s.m.dropped.Add(1)
		return 1 << 62, true
	}
	m := nats.NewMsg(subj)
	m.Header.Set("From", from)
	m.Header.Set("To", to)
	m.Data = body
	var opts []jetstream.PublishOpt
	if pid := ctx.Request.Header.Peek(postIDHeader); len(pid) > 0 && len(pid) <= 64 {
		opts = append(opts, jetstream.WithMsgID(id+"/"+from+"/"+string(pid)))
	}
	ack, err := s.js.js.PublishMsg(jc, m, opts...)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && strings.Contains(apiErr.Description, "per subject") {
			s.reject(ctx, CodeRoomMessageLimit, fmt.Sprintf("room set holds %d envelopes, the limit", s.cfg.MaxRoomMessages))
			return 0, false
		}
		s.reject(ctx, CodeStorageFull, "envelope store refused the envelope: "+err.Error())
		return 0, false
	}
	if !ack.Duplicate {
		s.m.messages.Add(1)
		s.m.messageBytes.Add(uint64(len(body)))
	}
	return ack.Sequence, true
}

func (s *Server) jsFetch(ctx *fasthttp.RequestCtx, id string, fa fetchArgs) {
	jc, cancel := context.WithTimeout(context.Background(), fa.wait+jsOpTimeout)
	defer cancel()
	r, ms, st := s.jsSeatOf(ctx, jc, id)
	if st == nil {
		return
	}
	s.jsAwait(ctx, jc, id, s.js.setSubject(id, ms.ID), st.Party, r.Expires, fa, nil)
}

// jsAwait is awaitLocked over JetStream: party's envelopes on subj after
// fa.after, waiting up to fa.wait (not past the room's expiry); head as
// for awaitLocked. leave_after is not honoured: the client leaves with
// DELETE.
func (s *Server) jsAwait(ctx *fasthttp.RequestCtx, jc context.Context, id, subj, party string, expires time.Time, fa fetchArgs, head []byte) {
	refuse := func(code, msg string) {
		if head != nil {
			writeJSON(ctx, fasthttp.StatusOK, closeHead(head))
			return
		}
		if msg != "" {
			s.reject(ctx, code, msg)
			return
		}
		s.rejectRoom(ctx, code, id)
	}
	deadline := time.Now().Add(fa.wait)
	if expires.Before(deadline) {
		deadline = expires
	}
	cursor := fa.after
	for {
		// Watch before reading, so an envelope stored meanwhile still wakes us.
		woken, done := s.js.watch(subj)
		var out []*message
		total := len(`{"messages":[]}`)
		for {
			raw, err := s.js.msgs.GetMsg(jc, cursor+1, jetstream.WithGetMsgSubject(subj))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				done()
				refuse(CodeStorageFull, "envelope store unavailable")
				return
			}
			m := &message{seq: raw.Sequence, from: raw.Header.Get("From"), to: raw.Header.Get("To"), body: raw.Data}
			if m.to == party || (m.to == "" && m.from != party) {
				n := encodedSize(m)
				if len(out) > 0 && total+n > fa.budget {
					break
				}
				out = append(out, m)
				total += n
			}
			cursor = raw.Sequence
		}
		if len(out) > 0 {
			done()
			s.m.delivered.Add(uint64(len(out)))
			writeJSON(ctx, fasthttp.StatusOK, appendAnswer(head, out, false))
			return
		}
		now := time.Now()
		if !now.Before(expires) {
			done()
			refuse(CodeRoomExpired, "")
			return
		}
		if !now.Before(deadline) {
			done()
			writeJSON(ctx, fasthttp.StatusOK, appendAnswer(head, nil, false))
			return
		}
		s.m.waiters.Add(1)
		timer := time.NewTimer(deadline.Sub(now))
		select {
		case <-woken:
		case <-timer.C:
		case <-s.closing:
			timer.Stop()
			done()
			s.m.waiters.Add(-1)
			refuse(CodeShuttingDown, "relay is shutting down")
			return
		}
		timer.Stop()
		done()
		s.m.waiters.Add(-1)
	}
}

func (s *Server) jsLeave(ctx *fasthttp.RequestCtx, id string) {
	jc, cancel := jsContext()
	defer cancel()
	if !ValidRoomID(id) {
		s.reject(ctx, CodeBadRequest, "room id must be a lowercase UUID v4")
		return
	}
	tok, ok := seatToken(&ctx.Request.Header)
	if !ok {
		s.reject(ctx, CodeSeatRequired, `this request needs "Authorization: Seat <token>" from a seat claim in room `+id)
		return
	}
	closed := false
	code := s.js.update(jc, id, func(r *jsRoom) string {
		_, st := r.seat(tok)
		if st == nil {
			return CodeSeatRequired
		}
		st.Left = true
		closed = r.done()
		r.Closed = closed
		return ""
	})
	if code == CodeSeatRequired {
		s.reject(ctx, code, "no seat in room "+id+" holds this token")
		return
	}
	if code != "" {
		s.rejectRoom(ctx, code, id)
		return
	}
	if closed {
		// The envelopes go now; the record stays (closed, 410) until the
		// bucket's TTL forgets it.
		_ = s.js.msgs.Purge(jc, jetstream.WithPurgeSubject(s.js.subject+"."+id+".>"))
		s.m.roomsClosedLeft.Add(1)
		writeJSON(ctx, fasthttp.StatusOK, []byte(`{"left":true,"room_closed":true}`))
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, []byte(`{"left":true,"room_closed":false}`))
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
