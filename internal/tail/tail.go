// Package tail runs the work a request leaves behind once its answer is
// out: a ceremony's certificate broadcast, its seat's leave, a lazy ready
// mark. Done at the moment the answer is written, that work competes with
// writing it; the HTTP layer (package daemon) puts a Runner in each
// request's context that starts it after the answer was written and
// flushed, and the code that has such work calls Go.
package tail

import "context"

// Runner starts a request's deferred work after its answer.
type Runner interface {
	// Defer runs f once, in a goroutine of its own, after the answer of the
	// request (at once if that was already written). f must not wait for
	// anything that waits for the answer.
	Defer(f func())
}

type ctxKey struct{}

// With returns ctx carrying r: Go on ctx (or a context derived from it)
// defers to r.
func With(ctx context.Context, r Runner) context.Context {
	return context.WithValue(ctx, ctxKey{}, r)
}

// Go runs f after the answer of the request ctx belongs to, or at once in
// a goroutine when ctx carries no Runner (tests, the Go client's own
// ceremonies).
func Go(ctx context.Context, f func()) {
	if r, ok := ctx.Value(ctxKey{}).(Runner); ok && r != nil {
		r.Defer(f)
		return
	}
	go f()
}
