// Package relay is the untrusted message relay of the import and signing
// ceremonies (DESIGN §8): an HTTP service with one-time rooms of fixed size,
// an ordered envelope log per room and long-poll delivery, plus its client.
// The relay only routes opaque envelope bytes; envelopes carry their own
// signatures and encryption, so nothing here needs to be trusted.
// The wire contract is documented on Server.
package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/quorumd/quorumd/internal/uuid"
)

// Server is the relay. Routes (all JSON, errors as {"error": code, "message": text}):
//
//	GET    /v1/info                        → {"name","features"}: the relay name seat claims sign; FeatureClaimEnvelope
//	POST   /v1/rooms                       {"size":N,"ttl_seconds":opt} → {"room_uuid","size","expires_at"}
//	GET    /v1/rooms/{room}                → {"room_uuid","size","expires_at"}
//	POST   /v1/rooms/{room}/seats?to=Q     SeatClaim → {"token","set","seats","size"} (+ "seq" when it carries an envelope)
//	POST   /v1/rooms/{room}/messages?to=Q  raw envelope (to empty = broadcast) → {"seq":n}
//	                                       (&leave=1: the seat leaves with it, as DELETE, → {"seq":n,"left":true})
//	                                       (a post or claim with a fetch's parameters, wait_ms given, also fetches:
//	                                       its answer adds the fetch's "messages" and "left")
//	GET    /v1/rooms/{room}/messages?after=S&wait_ms=W&max_bytes=B&leave_after=K   long-poll → {"messages":[{seq,from,to,body(base64)}]}
//	                                       (K ≥ 1: an answer of at least K envelopes says "left":true and ends the seat's reading: it
//	                                       may still post while the room is open, and counts as left for closing the room)
//	DELETE /v1/rooms/{room}                leave; the room closes once a member set's ceremony is over
//	GET    /healthz, /metrics
//
// Posts, fetches and leaves carry "Authorization: Seat <token>", the token a
// seat claim answered; they act as that seat, within its member set.
type Server struct {
	cfg Config
	log *slog.Logger
	hs  *fasthttp.Server
	m   metrics

	totalBytes atomic.Int64 // accounted heap held in all open rooms (memory.go)
	totalMsgs  atomic.Int64 // envelopes held in all open rooms
	clients    *clientLimits
	js         *jsState // rooms in NATS JetStream; nil = in memory

	mu       sync.RWMutex
	rooms    map[string]*room // open rooms and tombstones
	open     int
	tombs    []*room // ended rooms in forgetAt order; tombs[tombHead:] are live
	tombHead int

	closing    chan struct{} // closed by Shutdown: long-polls answer 503 at once
	closeOnce  sync.Once
	gcOnce     sync.Once
	gcStopOnce sync.Once
	gcStop     chan struct{}
	gcDone     chan struct{}
}

// New builds a relay from cfg (zero fields take defaults).
func New(cfg Config) (*Server, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     c,
		log:     c.Logger,
		rooms:   make(map[string]*room),
		clients: newClientLimits(c.MaxRoomsPerClient, c.ClientRoomRate, c.ClientRoomBurst),
		closing: make(chan struct{}),
		gcStop:  make(chan struct{}),
		gcDone:  make(chan struct{}),
	}
	if c.NATS != nil {
		if s.js, err = openJetStream(&c); err != nil {
			return nil, err
		}
	}
	s.hs = &fasthttp.Server{
		Handler:               s.Handler,
		ErrorHandler:          s.errorHandler,
		Name:                  "quorum-relay",
		NoDefaultServerHeader: true,
		ReadTimeout:           c.ReadTimeout,
		WriteTimeout:          c.WriteTimeout,
		IdleTimeout:           c.IdleTimeout,
		Concurrency:           c.MaxConcurrentConns,
		// Bodies a little over the envelope limit are still read, so the
		// handler can answer 413 in JSON on a connection that stays usable;
		// anything larger is cut off by fasthttp while reading (the client
		// may then see a reset instead of the 413). Large senders should use
		// Expect: 100-continue, as Client does, to be refused before sending.
		MaxRequestBodySize: c.MaxEnvelopeBytes + bodySlack,
		ExpectHandler:      s.expect,
		CloseOnShutdown:    true,
		Logger:             fasthttpLogger{c.Logger},
	}
	return s, nil
}

