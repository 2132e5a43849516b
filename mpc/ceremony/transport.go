package ceremony

import (
	"context"

	"github.com/quorumd/quorumd/mpc/envelope"
)

// Transport carries opaque envelopes between the parties of one room. It need
// not be trusted: envelopes are authenticated end to end.
type Transport interface {
	// Send posts body to one party, or to all others when to is
	// envelope.Broadcast.
	Send(ctx context.Context, to envelope.Party, body []byte) error
	// Recv returns the next envelope addressed to this party (or broadcast by
	// another), in the transport's order; it honours ctx's deadline.
	Recv(ctx context.Context) ([]byte, error)
}
