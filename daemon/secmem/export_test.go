package secmem

// Raw exposes the whole mapping to this package's tests, which inspect the
// bytes behind the API (zeroing, layout).
func (a *Arena) Raw() []byte { return a.mem }

// Waiters counts the AcquireN calls queued, so tests can order them.
func (a *Arena) Waiters() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.waiters.Len()
}