// Config returns the effective configuration (defaults applied).
func (s *Server) Config() Config { return s.cfg }

// Serve accepts connections on ln (wrapped in TLS when Config.TLS is set)
// until Shutdown. It returns nil after a graceful shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if s.cfg.TLS != nil {
		tc := s.cfg.TLS.Clone()
		if tc.MinVersion < tls.VersionTLS12 {
			tc.MinVersion = tls.VersionTLS12
		}
		ln = tls.NewListener(ln, tc)
	}
	s.gcOnce.Do(func() { go s.gcLoop() })
	return s.hs.Serve(ln)
}

// ListenAndServe listens on addr ("host:port") and serves.
func (s *Server) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("relay: listen %s: %w", addr, err)
	}
	return s.Serve(ln)
}

// Shutdown stops accepting, answers pending long-polls with 503
// shutting_down, and waits for in-flight requests until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() { close(s.closing) })
	err := s.hs.ShutdownWithContext(ctx)
	started := true
	s.gcOnce.Do(func() { started = false }) // and Serve can no longer start it
	if started {
		s.gcStopOnce.Do(func() { close(s.gcStop) })
		<-s.gcDone
	}
	if s.js != nil {
		s.js.close()
	}
	if err != nil {
		return fmt.Errorf("relay: shutdown: %w", err)
	}
	return nil
}

// FeatureClaimEnvelope, listed by GET /v1/info, says a seat claim may carry
// the party's first envelope (SeatClaim.Envelope). Relays before it refuse
// such a claim (400, unknown field), so clients ask first.
const FeatureClaimEnvelope = "claim_envelope"

// features lists what this relay supports beyond the v1 base contract.
func (s *Server) features() []string { return []string{FeatureClaimEnvelope} }

// Handler serves one request; exposed so the relay can be mounted in-process.
func (s *Server) Handler(ctx *fasthttp.RequestCtx) {
	s.m.requests.Add(1)
	path := ctx.Path()
	method := string(ctx.Method())
	switch {
	case bytes.Equal(path, []byte("/healthz")):
		if method != fasthttp.MethodGet && method != fasthttp.MethodHead {
			s.methodNotAllowed(ctx, "GET, HEAD")
			return
		}
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("ok\n")
	case bytes.Equal(path, []byte("/metrics")):
		if method != fasthttp.MethodGet && method != fasthttp.MethodHead {
			s.methodNotAllowed(ctx, "GET, HEAD")
			return
		}
		ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
		ctx.SetBody(s.appendMetrics(make([]byte, 0, 4096)))
	case bytes.Equal(path, []byte("/v1/info")):
		if method != fasthttp.MethodGet {
			s.methodNotAllowed(ctx, "GET")
			return
		}
		b, _ := json.Marshal(struct {
			Name     string   `json:"name"`
			Features []string `json:"features"`
		}{s.cfg.Name, s.features()})
		writeJSON(ctx, fasthttp.StatusOK, b)
	case bytes.Equal(path, []byte("/v1/rooms")):
		if method != fasthttp.MethodPost {
			s.methodNotAllowed(ctx, "POST")
			return
		}
		s.createRoom(ctx)
	case bytes.HasPrefix(path, []byte("/v1/rooms/")):
		rest := path[len("/v1/rooms/"):]
		id, tail, hasTail := bytes.Cut(rest, []byte("/"))
		switch {
		case !hasTail:
			switch method {
			case fasthttp.MethodDelete:
				s.leave(ctx, string(id))
			case fasthttp.MethodGet:
				s.roomInfo(ctx, string(id))
			default:
				s.methodNotAllowed(ctx, "GET, DELETE")
			}
		case bytes.Equal(tail, []byte("seats")):
			if method != fasthttp.MethodPost {
				s.methodNotAllowed(ctx, "POST")
				return
			}
			s.claimSeat(ctx, string(id))
		case bytes.Equal(tail, []byte("messages")):
			switch method {
			case fasthttp.MethodPost:
				s.post(ctx, string(id))
			case fasthttp.MethodGet:
				s.fetch(ctx, string(id))
			default:
				s.methodNotAllowed(ctx, "GET, POST")
			}
		default:
			s.reject(ctx, CodeNotFound, "no such route")
		}
	default:
		s.reject(ctx, CodeNotFound, "no such route")
	}
}

