package ceremony

import (
	"context"
	"time"

	"github.com/quorumd/quorumd/internal/tail"
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

// Claimer is a Transport that can take its place in the room ahead of its
// first message (the relay transport: a signed seat claim, a round trip).
// Optional; a failed claim is retried by the first Send or Recv.
type Claimer interface {
	Claim(ctx context.Context) error
}

// claimAhead starts tr's claim in the background, if tr has one, to
// overlap it with work done before the first message. The claim signs with
// the party's identity key, which its caller zeroes once the ceremony
// returns: the ceremony calls the returned wait before it does.
func claimAhead(ctx context.Context, tr Transport) (wait func()) {
	c, ok := tr.(Claimer)
	if !ok {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Claim(ctx)
	}()
	return func() { <-done }
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

// leaveLater is leave after the caller's answer (tail.Go), for a ceremony
// whose outcome does not depend on the relay hearing it leave.
func leaveLater(ctx context.Context, tr Transport) {
	if _, ok := tr.(Leaver); ok {
		tail.Go(ctx, func() { leave(tr) })
	}
}
