package testkit

import (
	"context"
	"sync"

	"github.com/quorumd/quorumd/mpc/envelope"
)

// Transport is ceremony.Transport, restated so that ceremony's own tests
// can use the Refuser (testkit cannot import ceremony).
type Transport interface {
	Send(ctx context.Context, to envelope.Party, body []byte) error
	Recv(ctx context.Context) ([]byte, error)
}

// RefuserRounds are the ceremony rounds a Refuser works on.
type RefuserRounds struct {
	// Replace is the broadcast the refused seat gets a refusal in place of
	// (the prepared announcement, or the transcript signature); Last is
	// the last broadcast round withheld from it after that (the
	// certificate); Signature is the transcript signature's round; Refuse
	// is the refusal notice's round.
	Replace, Last, Signature, Refuse uint8
}

// Refuser plays a Byzantine ceremony member through its transport: its
// broadcast of round Replace goes to every seat but one, which gets a
// signed refusal in its place (same channel and sequence number, so the
// inbox takes it), and no broadcast of a later round up to Last. When
// Replace is the transcript signature's round, the refusal is held back
// until the refused party's own signature reached this member, so it
// arrives after that party signed: where a refusal proves nothing.
type Refuser struct {
	Transport
	id     *envelope.Identity
	seats  []envelope.Party // the room's seats but this member's
	refuse envelope.Party
	rounds RefuserRounds

	mu     sync.Mutex
	held   []byte
	signed bool // the refused party's signature reached this member
	sent   bool
}

// NewRefuser wraps member id's transport tr in a room of seats (id's own
// included) so that it refuses to seat refuse.
func NewRefuser(tr Transport, id *envelope.Identity, seats []envelope.Party, refuse envelope.Party, rounds RefuserRounds) *Refuser {
	var others []envelope.Party
	for _, s := range seats {
		if s != id.Public() {
			others = append(others, s)
		}
	}
	return &Refuser{Transport: tr, id: id, seats: others, refuse: refuse, rounds: rounds}
}

// Send implements Transport.
func (r *Refuser) Send(ctx context.Context, to envelope.Party, body []byte) error {
	e, err := envelope.Unmarshal(body)
	if err != nil || !to.IsBroadcast() || e.Round < r.rounds.Replace || e.Round > r.rounds.Last {
		return r.Transport.Send(ctx, to, body)
	}
	for _, s := range r.seats {
		if s == r.refuse {
			continue
		}
		if err := r.Transport.Send(ctx, s, body); err != nil {
			return err
		}
	}
	if e.Round != r.rounds.Replace {
		return nil
	}
	e.Round = r.rounds.Refuse
	e.Payload = append(make([]byte, envelope.PartySize), "durable write failed"...)
	d := e.Digest()
	if e.Sig, err = r.id.Sign(d[:], [32]byte{}); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.signed && r.rounds.Replace == r.rounds.Signature {
		r.held = e.Marshal()
		return nil
	}
	r.sent = true
	return r.Transport.Send(ctx, r.refuse, e.Marshal())
}

// Recv implements Transport.
func (r *Refuser) Recv(ctx context.Context) ([]byte, error) {
	raw, err := r.Transport.Recv(ctx)
	if err != nil {
		return raw, err
	}
	if e, err := envelope.Unmarshal(raw); err == nil && e.From == r.refuse && e.Round == r.rounds.Signature {
		r.mu.Lock()
		r.signed = true
		held := r.held
		r.held, r.sent = nil, r.sent || held != nil
		r.mu.Unlock()
		if held != nil {
			if err := r.Transport.Send(ctx, r.refuse, held); err != nil {
				return nil, err
			}
		}
	}
	return raw, nil
}

// Refused reports whether the refusal went out.
func (r *Refuser) Refused() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent
}

// Identity returns the Byzantine member's identity.
func (r *Refuser) Identity() *envelope.Identity { return r.id }

// Leave leaves the room when the wrapped transport can (ceremony.Leaver).
func (r *Refuser) Leave(ctx context.Context) error {
	if l, ok := r.Transport.(interface{ Leave(context.Context) error }); ok {
		return l.Leave(ctx)
	}
	return nil
}
