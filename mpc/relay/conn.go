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

// LeaveAfter says n more envelopes are all this party will read: the
// fetch that brings the last of them also ends the seat's reading, when
// the relay supports it (one request fewer than Leave, which then costs
// nothing). Sends still work while the room is open, which it is until
// every other seat has read all it needs, this party's posts included; a
// later Recv fails with ErrPartyLeft.
func (cn *Conn) LeaveAfter(n int) {
	cn.mu.Lock()
	cn.leaveIn = max(n, 0)
	cn.mu.Unlock()
}

// Join claims signer's seat in room among members (see TakeSeat) and
// returns the connection through it.
func (c *Client) Join(ctx context.Context, room string, signer Signer, members []envelope.Party) (*Conn, error) {
	st, err := c.TakeSeat(ctx, room, signer, members)
	if err != nil {
		return nil, err
	}
	return st.Conn(), nil
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

// Recv returns the next envelope for this party. It waits until one arrives
// or ctx ends (then the error matches ctx.Err() with errors.Is), polling in
// chunks no longer than ClientConfig.PollChunk.
func (cn *Conn) Recv(ctx context.Context) (Message, error) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	for len(cn.buf) == 0 {
		if err := ctx.Err(); err != nil {
			return Message{}, fmt.Errorf("relay: recv in room %s: %w", cn.seat.Room, err)
		}
		wait := cn.seat.c.cfg.PollChunk
		if dl, ok := ctx.Deadline(); ok {
			if rem := time.Until(dl); rem < wait {
				wait = rem
			}
		}
		msgs, err := cn.seat.fetch(ctx, cn.after, wait, cn.leaveIn)
		if err != nil {
			if isCtxDone(ctx, err) {
				return Message{}, fmt.Errorf("relay: recv in room %s: %w", cn.seat.Room, ctx.Err())
			}
			return Message{}, err
		}
		if len(msgs) > 0 {
			cn.buf = msgs
			cn.after = msgs[len(msgs)-1].Seq
			if cn.leaveIn > 0 {
				cn.leaveIn = max(cn.leaveIn-len(msgs), 0)
			}
		}
	}
	m := cn.buf[0]
	cn.buf[0] = Message{}
	cn.buf = cn.buf[1:]
	if len(cn.buf) == 0 {
		cn.buf = nil
	}
	return m, nil
}

// Leave gives up this party's seat.
func (cn *Conn) Leave(ctx context.Context) error { return cn.seat.Leave(ctx) }