func (s *Server) createRoom(ctx *fasthttp.RequestCtx) {
	size, ttl, err := parseCreate(ctx.PostBody(), &s.cfg)
	if err != nil {
		s.reject(ctx, CodeBadRequest, err.Error())
		return
	}
	now := time.Now()
	client := clientID(ctx)
	if code := s.clients.admit(client, now); code != "" {
		s.reject(ctx, code, fmt.Sprintf("this client (%s) may hold %d open rooms and create %g per second",
			client, s.cfg.MaxRoomsPerClient, s.cfg.ClientRoomRate))
		return
	}
	if s.js != nil {
		// Rooms live in JetStream and end on any instance: only the
		// creation rate is limited per client here.
		s.clients.release(client)
		s.jsCreateRoom(ctx, size, ttl)
		return
	}
	s.mu.Lock()
	if s.open >= s.cfg.MaxRooms {
		s.mu.Unlock()
		s.sweep(now) // expired rooms may not have been collected yet
		s.mu.Lock()
	}
	if s.open >= s.cfg.MaxRooms {
		s.mu.Unlock()
		s.clients.release(client)
		s.reject(ctx, CodeTooManyRooms, fmt.Sprintf("%d rooms open, the limit", s.cfg.MaxRooms))
		return
	}
	id := newRoomID()
	for s.rooms[id] != nil { // 122 random bits: never in practice, but never reuse
		id = newRoomID()
	}
	r := newRoom(id, size, client, now, ttl)
	s.rooms[id] = r
	s.open++
	s.mu.Unlock()
	s.m.roomsCreated.Add(1)
	if s.roomLogs() {
		s.log.Debug("room created", "room", id, "size", size, "ttl", ttl.String(), "client", client)
	}

	writeJSON(ctx, fasthttp.StatusOK, appendRoomJSON(make([]byte, 0, 128), r))
}

// lockOpenRoom finds room id and returns it locked if it is open, or the
// code to answer with. An open room past its TTL is expired on the spot.
func (s *Server) lockOpenRoom(id string) (*room, string) {
	s.mu.RLock()
	r := s.rooms[id]
	s.mu.RUnlock()
	if r == nil {
		return nil, CodeUnknownRoom
	}
	r.mu.Lock()
	if r.state == roomOpen {
		now := time.Now()
		if now.Before(r.expires) {
			return r, ""
		}
		ended := r.endLocked(roomExpired, now, s.cfg.ForgetAfter)
		r.mu.Unlock()
		if ended {
			s.retire(r, roomExpired)
		}
		return nil, CodeRoomExpired
	}
	r.mu.Unlock()
	return nil, CodeRoomExpired
}

func (s *Server) roomFromPath(ctx *fasthttp.RequestCtx, id string) (*room, bool) {
	if !ValidRoomID(id) {
		s.reject(ctx, CodeBadRequest, "room id must be a lowercase UUID v4")
		return nil, false
	}
	r, code := s.lockOpenRoom(id)
	if code != "" {
		s.rejectRoom(ctx, code, id)
		return nil, false
	}
	return r, true
}

