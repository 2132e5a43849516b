package relay

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Conn is one party in one room: Send posts as that party and Recv yields the
// envelopes for it strictly in seq order, long-polling as needed. Send may be
// called concurrently with Recv; concurrent Recv calls are serialised.
type Conn struct {
	c     *Client
	room  string
	party string

	mu    sync.Mutex
	after uint64    // highest seq handed to buf
	buf   []Message // fetched, not yet returned
}

// Join binds the client to party in room. It does no I/O: the relay admits
// the party on its first Send or Recv.
func (c *Client) Join(room, party string) *Conn {
	return &Conn{c: c, room: room, party: party}
}

// Room returns the room id.
func (cn *Conn) Room() string { return cn.room }

// Party returns this party's name.
func (cn *Conn) Party() string { return cn.party }

// Send posts body to party `to` (empty = broadcast).
func (cn *Conn) Send(ctx context.Context, to string, body []byte) error {
	return cn.c.Post(ctx, cn.room, cn.party, to, body)
}

// Recv returns the next envelope for this party. It waits until one arrives
// or ctx ends (then the error matches ctx.Err() with errors.Is), polling in
// chunks no longer than ClientConfig.PollChunk.
func (cn *Conn) Recv(ctx context.Context) (Message, error) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	for len(cn.buf) == 0 {
		if err := ctx.Err(); err != nil {
			return Message{}, fmt.Errorf("relay: recv in room %s: %w", cn.room, err)
		}
		wait := cn.c.cfg.PollChunk
		if dl, ok := ctx.Deadline(); ok {
			if rem := time.Until(dl); rem < wait {
				wait = rem
			}
		}
		msgs, err := cn.c.Fetch(ctx, cn.room, cn.party, cn.after, wait)
		if err != nil {
			if isCtxDone(ctx, err) {
				return Message{}, fmt.Errorf("relay: recv in room %s: %w", cn.room, ctx.Err())
			}
			return Message{}, err
		}
		if len(msgs) > 0 {
			cn.buf = msgs
			cn.after = msgs[len(msgs)-1].Seq
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

// Leave tells the relay this party is done with the room.
func (cn *Conn) Leave(ctx context.Context) error {
	return cn.c.Leave(ctx, cn.room, cn.party)
}
