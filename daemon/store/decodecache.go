package store

import (
	"bytes"
	"sync"
)

// A sign reads its key's record twice (the HTTP layer's state and rules
// check, then the key service), and every read paid the full JSON decode
// and the state's invariant checks (curve points of every party: most of a
// read at 100 parties). decodeCache keeps the decoded form of recently read
// records keyed by key id and answers only when the stored bytes are
// byte-for-byte those it decoded, so a write is never served stale. Records
// hold public data and sealed blobs only, never plaintext secrets; callers
// get deep copies, so no caller can change what another one reads.
type decodeCache struct {
	mu      sync.Mutex
	entries map[string]*decoded
	bytes   int
}

type decoded struct {
	raw []byte
	r   Record
}

const (
	decodeCacheEntries  = 4096
	decodeCacheBytes    = 16 << 20
	decodeCacheMaxEntry = 1 << 20
)

var records = &decodeCache{entries: make(map[string]*decoded)}

// decode parses raw (stored under keyID) through the cache.
func (c *decodeCache) decode(keyID, raw []byte) (Record, error) {
	c.mu.Lock()
	e := c.entries[string(keyID)]
	c.mu.Unlock()
	if e != nil && bytes.Equal(e.raw, raw) {
		return e.r.clone(), nil
	}
	r, err := decodeRecord(keyID, raw)
	if err != nil || len(raw) > decodeCacheMaxEntry {
		return r, err
	}
	c.put(string(keyID), &decoded{raw: bytes.Clone(raw), r: r.clone()})
	return r, nil
}

func (c *decodeCache) put(k string, e *decoded) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.entries[k]; old != nil {
		c.bytes -= len(old.raw)
	}
	// Evict arbitrary entries (map order) until the new one fits: a scan
	// (ListAll, scrub) must not grow the cache past its bounds.
	for k2, old := range c.entries {
		if len(c.entries) < decodeCacheEntries && c.bytes+len(e.raw) <= decodeCacheBytes {
			break
		}
		if k2 != k {
			c.bytes -= len(old.raw)
			delete(c.entries, k2)
		}
	}
	c.entries[k] = e
	c.bytes += len(e.raw)
}

// clone is a deep copy of r: no byte slice is shared.
func (r Record) clone() Record {
	c := r
	c.KeygenID = clone(r.KeygenID)
	c.SealedIdentityKey = clone(r.SealedIdentityKey)
	c.KeygenIDs = cloneEach(r.KeygenIDs)
	c.PublicShares = cloneEach(r.PublicShares)
	c.PublicKey = clone(r.PublicKey)
	c.SealedShare = clone(r.SealedShare)
	c.Transcript = clone(r.Transcript)
	c.RecoveryData = clone(r.RecoveryData)
	c.RefusedBy = clone(r.RefusedBy)
	return c
}

// cloneEach is cloneAll keeping nil as nil, so a copy equals its source.
func cloneEach(s [][]byte) [][]byte {
	if s == nil {
		return nil
	}
	return cloneAll(s)
}