// seatFromRequest finds room id open and the seat the request's token
// holds in it, returning both with the room locked; otherwise it answers
// the request and returns nil.
func (s *Server) seatFromRequest(ctx *fasthttp.RequestCtx, id string) (*room, *seat) {
	tok, ok := seatToken(&ctx.Request.Header)
	if !ValidRoomID(id) {
		s.reject(ctx, CodeBadRequest, "room id must be a lowercase UUID v4")
		return nil, nil
	}
	if !ok {
		s.reject(ctx, CodeSeatRequired, `this request needs "Authorization: Seat <token>" from a seat claim in room `+id)
		return nil, nil
	}
	r, ok := s.roomFromPath(ctx, id)
	if !ok {
		return nil, nil
	}
	st := r.seatLocked(tokenKey(tok))
	if st == nil {
		r.mu.Unlock()
		s.reject(ctx, CodeSeatRequired, "no seat in room "+id+" holds this token")
		return nil, nil
	}
	return r, st
}

func (s *Server) post(ctx *fasthttp.RequestCtx, id string) {
	to, err := parsePostParams(ctx.QueryArgs())
	if err != nil {
		s.reject(ctx, CodeBadRequest, err.Error())
		return
	}
	fa, err := parseFetch(ctx.QueryArgs(), s.cfg.MaxWait, s.cfg.MaxFetchBytes)
	if err != nil {
		s.reject(ctx, CodeBadRequest, err.Error())
		return
	}
	leave := string(ctx.QueryArgs().Peek("leave")) == "1"
	if leave && fa.asked {
		s.reject(ctx, CodeBadRequest, "a post that leaves cannot also fetch")
		return
	}
	body, ok := s.envelopeBody(ctx, ctx.PostBody())
	if !ok {
		return
	}
	if s.js != nil {
		// JetStream relays do not leave with a post: the answer says
		// nothing of it, and the client leaves with DELETE.
		s.jsPost(ctx, id, to, body, fa)
		return
	}

	r, st := s.seatFromRequest(ctx, id)
	if r == nil {
		return
	}
	if st.left {
		r.mu.Unlock()
		s.rejectRoom(ctx, CodePartyLeft, id)
		return
	}
	if to != "" {
		if to = st.set.member(to); to == "" {
			r.mu.Unlock()
			s.reject(ctx, CodeBadRequest, "recipient is not a member of this seat's member set")
			return
		}
	}
	from := st.party
	if code, msg := s.roomLimitLocked(r, messageCost(body)); code != "" {
		r.mu.Unlock()
		s.reject(ctx, code, msg)
		return
	}
	drop := false
	if s.cfg.Intercept != nil {
		// Run the test hook without the room lock; recheck afterwards.
		r.mu.Unlock()
		var nb []byte
		nb, drop = s.cfg.Intercept(id, from, to, body)
		if nb != nil {
			body = nb
		}
		r.mu.Lock()
		if r.state != roomOpen {
			r.mu.Unlock()
			s.rejectRoom(ctx, CodeRoomExpired, id)
			return
		}
		if code, msg := s.roomLimitLocked(r, messageCost(body)); code != "" && !drop {
			r.mu.Unlock()
			s.reject(ctx, code, msg)
			return
		}
	}
	head := appendSeqField(append(make([]byte, 0, 32), '{'), s.storeLocked(r, st, to, body, drop))
	if leave {
		// The party's last post (a certificate, an abort notice): it
		// leaves with it, saving its DELETE.
		closed := s.leaveLocked(r, st)
		r.mu.Unlock()
		if closed {
			s.retire(r, roomClosed)
		}
		writeJSON(ctx, fasthttp.StatusOK, append(head, `"left":true}`...))
		return
	}
	if !fa.asked {
		r.mu.Unlock()
		writeJSON(ctx, fasthttp.StatusOK, closeHead(head))
		return
	}
	s.awaitLocked(ctx, r, st, fa, head)
}

