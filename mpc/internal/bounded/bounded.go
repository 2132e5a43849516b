// Package bounded is the small cache the crypto packages keep results of
// pure functions of public inputs in (validated signer sets, session
// values, tweak contexts, parsed public keys): up to a fixed number of
// entries, the oldest evicted first, safe for concurrent use. A hit
// returns exactly what recomputing would; nothing secret goes in.
package bounded

import "sync"

// Cache remembers up to size values by key, evicting the oldest.
type Cache[K comparable, V any] struct {
	mu    sync.Mutex
	size  int
	m     map[K]V
	order []K // insertion order
}

// New returns an empty cache of at most size entries.
func New[K comparable, V any](size int) *Cache[K, V] {
	return &Cache[K, V]{size: size, m: make(map[K]V, size)}
}

// Get returns the value for key, if remembered.
func (c *Cache[K, V]) Get(key K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[key]
	return v, ok
}

// Put remembers v for key, unless key is already there (the first value
// stays: values are pure functions of their keys).
func (c *Cache[K, V]) Put(key K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; ok {
		return
	}
	if len(c.order) >= c.size {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.m[key] = v
	c.order = append(c.order, key)
}
