package ceremony

import (
	"context"
	"encoding/hex"

	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/relay"
)

// relayTransport carries envelopes through a relay room; the relay-level
// sender and recipient names are the parties' keygen_ids in hex.
type relayTransport struct{ conn *relay.Conn }

// RelayTransport joins room on the relay as me.
func RelayTransport(c *relay.Client, room string, me envelope.Party) Transport {
	return &relayTransport{conn: c.Join(room, hex.EncodeToString(me[:]))}
}

func (t *relayTransport) Send(ctx context.Context, to envelope.Party, body []byte) error {
	name := ""
	if !to.IsBroadcast() {
		name = hex.EncodeToString(to[:])
	}
	return t.conn.Send(ctx, name, body)
}

func (t *relayTransport) Recv(ctx context.Context) ([]byte, error) {
	m, err := t.conn.Recv(ctx)
	if err != nil {
		return nil, err
	}
	return m.Body, nil
}
