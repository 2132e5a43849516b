package ceremony

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/relay"
)

// RelaySeat carries envelopes through a relay room, from the seat this
// party claims with its identity key; relay-level sender and recipient names
// are the parties' keygen_ids in hex. The seat is claimed on first use, in
// the same request as the first post or fetch where the relay allows
// (relay.Client.JoinWith), so the claim's time is fresh; Leave (called by
// the ceremony when it ends) gives the seat up.
type RelaySeat struct {
	c       *relay.Client
	room    string
	id      relay.Signer
	members []envelope.Party

	mu   sync.Mutex
	conn *relay.Conn

	// Sending lazily (sendLazily): a Send only queues its envelope, which
	// the next Recv posts in the request that fetches (or Leave, or the
	// next Send, posts on its own). recving counts Recvs in progress: a
	// Send during one posts at once, since that Recv may be waiting for
	// answers to it.
	lazy       bool
	lazyNext   bool // only the next Send is lazy (queueNext)
	claimFetch bool // the first Recv's claim may fetch (recvFirst)
	pending    *relay.Post
	recving    int
	leaveAfter int // readAll's count before the seat was claimed

	// Reading ahead (readAhead): a goroutine long-polls the relay for the
	// envelopes the ceremony expects and queues them, so that a fetch is
	// already waiting at the relay while this party computes and posts.
	ahead   int             // envelopes the reader is to fetch, once it starts
	all     bool            // they are all the ceremony reads (readAll)
	in      chan recvResult // the reader's queue, closed once it is done
	stopped bool
	stop    context.CancelFunc
}

type recvResult struct {
	body []byte
	err  error
}

// readAheadQueue bounds what the reader holds before Recv takes it.
const readAheadQueue = 16

// RelayTransport returns the transport of party id in room, among members:
// the ceremony's keygen_ids as every honest member knows them (an import's
// parties, or a key's parties for signing), id's own included. id must stay
// usable until the ceremony run on the transport returns (or, without one,
// until Claim has returned).
func RelayTransport(c *relay.Client, room string, id *envelope.Identity, members []envelope.Party) *RelaySeat {
	return &RelaySeat{c: c, room: room, id: id, members: members}
}

// Claim readies the seat ahead of the first message, to overlap with the
// caller's own work (run it in a goroutine, or claimAhead: Claimer); the
// first Send or Recv waits for it. On a relay that takes the first
// envelope with the claim it only learns so (once per client): the seat is
// then taken by the first Send or Recv, in the same request. Otherwise it
// takes the seat now; a failed claim is retried by the next call. A caller
// that claims must see that the seat is left (Leave, or the ceremony run on
// it).
func (t *RelaySeat) Claim(ctx context.Context) error {
	if t.c.ClaimsEnvelopes(ctx) {
		return nil
	}
	_, _, err := t.seat(ctx, relay.JoinOptions{})
	return err
}

// RoomSize returns the room's size, which the relay answers to the seat
// claim (claiming it now if need be, with the queued envelope, and when
// sending lazily the first fetch); a relay that does not is asked.
func (t *RelaySeat) RoomSize(ctx context.Context) (int, error) {
	conn, err := t.flush(ctx)
	if err == nil && conn == nil {
		conn, _, err = t.seat(ctx, relay.JoinOptions{})
	}
	if err != nil {
		return 0, err
	}
	if n := conn.Seat().Size; n > 0 {
		return n, nil
	}
	info, err := t.c.RoomInfo(ctx, t.room)
	return info.Size, err
}

// seat claims the seat once, doing opt in the claim's request; a failed
// claim is retried by the next call. posted says opt.First was posted by
// this call.
func (t *RelaySeat) seat(ctx context.Context, opt relay.JoinOptions) (_ *relay.Conn, posted bool, _ error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn != nil {
		return t.conn, false, nil
	}
	if t.id == nil {
		return nil, false, fmt.Errorf("relay: room %s: the seat was left", t.room)
	}
	if opt.LeaveAfter == 0 {
		opt.LeaveAfter = t.leaveAfter
	}
	conn, posted, err := t.c.JoinWith(ctx, t.room, t.id, t.members, opt)
	if err != nil {
		return nil, false, err
	}
	t.conn, t.id = conn, nil // the identity is not needed any more
	return conn, posted, nil
}

