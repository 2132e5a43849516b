package ceremony

import (
	"context"
	"fmt"
	"slices"

	"github.com/quorumd/quorumd/mpc/envelope"
)

// MemoryRoom carries envelopes between parties of one process through
// channels: a transport that costs nothing, so a run over it measures the
// ceremonies' own compute (the bench floor, the CPU benchmarks).
type MemoryRoom struct {
	index map[envelope.Party]int
	inbox []chan []byte
}

// NewMemoryRoom returns a room for ids; each inbox holds perParty envelopes
// before a send waits (room enough that a ceremony's sends never do).
func NewMemoryRoom(ids []*envelope.Identity, perParty int) *MemoryRoom {
	r := &MemoryRoom{index: map[envelope.Party]int{}}
	for i, id := range ids {
		r.index[id.Public()] = i
		r.inbox = append(r.inbox, make(chan []byte, perParty))
	}
	return r
}

// Transport is party i's seat in the room.
func (r *MemoryRoom) Transport(i int) Transport { return &memorySeat{r: r, me: i} }

type memorySeat struct {
	r  *MemoryRoom
	me int
}

func (t *memorySeat) deliver(ctx context.Context, j int, b []byte) error {
	select {
	case t.r.inbox[j] <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *memorySeat) Send(ctx context.Context, to envelope.Party, body []byte) error {
	b := slices.Clone(body)
	if to.IsBroadcast() {
		for j := range t.r.inbox {
			if j != t.me {
				if err := t.deliver(ctx, j, b); err != nil {
					return err
				}
			}
		}
		return nil
	}
	j, ok := t.r.index[to]
	if !ok {
		return fmt.Errorf("ceremony: no party %x in the room", to[:4])
	}
	return t.deliver(ctx, j, b)
}

func (t *memorySeat) Recv(ctx context.Context) ([]byte, error) {
	select {
	case b := <-t.r.inbox[t.me]:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
