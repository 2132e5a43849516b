package daemon

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Phases is a wall-clock trace of one request: when each of its phases
// (authorization, store reads, HSM calls, each ceremony message) ended. It
// exists only at log level debug, where a ceremony's handler logs it, so
// that an operator can see where a slow call waits; otherwise MarkPhase
// costs one context lookup.
type Phases struct {
	mu    sync.Mutex
	start time.Time
	marks []phaseMark
}

type phaseMark struct {
	name string
	at   time.Duration
}

type phasesKey struct{}

// WithPhases starts a trace carried by the returned context.
func WithPhases(ctx context.Context) (context.Context, *Phases) {
	p := &Phases{start: time.Now()}
	return context.WithValue(ctx, phasesKey{}, p), p
}

// MarkPhase records that the phase name ended now, if ctx carries a trace.
func MarkPhase(ctx context.Context, name string) {
	if p, ok := ctx.Value(phasesKey{}).(*Phases); ok {
		p.Mark(name)
	}
}

// Tracing reports whether ctx carries a trace (to skip work that only
// names a phase).
func Tracing(ctx context.Context) bool {
	_, ok := ctx.Value(phasesKey{}).(*Phases)
	return ok
}

// Mark records that the phase name ended now.
func (p *Phases) Mark(name string) {
	if p == nil {
		return
	}
	at := time.Since(p.start)
	p.mu.Lock()
	p.marks = append(p.marks, phaseMark{name, at})
	p.mu.Unlock()
}

// String lists each phase with its own duration in ms (since the previous
// mark), then the total: "auth=0.12 read=0.05 … total=8.10".
func (p *Phases) String() string {
	if p == nil {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	var prev time.Duration
	for _, m := range p.marks {
		fmt.Fprintf(&b, "%s=%.2f ", m.name, float64((m.at-prev).Microseconds())/1000)
		prev = m.at
	}
	fmt.Fprintf(&b, "total=%.2f", float64(time.Since(p.start).Microseconds())/1000)
	return b.String()
}