// envelopeBody checks a posted envelope's size and returns a copy of it
// (fasthttp reuses the request buffer after the handler returns), or
// answers the request. append rounds the capacity up to the allocation's
// size class, which is what messageCost counts.
func (s *Server) envelopeBody(ctx *fasthttp.RequestCtx, in []byte) ([]byte, bool) {
	if len(in) == 0 {
		s.reject(ctx, CodeBadRequest, "empty envelope")
		return nil, false
	}
	if len(in) > s.cfg.MaxEnvelopeBytes { // fasthttp lets up to bodySlack more through to get here
		s.reject(ctx, CodeTooLarge, fmt.Sprintf("envelope of %d bytes exceeds %d", len(in), s.cfg.MaxEnvelopeBytes))
		return nil, false
	}
	return append([]byte(nil), in...), true
}

// storeLocked appends body from st to `to` (a member's name from st's set,
// or "" to broadcast) once the limits were checked, or counts it dropped
// (the test hook), and returns its seq.
func (s *Server) storeLocked(r *room, st *seat, to string, body []byte, drop bool) uint64 {
	ms := st.set
	ms.lastSeq++
	seq := ms.lastSeq
	if drop {
		s.m.dropped.Add(1)
		return seq
	}
	cost := messageCost(body)
	ms.msgs = append(ms.msgs, &message{seq: seq, from: st.party, to: to, body: body})
	r.nmsgs++
	r.bytes += cost
	s.totalBytes.Add(int64(cost))
	s.totalMsgs.Add(1)
	r.wakeLocked()
	s.m.messages.Add(1)
	s.m.messageBytes.Add(uint64(len(body)))
	return seq
}

// roomLimitLocked checks the room's and the relay's bounds for cost more
// accounted bytes and one more envelope (msgs=1) or none (msgs=0, a seat).
func (s *Server) roomLimitLocked(r *room, cost int) (code, msg string) {
	return s.limitLocked(r, cost, 1)
}

func (s *Server) limitLocked(r *room, cost, msgs int) (code, msg string) {
	if msgs > 0 && r.nmsgs >= s.cfg.MaxRoomMessages {
		return CodeRoomMessageLimit, fmt.Sprintf("room holds %d envelopes, the limit", s.cfg.MaxRoomMessages)
	}
	if r.bytes+cost > s.cfg.MaxRoomBytes {
		return CodeRoomMessageLimit, fmt.Sprintf("room would exceed %d bytes", s.cfg.MaxRoomBytes)
	}
	if s.totalBytes.Load()+int64(cost) > s.cfg.MaxTotalBytes {
		return CodeStorageFull, fmt.Sprintf("relay holds %d bytes, the limit", s.cfg.MaxTotalBytes)
	}
	if msgs > 0 && s.totalMsgs.Load() >= int64(s.cfg.MaxTotalMessages) {
		return CodeStorageFull, fmt.Sprintf("relay holds %d envelopes, the limit", s.cfg.MaxTotalMessages)
	}
	return "", ""
}

func (s *Server) fetch(ctx *fasthttp.RequestCtx, id string) {
	fa, err := parseFetch(ctx.QueryArgs(), s.cfg.MaxWait, s.cfg.MaxFetchBytes)
	if err != nil {
		s.reject(ctx, CodeBadRequest, err.Error())
		return
	}
	if s.js != nil {
		s.jsFetch(ctx, id, fa)
		return
	}
	r, st := s.seatFromRequest(ctx, id)
	if r == nil {
		return
	}
	s.awaitLocked(ctx, r, st, fa, nil)
}

