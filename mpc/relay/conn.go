package relay

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/quorumd/quorumd/mpc/envelope"
)

// Conn is one party's seat in one room: Send posts from that seat and Recv
// yields the envelopes for it strictly in seq order, long-polling as
// needed. Send may be called concurrently with Recv; concurrent Recv calls
// are serialised.
type Conn struct {
	seat *Seat

	mu      sync.Mutex
	after   uint64    // highest seq handed to buf
	buf     []Message // fetched, not yet returned
	leaveIn int       // envelopes still to fetch before leaving (LeaveAfter); 0 = not set
}

// LeaveAfter says n more envelopes (those fetched and not yet returned
// included) are all this party will read: the fetch that brings the last
// of them also ends the seat's reading, when the relay supports it (one
// request fewer than Leave, which then costs nothing). Sends still work
// while the room is open, which it is until every other seat has read all
// it needs, this party's posts included; a later Recv fails with
// ErrPartyLeft.
func (cn *Conn) LeaveAfter(n int) {
	cn.mu.Lock()
	cn.leaveIn = max(n-len(cn.buf), 0)
	cn.mu.Unlock()
}

// Join claims signer's seat in room among members (see TakeSeat) and
// returns the connection through it.
func (c *Client) Join(ctx context.Context, room string, signer Signer, members []envelope.Party) (*Conn, error) {
	cn, _, err := c.JoinWith(ctx, room, signer, members, JoinOptions{})
	return cn, err
}

// JoinOptions is what a seat claim's request may do besides taking the
// seat (Client.JoinWith).
type JoinOptions struct {
	// First, when not nil, is the party's first envelope, posted from the
	// seat by the claim itself (FeatureClaimEnvelope; on a relay without
	// it, by a post right after the claim).
	First *Post
	// Fetch makes the claim's request also wait for the party's first
	// envelopes, which Recv then returns (relays before it only claim).
	Fetch bool
	// LeaveAfter is Conn.LeaveAfter, from the claim's own fetch on.
	LeaveAfter int
}

// JoinWith is Join in as few requests as the relay allows: the claim
// carries opt.First and, with opt.Fetch, the first fetch. posted says
// opt.First was posted (always, when err is nil and First is not nil).
func (c *Client) JoinWith(ctx context.Context, room string, signer Signer, members []envelope.Party, opt JoinOptions) (_ *Conn, posted bool, _ error) {
	cn := &Conn{leaveIn: max(opt.LeaveAfter, 0)}
	var fetch *fetchQuery
	if opt.Fetch {
		fetch = &fetchQuery{wait: pollWait(ctx, c), leaveAfter: cn.leaveIn}
	}
	first := opt.First
	if first != nil && (len(first.Body) > expectThreshold || !c.ClaimsEnvelopes(ctx)) {
		// Posted after the claim, which then must not wait for the others:
		// they may be waiting for this very envelope.
		first, fetch = nil, nil
	}
	st, cl, err := c.takeSeat(ctx, room, signer, members, first, fetch)
	if err != nil && first != nil && isCode(err, CodeBadRequest) {
		// An older instance behind the same address (a rolling upgrade)?
		// Ask again; if it says so, claim first and post after.
		c.forgetFeatures()
		if !c.ClaimsEnvelopes(ctx) {
			st, cl, err = c.takeSeat(ctx, room, signer, members, nil, nil)
		}
	}
	if err != nil {
		return nil, false, err
	}
	cn.seat = st
	if opt.First != nil && !cl.posted {
		// Posted before anything fetched is taken: the fetch, if any, ran
		// before this post, so the seat's order of reads is kept.
		if _, err := st.Post(ctx, opt.First.To, opt.First.Body); err != nil {
			return cn, false, err
		}
	}
	cn.took(cl.msgs)
	return cn, opt.First != nil, nil
}

// Conn returns a connection reading this seat's envelopes from the start.
func (st *Seat) Conn() *Conn { return &Conn{seat: st} }

// Seat returns the seat the connection acts through.
func (cn *Conn) Seat() *Seat { return cn.seat }

// Room returns the room id.
func (cn *Conn) Room() string { return cn.seat.Room }

// Party returns this party's name.
func (cn *Conn) Party() string { return cn.seat.Party }

// Send posts body to party `to` (empty = broadcast).
func (cn *Conn) Send(ctx context.Context, to string, body []byte) error {
	_, err := cn.seat.Post(ctx, to, body)
	return err
}

// SendRecv is Send then Recv in one request where the relay supports it
// (a post that also fetches): for a party that waits for others right
// after posting.
func (cn *Conn) SendRecv(ctx context.Context, to string, body []byte) (Message, error) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if len(cn.buf) > 0 {
		if err := cn.Send(ctx, to, body); err != nil {
			return Message{}, err
		}
		return cn.recvLocked(ctx)
	}
	_, cl, err := cn.seat.postFetch(ctx, to, body, &fetchQuery{after: cn.after, wait: pollWait(ctx, cn.seat.c), leaveAfter: cn.leaveIn}, false)
	if err != nil {
		return Message{}, err
	}
	cn.took(cl.msgs)
	return cn.recvLocked(ctx)
}

// Recv returns the next envelope for this party. It waits until one arrives
// or ctx ends (then the error matches ctx.Err() with errors.Is), polling in
// chunks no longer than ClientConfig.PollChunk.
func (cn *Conn) Recv(ctx context.Context) (Message, error) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.recvLocked(ctx)
}

func (cn *Conn) recvLocked(ctx context.Context) (Message, error) {
	for len(cn.buf) == 0 {
		if err := ctx.Err(); err != nil {
			return Message{}, fmt.Errorf("relay: recv in room %s: %w", cn.seat.Room, err)
		}
		msgs, err := cn.seat.fetch(ctx, &fetchQuery{after: cn.after, wait: pollWait(ctx, cn.seat.c), leaveAfter: cn.leaveIn})
		if err != nil {
			if isCtxDone(ctx, err) {
				return Message{}, fmt.Errorf("relay: recv in room %s: %w", cn.seat.Room, ctx.Err())
			}
			return Message{}, err
		}
		cn.took(msgs)
	}
	m := cn.buf[0]
	cn.buf[0] = Message{}
	cn.buf = cn.buf[1:]
	if len(cn.buf) == 0 {
		cn.buf = nil
	}
	return m, nil
}

// took queues fetched envelopes (cn.buf is empty) for Recv.
func (cn *Conn) took(msgs []Message) {
	if len(msgs) == 0 {
		return
	}
	cn.buf = msgs
	cn.after = msgs[len(msgs)-1].Seq
	if cn.leaveIn > 0 {
		cn.leaveIn = max(cn.leaveIn-len(msgs), 0)
	}
}

// pollWait is how long one fetch may wait: the poll chunk, or less to
// ctx's deadline.
func pollWait(ctx context.Context, c *Client) time.Duration {
	wait := c.cfg.PollChunk
	if dl, ok := ctx.Deadline(); ok {
		if rem := time.Until(dl); rem < wait {
			wait = max(rem, 0)
		}
	}
	return wait
}

// Leave gives up this party's seat.
func (cn *Conn) Leave(ctx context.Context) error { return cn.seat.Leave(ctx) }

// SendLeave posts the party's last envelope and leaves (Seat.PostLeave).
func (cn *Conn) SendLeave(ctx context.Context, to string, body []byte) error {
	return cn.seat.PostLeave(ctx, to, body)
}