// flush posts the envelope a lazy Send queued, if any: with the claim and
// its fetch when the seat is not taken yet (a Recv follows), else on its
// own. It returns the connection, nil when there was nothing to post and
// no seat yet.
func (t *RelaySeat) flush(ctx context.Context) (*relay.Conn, error) {
	t.mu.Lock()
	p, conn := t.pending, t.conn
	t.pending = nil
	t.mu.Unlock()
	if p == nil {
		return conn, nil
	}
	return conn, t.post(ctx, p, true)
}

// post posts p, with the claim if the seat is not taken yet, the claim
// then also fetching when fetch is set. Only a post made right before
// waiting for others may fetch with the claim: the claim's request holds
// the seat's lock until the fetch is answered, so a Send meanwhile would
// wait for it.
func (t *RelaySeat) post(ctx context.Context, p *relay.Post, fetch bool) error {
	conn, posted, err := t.seat(ctx, relay.JoinOptions{First: p, Fetch: fetch})
	if err != nil || posted {
		return err
	}
	return conn.Send(ctx, p.To, p.Body)
}

// Send posts body to `to`, or to every other member for envelope.Broadcast.
// Sending lazily, it queues body for the next Recv (or Leave) instead, so
// the caller must not change body afterwards (sealed envelopes never are).
func (t *RelaySeat) Send(ctx context.Context, to envelope.Party, body []byte) error {
	p := &relay.Post{Body: body}
	if !to.IsBroadcast() {
		p.To = hex.EncodeToString(to[:])
	}
	t.mu.Lock()
	if (t.lazy || t.lazyNext) && t.recving == 0 && t.pending == nil && !t.stopped {
		t.pending, t.lazyNext = p, false
		t.mu.Unlock()
		return nil
	}
	q := t.pending // queued by an earlier Send: it goes first
	t.pending = nil
	t.mu.Unlock()
	if q != nil {
		if err := t.post(ctx, q, false); err != nil {
			return err
		}
	}
	return t.post(ctx, p, false)
}

// Recv returns the next envelope for this party, posting the envelope a
// lazy Send queued in the same request.
func (t *RelaySeat) Recv(ctx context.Context) ([]byte, error) {
	t.mu.Lock()
	p := t.pending
	t.pending = nil
	fetch := p != nil || t.claimFetch
	t.recving++
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.recving--
		t.mu.Unlock()
	}()
	// The claim's request fetches only for a queued post, or when nothing
	// is sent meanwhile (recvFirst; see post).
	conn, posted, err := t.seat(ctx, relay.JoinOptions{First: p, Fetch: fetch})
	if err != nil {
		return nil, err
	}
	if p != nil && !posted {
		m, err := conn.SendRecv(ctx, p.To, p.Body)
		return m.Body, err
	}
	if in := t.reader(ctx, conn); in != nil {
		select {
		case r, ok := <-in:
			if ok {
				return r.body, r.err
			}
			t.mu.Lock()
			t.in = nil // the reader is done: read directly from now on
			t.mu.Unlock()
		case <-ctx.Done():
			return nil, fmt.Errorf("relay: recv in room %s: %w", t.room, ctx.Err())
		}
	}
	m, err := conn.Recv(ctx)
	if err != nil {
		return nil, err
	}
	return m.Body, nil
}

// sendLazily makes a relay transport's Sends wait for the next Recv and
// ride on its request (RelaySeat.lazy): for a ceremony that, after each of
// its posts, waits for the others' (signing: nonce, then partial
// signature), one request per round instead of a post and a fetch (and
// the claim in the first). The ceremony must send from one goroutine, and
// call RoomSize or Recv (or end) after each Send. Other transports ignore
// it.
func sendLazily(tr Transport) { setFlag(tr, func(t *RelaySeat) *bool { return &t.lazy }) }

// queueNext is sendLazily for tr's next Send only, which then rides on the
// Recv or the Leave after it: for a post the ceremony follows at once with
// waiting for the others' (the durable prepare's barrier), or with leaving
// (its last envelope), sending nothing else meanwhile. It reports whether
// tr queues it (a relay transport; others send at once).
func queueNext(tr Transport) bool {
	return setFlag(tr, func(t *RelaySeat) *bool { return &t.lazyNext })
}

// recvFirst says tr's party sends nothing until its first Recv returns (an
// import's recipient waits for the deal first): that Recv's seat claim may
// then also fetch, one request instead of two.
func recvFirst(tr Transport) { setFlag(tr, func(t *RelaySeat) *bool { return &t.claimFetch }) }