// awaitLocked answers a fetch by st in r (locked on entry, unlocked on
// return): the envelopes after fa.after once there are any, or none when
// fa.wait has passed. head, when not nil, is what the same request already
// did (a post, a seat claim: `{"seq":n,`): the answer starts with it, and
// where a lone fetch would be refused (room ended, seat gone, shutdown) the
// answer is head alone, without "messages", so the client learns what was
// done and fetches again to hear why.
func (s *Server) awaitLocked(ctx *fasthttp.RequestCtx, r *room, st *seat, fa fetchArgs, head []byte) {
	id := r.id
	refuse := func(code string) {
		if head != nil {
			writeJSON(ctx, fasthttp.StatusOK, closeHead(head))
			return
		}
		s.rejectRoom(ctx, code, id)
	}
	if st.gone() {
		r.mu.Unlock()
		refuse(CodePartyLeft)
		return
	}
	start := time.Now()
	deadline := start.Add(fa.wait)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		// Invariant: r.mu held, r open, st seated and not left.
		if batch := collectLocked(st, fa.after, fa.budget); len(batch) > 0 {
			// The last fetch a seat needs may end its reading, which
			// saves the ceremony's DELETE round trip (see seat.readDone).
			left := fa.leaveAfter > 0 && len(batch) >= fa.leaveAfter
			closed := false
			if left {
				st.readDone = true
				closed = s.closeIfDoneLocked(r)
			}
			r.mu.Unlock()
			if closed {
				s.retire(r, roomClosed)
			}
			s.m.delivered.Add(uint64(len(batch)))
			writeJSON(ctx, fasthttp.StatusOK, appendAnswer(head, batch, left))
			return
		}
		now := time.Now()
		if !now.Before(r.expires) {
			ended := r.endLocked(roomExpired, now, s.cfg.ForgetAfter)
			r.mu.Unlock()
			if ended {
				s.retire(r, roomExpired)
			}
			refuse(CodeRoomExpired)
			return
		}
		if !now.Before(deadline) {
			r.mu.Unlock()
			writeJSON(ctx, fasthttp.StatusOK, appendAnswer(head, nil, false))
			return
		}
		ch := r.waitChanLocked()
		r.mu.Unlock()
		if timer == nil {
			// Wake at the wait deadline or at expiry, whichever is first.
			until := deadline
			if r.expires.Before(until) {
				until = r.expires
			}
			timer = time.NewTimer(until.Sub(now))
		}
		s.m.waiters.Add(1)
		select {
		case <-ch:
		case <-timer.C:
		case <-s.closing:
			s.m.waiters.Add(-1)
			if head != nil {
				refuse(CodeShuttingDown)
				return
			}
			s.reject(ctx, CodeShuttingDown, "relay is shutting down")
			return
		}
		s.m.waiters.Add(-1)
		r.mu.Lock()
		if r.state != roomOpen {
			r.mu.Unlock()
			refuse(CodeRoomExpired)
			return
		}
		if st.gone() {
			r.mu.Unlock()
			refuse(CodePartyLeft)
			return
		}
	}
}

// appendAnswer encodes a fetch answer after head (nil: a lone fetch).
func appendAnswer(head []byte, batch []*message, left bool) []byte {
	b := make([]byte, 0, 256)
	if head == nil {
		b = append(b, '{')
	} else {
		b = append(b, head...)
	}
	b = appendMessages(b, batch)
	if left {
		b = append(b, `,"left":true`...)
	}
	return append(b, '}')
}

// closeHead turns a combined answer's head (`{"seq":n,`) into a whole
// answer without a fetch part.
func closeHead(head []byte) []byte {
	return append(head[:len(head)-1:len(head)-1], '}')
}

// appendMessages encodes a fetch answer's "messages" member. Party names
// are validated hex, so only the body needs encoding.
func appendMessages(b []byte, batch []*message) []byte {
	b = append(b, `"messages":[`...)
	for i, m := range batch {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"seq":`...)
		b = strconv.AppendUint(b, m.seq, 10)
		b = append(b, `,"from":"`...)
		b = append(b, m.from...)
		b = append(b, `","to":"`...)
		b = append(b, m.to...)
		b = append(b, `","body":"`...)
		b = base64.StdEncoding.AppendEncode(b, m.body)
		b = append(b, `"}`...)
	}
	return append(b, ']')
}

// roomInfo answers an open room's size and expiry, so a party that was
// given only the room id (a signer) learns how many parties it holds.
func (s *Server) roomInfo(ctx *fasthttp.RequestCtx, id string) {
	if s.js != nil {
		if !ValidRoomID(id) {
			s.reject(ctx, CodeBadRequest, "room id must be a lowercase UUID v4")
			return
		}
		s.jsRoomInfo(ctx, id)
		return
	}
	r, ok := s.roomFromPath(ctx, id)
	if !ok {
		return
	}
	b := appendRoomJSON(make([]byte, 0, 128), r)
	r.mu.Unlock()
	writeJSON(ctx, fasthttp.StatusOK, b)
}

