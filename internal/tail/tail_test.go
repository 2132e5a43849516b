package tail

import (
	"context"
	"testing"
	"time"
)

type holder struct{ held []func() }

func (h *holder) Defer(f func()) { h.held = append(h.held, f) }

// TestGo: with a Runner in the context (or a parent of it) the work goes
// to it, untouched; without one it runs at once in a goroutine.
func TestGo(t *testing.T) {
	h := &holder{}
	ctx, cancel := context.WithTimeout(With(context.Background(), h), time.Minute)
	defer cancel()
	ran := make(chan struct{})
	Go(ctx, func() { close(ran) })
	select {
	case <-ran:
		t.Fatal("work ran although the context's Runner holds it")
	default:
	}
	if len(h.held) != 1 {
		t.Fatalf("the Runner holds %d pieces of work, want 1", len(h.held))
	}
	h.held[0]()
	<-ran

	done := make(chan struct{})
	Go(context.Background(), func() { close(done) })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("work without a Runner never ran")
	}
}
