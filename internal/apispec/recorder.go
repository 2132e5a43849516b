package apispec

import (
	"sync"
	"testing"
)

// Recorder collects violations and fails its test at cleanup, naming each.
type Recorder struct {
	t    testing.TB
	mu   sync.Mutex
	errs []error
}

// NewRecorder returns a Recorder that reports to t when t's test ends.
func NewRecorder(t testing.TB) *Recorder {
	r := &Recorder{t: t}
	t.Cleanup(r.flush)
	return r
}

// Report records one violation (safe for concurrent use).
func (r *Recorder) Report(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

// Violations returns what was recorded so far.
func (r *Recorder) Violations() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

func (r *Recorder) flush() {
	for _, err := range r.Violations() {
		r.t.Errorf("%v", err)
	}
}
