package ceremony

import (
	"context"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/relay"
)

// RelaySeat carries envelopes through a relay room, from the seat this
// party claims with its identity key; relay-level sender and recipient names
// are the parties' keygen_ids in hex. The seat is claimed on first use (or
// by Claim), so the claim's time is fresh; Leave (called by the ceremony
// when it ends) gives the seat up.
type RelaySeat struct {
	c       *relay.Client
	room    string
	id      relay.Signer
	members []envelope.Party

	mu   sync.Mutex
	conn *relay.Conn

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
// usable until the first Send, Recv or Claim has returned.
func RelayTransport(c *relay.Client, room string, id *envelope.Identity, members []envelope.Party) *RelaySeat {
	return &RelaySeat{c: c, room: room, id: id, members: members}
}

// Claim takes the seat now rather than on first use, so that the claim's
// round trip overlaps the caller's own work (run it in a goroutine, or
// claimAhead: Claimer); the first Send or Recv waits for it. A failed claim
// is retried by the next call. A caller that claims must see that the seat
// is left (Leave, or the ceremony run on it).
func (t *RelaySeat) Claim(ctx context.Context) error {
	_, err := t.seat(ctx)
	return err
}

// RoomSize returns the room's size, which the relay answers to the seat
// claim (claiming it now if need be); a relay that does not is asked.
func (t *RelaySeat) RoomSize(ctx context.Context) (int, error) {
	conn, err := t.seat(ctx)
	if err != nil {
		return 0, err
	}
	if n := conn.Seat().Size; n > 0 {
		return n, nil
	}
	info, err := t.c.RoomInfo(ctx, t.room)
	return info.Size, err
}

// seat claims the seat once; a failed claim is retried by the next call.
func (t *RelaySeat) seat(ctx context.Context) (*relay.Conn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn != nil {
		return t.conn, nil
	}
	if t.id == nil {
		return nil, fmt.Errorf("relay: room %s: the seat was left", t.room)
	}
	conn, err := t.c.Join(ctx, t.room, t.id, t.members)
	if err != nil {
		return nil, err
	}
	t.conn, t.id = conn, nil // the identity is not needed any more
	return conn, nil
}

// Send posts body to `to`, or to every other member for envelope.Broadcast.
func (t *RelaySeat) Send(ctx context.Context, to envelope.Party, body []byte) error {
	conn, err := t.seat(ctx)
	if err != nil {
		return err
	}
	name := ""
	if !to.IsBroadcast() {
		name = hex.EncodeToString(to[:])
	}
	return conn.Send(ctx, name, body)
}

// Recv returns the next envelope for this party.
func (t *RelaySeat) Recv(ctx context.Context) ([]byte, error) {
	conn, err := t.seat(ctx)
	if err != nil {
		return nil, err
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
	if rs, ok := tr.(*RelaySeat); ok {
		rs.setReadAhead(n, true)
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
	conn := t.conn
	t.id = nil
	t.stopped = true
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
	return err
}
