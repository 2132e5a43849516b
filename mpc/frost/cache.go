package frost

import "sync"

// boundedCache remembers up to size values by key, evicting the oldest. It
// holds results of pure functions of public inputs only (validated signers
// contexts, session values), so a hit returns exactly what recomputing would.
type boundedCache[V any] struct {
	mu    sync.Mutex
	size  int
	m     map[string]V
	order []string // insertion order
}

func newBoundedCache[V any](size int) *boundedCache[V] {
	return &boundedCache[V]{size: size, m: make(map[string]V, size)}
}

func (c *boundedCache[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[key]
	return v, ok
}

func (c *boundedCache[V]) put(key string, v V) {
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
