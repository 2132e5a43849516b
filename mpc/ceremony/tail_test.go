package ceremony

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/tail"
	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/envelope"
)

// heldTail is a tail.Runner that holds deferred work until release, as the
// daemon does until the answer is written.
type heldTail struct {
	mu   sync.Mutex
	held []func()
}

func (h *heldTail) Defer(f func()) {
	h.mu.Lock()
	h.held = append(h.held, f)
	h.mu.Unlock()
}

// release runs the held work, each in its own goroutine, and waits for it.
func (h *heldTail) release() int {
	h.mu.Lock()
	held := h.held
	h.held = nil
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, f := range held {
		wg.Go(f)
	}
	wg.Wait()
	return len(held)
}

// tailSpy records a party's posts (by round) and its leave.
type tailSpy struct {
	*RelaySeat
	mu sync.Mutex
	ev []string
}

func (s *tailSpy) Send(ctx context.Context, to envelope.Party, raw []byte) error {
	if e, err := envelope.Unmarshal(raw); err == nil {
		s.add(fmt.Sprintf("post %#x", e.Round))
	}
	return s.RelaySeat.Send(ctx, to, raw)
}

func (s *tailSpy) Leave(ctx context.Context) error {
	s.add("leave")
	return s.RelaySeat.Leave(ctx)
}

func (s *tailSpy) add(e string) {
	s.mu.Lock()
	s.ev = append(s.ev, e)
	s.mu.Unlock()
}

func (s *tailSpy) events() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ev)
}

// TestCertifiedTailDeferred: a certified ceremony returns with its
// certificate's broadcast and its leave handed to the context's
// tail.Runner, not done: the caller answers first. Released, each party
// posts the certificate and then leaves.
func TestCertifiedTailDeferred(t *testing.T) {
	addr := testkit.Relay(t)
	for _, kind := range []string{"import", "keygen"} {
		t.Run(kind, func(t *testing.T) {
			q := newQuorum(t, addr, 3)
			held := &heldTail{}
			q.ctx = tail.With(context.Background(), held)
			spies := make([]*tailSpy, len(q.ids))
			spy := func(i int, tr *Transport) {
				spies[i] = &tailSpy{RelaySeat: (*tr).(*RelaySeat)}
				*tr = spies[i]
			}
			var out []*importOutcome
			if kind == "import" {
				out = q.runImport(randomScalar(t), 0, 2, 20*time.Second, func(i int, p *ImportParams) { spy(i, &p.Transport) }, nil)
			} else {
				out = q.runKeygen(2, 20*time.Second, func(i int, p *KeygenParams) { spy(i, &p.Transport) }, nil, nil)
			}
			for i, o := range out {
				if o.err != nil || o.state() != "ready" {
					t.Fatalf("party %d: %v (%s)", i, o.err, o.state())
				}
				if ev := spies[i].events(); slices.Contains(ev, "post 0xf1") || slices.Contains(ev, "leave") {
					t.Fatalf("party %d posted its certificate or left before its caller's answer: %v", i, ev)
				}
			}
			if n := held.release(); n != 2*len(q.ids) {
				t.Fatalf("%d pieces of work deferred, want a certificate post and a leave per party", n)
			}
			for i, s := range spies {
				ev := s.events()
				if c, l := slices.Index(ev, "post 0xf1"), slices.Index(ev, "leave"); c < 0 || l < c {
					t.Fatalf("party %d after the answer: %v, want the certificate's post, then the leave", i, ev)
				}
			}
		})
	}
}