// setFlag sets the flag of tr's RelaySeat that field names, and reports
// whether tr is one.
func setFlag(tr Transport, field func(*RelaySeat) *bool) bool {
	rs, ok := tr.(*RelaySeat)
	if ok {
		rs.mu.Lock()
		*field(rs) = true
		rs.mu.Unlock()
	}
	return ok
}

// sendsLazily reports whether tr queues its Sends (sendLazily): such a
// Send costs nothing to wait for.
func sendsLazily(tr Transport) bool {
	rs, ok := tr.(*RelaySeat)
	if !ok {
		return false
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.lazy
}

// readAhead makes a relay transport read the next n envelopes ahead
// (RelaySeat.readAhead); other transports ignore it.
func readAhead(tr Transport, n int) {
	if rs, ok := tr.(*RelaySeat); ok {
		rs.readAhead(n)
	}
}

// readAll is readAhead for a ceremony that reads exactly n envelopes in
// all (signing): the seat leaves with the fetch that brings the last one,
// one relay request fewer per party, and a Recv beyond n fails.
func readAll(tr Transport, n int) {
	rs, ok := tr.(*RelaySeat)
	if !ok {
		return
	}
	rs.mu.Lock()
	if !rs.lazy {
		rs.mu.Unlock()
		rs.setReadAhead(n, true)
		return
	}
	// Sending lazily, every fetch rides on a Recv (no reader): the seat
	// leaves with the one that brings the last envelope.
	conn := rs.conn
	if conn == nil {
		rs.leaveAfter = n
	}
	rs.mu.Unlock()
	if conn != nil {
		conn.LeaveAfter(n)
	}
}

// readAhead makes the first Recv start a goroutine that fetches the next n
// envelopes (all the ceremony expects, so that no fetch is left waiting at
// its end) into a queue Recv reads; later ones are read directly. The
// reader stops early at Leave or at a relay error, which Recv returns.
func (t *RelaySeat) readAhead(n int) { t.setReadAhead(n, false) }

func (t *RelaySeat) setReadAhead(n int, all bool) {
	t.mu.Lock()
	t.ahead, t.all = n, all
	t.mu.Unlock()
}

// reader returns the read-ahead queue, starting its goroutine on first
// use, or nil when not reading ahead.
func (t *RelaySeat) reader(ctx context.Context, conn *relay.Conn) chan recvResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.in != nil || t.ahead <= 0 || t.stopped {
		return t.in
	}
	n := t.ahead
	t.ahead = 0
	// The reader outlives each Recv's context (a timed-out Recv loses
	// nothing); Leave stops it.
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	in := make(chan recvResult, readAheadQueue)
	t.in, t.stop = in, cancel
	if t.all {
		// n is all the ceremony reads: the fetch that brings the last of
		// them also leaves the seat, and Leave has no request left to make.
		conn.LeaveAfter(n)
	}
	go func() {
		defer close(in)
		for range n {
			m, err := conn.Recv(rctx)
			select {
			case in <- recvResult{body: m.Body, err: err}:
			case <-rctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return in
}

// Leave gives up the seat if one was taken, so the relay frees the room as
// soon as every member is done instead of at its TTL (Leaver), and stops
// reading ahead.
func (t *RelaySeat) Leave(ctx context.Context) error {
	t.mu.Lock()
	p := t.pending
	t.pending = nil
	t.stopped = true // Sends from now on post at once
	t.mu.Unlock()
	var ferr error
	if p != nil {
		// The ceremony's last Send (a certificate, an abort notice) was
		// queued: it leaves with it, in one request where it can.
		t.mu.Lock()
		conn := t.conn
		t.mu.Unlock()
		if conn != nil {
			ferr = conn.SendLeave(ctx, p.To, p.Body)
		} else {
			ferr = t.post(ctx, p, false)
		}
	}
	t.mu.Lock()
	conn := t.conn
	t.id = nil
	stop := t.stop
	t.mu.Unlock()
	var err error
	if conn != nil {
		// Leaving first ends the reader's long-poll with an answer
		// (party_left) rather than a dropped connection.
		err = conn.Leave(ctx)
	}
	if stop != nil {
		stop()
	}
	return errors.Join(ferr, err)
}
