package ceremony

import (
	"context"
	"time"

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

// Leaver is a Transport that can leave its room. A ceremony leaves once it
// ended (success or not, after its last broadcast), so the relay need not
// hold the room for its whole TTL. Optional: the relay transport
// implements it.
type Leaver interface {
	Leave(ctx context.Context) error
}

// leaveTimeout bounds the best-effort leave at a ceremony's end.
const leaveTimeout = 2 * time.Second

// leave leaves tr's room if tr can; failures are the relay's to expire.
func leave(tr Transport) {
	l, ok := tr.(Leaver)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	_ = l.Leave(ctx)
}

// leaveLater is leave in the background, for a ceremony whose outcome does
// not depend on the relay hearing it leave.
func leaveLater(tr Transport) {
	if _, ok := tr.(Leaver); ok {
		go leave(tr)
	}
}
