package hsm

// ForgetDataKeys empties the data-key cache, so the next use finds the key
// on the token again (benchmarks of the uncached path).
func (h *HSM) ForgetDataKeys() {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if st := h.st; st != nil {
		st.dkMu.Lock()
		clear(st.dataKeys)
		st.dkMu.Unlock()
	}
}
