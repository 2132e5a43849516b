package ceremony

import (
	"context"
	"encoding/hex"
	"sync"

	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/relay"
)

// RelaySeat carries envelopes through a relay room, from the seat this
// party claims with its identity key; relay-level sender and recipient names
// are the parties' keygen_ids in hex. The seat is claimed on first use, so
// the claim's time is fresh; Leave (called by the ceremony when it ends)
// gives the seat up.
type RelaySeat struct {
	c       *relay.Client
	room    string
	id      relay.Signer
	members []envelope.Party

	mu   sync.Mutex
	conn *relay.Conn
}

// RelayTransport returns the transport of party id in room, among members:
// the ceremony's keygen_ids as every honest member knows them (an import's
// parties, or a key's parties for signing), id's own included. id must stay
// usable until the first Send or Recv.
func RelayTransport(c *relay.Client, room string, id *envelope.Identity, members []envelope.Party) *RelaySeat {
	return &RelaySeat{c: c, room: room, id: id, members: members}
}

// seat claims the seat once; a failed claim is retried by the next call.
func (t *RelaySeat) seat(ctx context.Context) (*relay.Conn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn != nil {
		return t.conn, nil
	}
	conn, err := t.c.Join(ctx, t.room, t.id, t.members)
	if err != nil {
		return nil, err
	}
	t.conn, t.id = conn, nil // the identity is not needed any more
	return conn, nil
}

// Claim takes the seat now rather than at the first Send or Recv, so a
// party with work to do before its first message can overlap the claim's
// round trip with it (Claimer).
func (t *RelaySeat) Claim(ctx context.Context) error {
	_, err := t.seat(ctx)
	return err
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
	m, err := conn.Recv(ctx)
	if err != nil {
		return nil, err
	}
	return m.Body, nil
}

// Leave gives up the seat if one was taken, so the relay frees the room as
// soon as every member is done instead of at its TTL (Leaver).
func (t *RelaySeat) Leave(ctx context.Context) error {
	t.mu.Lock()
	conn := t.conn
	t.id = nil
	t.mu.Unlock()
	if conn == nil {
		return nil
	}
	return conn.Leave(ctx)
}