func appendRoomJSON(b []byte, r *room) []byte {
	b = append(b, `{"room_uuid":"`...)
	b = append(b, r.id...)
	b = append(b, `","size":`...)
	b = strconv.AppendInt(b, int64(r.size), 10)
	b = append(b, `,"expires_at":"`...)
	b = r.expires.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

func (s *Server) leave(ctx *fasthttp.RequestCtx, id string) {
	if s.js != nil {
		s.jsLeave(ctx, id)
		return
	}
	r, st := s.seatFromRequest(ctx, id)
	if r == nil {
		return
	}
	closed := s.leaveLocked(r, st)
	r.mu.Unlock()
	if closed {
		s.retire(r, roomClosed)
		writeJSON(ctx, fasthttp.StatusOK, []byte(`{"left":true,"room_closed":true}`))
	} else {
		writeJSON(ctx, fasthttp.StatusOK, []byte(`{"left":true,"room_closed":false}`))
	}
}

// leaveLocked makes st leave room r (leaving twice is harmless) and
// reports whether that closed the room: the caller then retires it.
func (s *Server) leaveLocked(r *room, st *seat) (closed bool) {
	st.left = true
	r.wakeLocked()
	return s.closeIfDoneLocked(r)
}

// closeIfDoneLocked closes r if its ceremony is over (doneLocked) and
// reports whether it did: the caller then retires it.
func (s *Server) closeIfDoneLocked(r *room) bool {
	if r.doneLocked() {
		return r.endLocked(roomClosed, time.Now(), s.cfg.ForgetAfter)
	}
	return false
}

// retire accounts for a room that just ended (r.mu must not be held).
func (s *Server) retire(r *room, st roomState) {
	r.mu.Lock()
	forgetAt, final := r.forgetAt, r.final
	r.mu.Unlock()
	s.totalBytes.Add(-int64(final.bytes))
	s.totalMsgs.Add(-int64(final.msgs))
	s.clients.release(r.client)
	s.mu.Lock()
	s.open--
	s.tombs = append(s.tombs, r)
	for len(s.tombs)-s.tombHead > s.cfg.MaxTombstones {
		s.forgetLocked()
	}
	s.mu.Unlock()
	if st == roomExpired {
		s.m.roomsClosedExpire.Add(1)
	} else {
		s.m.roomsClosedLeft.Add(1)
	}
	if !s.roomLogs() {
		return
	}
	s.log.Debug("room ended", "room", r.id, "reason", st.String(), "seats", final.seats, "sets", final.sets, "messages", final.msgs,
		"forget_at", forgetAt.UTC().Format(time.RFC3339))
}

// roomLogs reports whether per-room lines are logged: at debug level only,
// since a busy relay would write two per ceremony (a write(2) each, on the
// request's path); /metrics counts rooms created and ended.
func (s *Server) roomLogs() bool { return s.log.Enabled(context.Background(), slog.LevelDebug) }

// forgetLocked drops the oldest tombstone: its id answers 404 from now on.
func (s *Server) forgetLocked() {
	r := s.tombs[s.tombHead]
	s.tombs[s.tombHead] = nil
	s.tombHead++
	delete(s.rooms, r.id)
	// Compact once the dead prefix dominates, keeping appends amortised O(1).
	if s.tombHead > 1024 && s.tombHead*2 > len(s.tombs) {
		s.tombs = append(s.tombs[:0:0], s.tombs[s.tombHead:]...)
		s.tombHead = 0
	}
}

// sweep expires overdue open rooms and forgets old tombstones.
func (s *Server) sweep(now time.Time) {
	var overdue []*room
	s.mu.Lock()
	for s.tombHead < len(s.tombs) {
		t := s.tombs[s.tombHead]
		// forgetAt is written once under t.mu before t is queued, and the
		// queue append happens under s.mu, so reading it here is ordered.
		if now.Before(t.forgetAt) {
			break
		}
		s.forgetLocked()
	}
	for _, r := range s.rooms {
		// expires is immutable; the state is rechecked under r.mu below.
		if !r.ended.Load() && !now.Before(r.expires) {
			overdue = append(overdue, r)
		}
	}
	s.mu.Unlock()
	for _, r := range overdue {
		r.mu.Lock()
		ended := r.endLocked(roomExpired, now, s.cfg.ForgetAfter)
		r.mu.Unlock()
		if ended {
			s.retire(r, roomExpired)
		}
	}
}

func (s *Server) gcLoop() {
	defer close(s.gcDone)
	t := time.NewTicker(s.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-s.gcStop:
			return
		case now := <-t.C:
			s.sweep(now)
			s.clients.sweep(now)
		}
	}
}

