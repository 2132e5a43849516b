package daemon

import (
	"context"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/quorumd/quorumd/internal/tail"
)

// A ceremony leaves work behind when it returns: the certificate's
// broadcast to the room, the seat's leave, the lazy ready mark (a store
// commit). None of it is part of the answer (DESIGN §3: the 200 needs the
// certificate and the durable pending record, both held before the
// handler returns), but started the moment the ceremony returns it
// competes with writing the answer on a loaded machine. So each request's
// context carries a tail.Runner (its requestTails) that holds such work
// until the answer is out:
//
//   - when the handler returns, the held work is armed on the connection
//     (wipingConn.arm) and started right after the connection's next
//     write returns: fasthttp flushes the answer in one write once the
//     handler returned, so that is the answer written and flushed, or its
//     write failed (an answer larger than fasthttp's write buffer, 4 KiB,
//     e.g. a long batch sign's, goes out in several writes: its tail
//     starts after the first);
//   - a connection that is closed first (the client went away), or that
//     reads the next request first (a pipelined request keeps fasthttp from
//     flushing), starts it then: a read of the key on the same connection
//     must not wait for a mark still held;
//   - a request not served through a wipingConn starts it when its
//     handler returns.
//
// So held work always starts, once, whatever happened to the answer (a
// handler that panicked answers 500 through the same path). Shutdown waits
// for all of it to end.

// requestTails is one request's tail.Runner.
type requestTails struct {
	g       *tailGroup
	mu      sync.Mutex
	held    []func()
	started bool
}

// Defer implements tail.Runner.
func (t *requestTails) Defer(f func()) {
	t.g.add()
	t.mu.Lock()
	if !t.started {
		t.held = append(t.held, f)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	go t.g.run(f)
}

// start starts the held work; work deferred later starts at once.
// Idempotent and safe from any goroutine.
func (t *requestTails) start() {
	t.mu.Lock()
	held := t.held
	t.held, t.started = nil, true
	t.mu.Unlock()
	for _, f := range held {
		go t.g.run(f)
	}
}

func (t *requestTails) holding() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.held) > 0
}

var _ tail.Runner = (*requestTails)(nil)

// armTails hands the request's held work, if any, to its connection, to
// start once the answer is written (see above). With nothing held, work
// deferred later (by a goroutine the handler left) starts at once.
func armTails(rc *reqCtx) {
	if c := wipingOf(rc.fc); c != nil && rc.tails.holding() {
		c.arm(&rc.tails)
		return
	}
	rc.tails.start()
}

// startArmedTails starts the work a previous request on fc's connection
// left armed: fasthttp reads a pipelined request before it flushes the
// previous answer.
func startArmedTails(fc *fasthttp.RequestCtx) {
	if c := wipingOf(fc); c != nil {
		c.startArmed()
	}
}

// tailGroup counts the tail work of every request, held or running, so
// that Shutdown can wait for it.
type tailGroup struct {
	mu   sync.Mutex
	n    int
	idle []chan struct{}
}

func (g *tailGroup) add() {
	g.mu.Lock()
	g.n++
	g.mu.Unlock()
}

func (g *tailGroup) run(f func()) {
	defer g.done()
	f()
}

func (g *tailGroup) done() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n--; g.n == 0 {
		for _, c := range g.idle {
			close(c)
		}
		g.idle = nil
	}
}

// wait returns once no tail work is held or running, or with ctx's error.
func (g *tailGroup) wait(ctx context.Context) error {
	g.mu.Lock()
	if g.n == 0 {
		g.mu.Unlock()
		return nil
	}
	c := make(chan struct{})
	g.idle = append(g.idle, c)
	g.mu.Unlock()
	select {
	case <-c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
