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

// TokenContext identifies the current crypto11 context, so tests can tell
// whether an operation dropped it (and reconnected).
func (h *HSM) TokenContext() any {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.st
}

// CacheDataKeyAs makes keyID's cache entry name otherKeyID's object, as a
// module that reused a destroyed object's handle for another object would,
// in an entry a lookup made (a key this process minted is not checked:
// checkCachedLabel says why).
func (h *HSM) CacheDataKeyAs(keyID, otherKeyID string) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	st := h.st
	st.dkMu.Lock()
	defer st.dkMu.Unlock()
	c := st.dataKeys[DataKeyLabel(otherKeyID)]
	c.minted = false
	st.dataKeys[DataKeyLabel(keyID)] = c
}