func newRoomID() string { return uuid.New() }

func writeJSON(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func (s *Server) reject(ctx *fasthttp.RequestCtx, code, msg string) {
	s.m.reject(code)
	status, ok := codeStatus[code]
	if !ok {
		status = fasthttp.StatusBadRequest
	}
	b, err := json.Marshal(errorBody{Error: code, Message: msg})
	if err != nil { // cannot happen for two strings; keep the answer well-formed
		b = []byte(`{"error":"` + code + `","message":""}`)
	}
	s.log.Debug("request rejected", "code", code, "status", status, "method", string(ctx.Method()),
		"path", string(ctx.Path()), "remote", ctx.RemoteAddr().String())
	writeJSON(ctx, status, b)
}

func (s *Server) rejectRoom(ctx *fasthttp.RequestCtx, code, id string) {
	var msg string
	switch code {
	case CodeUnknownRoom:
		msg = "no room " + id
	case CodeRoomExpired:
		msg = "room " + id + " has expired or been closed; rooms are one-time"
	case CodeRoomFull:
		msg = "room " + id + " already has all its members"
	case CodePartyLeft:
		msg = "this party has left room " + id
	case CodeRoomSetsFull:
		msg = "room " + id + " already holds its maximum of member sets"
	default:
		msg = code
	}
	s.reject(ctx, code, msg)
}

func (s *Server) methodNotAllowed(ctx *fasthttp.RequestCtx, allow string) {
	ctx.Response.Header.Set("Allow", allow)
	s.reject(ctx, CodeMethodNotAllowed, "method not allowed; use "+allow)
}

// bodySlack is how far over MaxEnvelopeBytes a body is still read in full.
const bodySlack = 64 << 10

// expect refuses an oversized envelope announced with Expect: 100-continue
// before its body is sent (fasthttp allows only a bare status here).
func (s *Server) expect(ctx *fasthttp.RequestCtx) int {
	if ctx.Request.Header.ContentLength() > s.cfg.MaxEnvelopeBytes {
		s.m.reject(CodeTooLarge)
		return fasthttp.StatusRequestEntityTooLarge
	}
	return fasthttp.StatusContinue
}

// errorHandler answers requests fasthttp could not read, in the relay's JSON.
func (s *Server) errorHandler(ctx *fasthttp.RequestCtx, err error) {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		s.reject(ctx, CodeTooLarge, fmt.Sprintf("envelope exceeds %d bytes", s.cfg.MaxEnvelopeBytes))
	case errors.As(err, &ne) && ne.Timeout():
		s.m.reject(codeRequestTimeout)
		b, _ := json.Marshal(errorBody{Error: codeRequestTimeout, Message: "request not received in time"})
		writeJSON(ctx, fasthttp.StatusRequestTimeout, b)
	default:
		s.reject(ctx, CodeBadRequest, "malformed HTTP request")
	}
}

// fasthttpLogger routes fasthttp's own printf logging into slog.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Warn("http server", "detail", fmt.Sprintf(format, args...))
}
