package quorum

import (
	"bytes"
	"encoding/binary"
	"sync"

	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/mpc/ceremony"
)

// keyCache keeps the parsed public part of recently signed keys (KeyInfo
// and certificate): parsing it checks every party's point (a square root
// each, twice: keygen_ids and recovery data), ≈0.1 ms per sign at 2-of-3
// and milliseconds at 67-of-100. An entry is used only while the record's
// public fields are byte for byte those it was parsed from, so a refresh,
// a ready mark or a delete and re-import is never served stale. It holds
// public data only.
type keyCache struct {
	mu sync.Mutex
	m  map[string]*parsedKey
}

type parsedKey struct {
	src  []byte // publicFields of the record parsed
	key  *ceremony.KeyInfo
	cert ceremony.Certificate
}

// maxCachedKeys bounds the cache; beyond it, it starts over (a daemon signs
// with few hot keys; parsing stays correct, only slower, for the rest).
const maxCachedKeys = 4096

// get returns r's parsed public part, from the cache while r's public
// fields are unchanged. Callers share the KeyInfo and must not modify it.
func (c *keyCache) get(r store.Record) (*ceremony.KeyInfo, ceremony.Certificate, error) {
	src := publicFields(r)
	c.mu.Lock()
	e := c.m[r.KeyID]
	c.mu.Unlock()
	if e != nil && bytes.Equal(e.src, src) {
		return e.key, e.cert, nil
	}
	key, cert, err := parseKey(r)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedKeys {
		c.m = map[string]*parsedKey{}
	}
	c.m[r.KeyID] = &parsedKey{src: src, key: key, cert: cert}
	c.mu.Unlock()
	return key, cert, nil
}

// parseKey parses r's KeyInfo and, when ready, its certificate.
func parseKey(r store.Record) (*ceremony.KeyInfo, ceremony.Certificate, error) {
	cert, err := certificateOf(r)
	if err != nil {
		return nil, nil, err
	}
	key, err := keyInfo(r)
	if err != nil {
		return nil, nil, err
	}
	return key, cert, nil
}

// publicFields encodes every field keyInfo and certificateOf read,
// length-prefixed so that no two records encode alike.
func publicFields(r store.Record) []byte {
	n := 64 + len(r.PublicKey) + len(r.Transcript) + len(r.RecoveryData) + len(r.Source) + len(r.State)
	for i := range r.KeygenIDs {
		n += 4 + len(r.KeygenIDs[i])
	}
	for i := range r.PublicShares {
		n += 4 + len(r.PublicShares[i])
	}
	b := make([]byte, 0, n)
	field := func(x []byte) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(x)))
		b = append(b, x...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(r.T))
	b = binary.BigEndian.AppendUint32(b, uint32(r.N))
	field([]byte(r.Source))
	field([]byte(r.State))
	field(r.PublicKey)
	field(r.Transcript)
	field(r.RecoveryData)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.KeygenIDs)))
	for _, x := range r.KeygenIDs {
		field(x)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.PublicShares)))
	for _, x := range r.PublicShares {
		field(x)
	}
	return b
}
