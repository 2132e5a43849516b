package bounded

import (
	"sync"
	"testing"
)

// TestEviction: at most size entries, the oldest leave first, a second
// Put of a key keeps the first value.
func TestEviction(t *testing.T) {
	c := New[int, string](3)
	for i := range 5 {
		c.Put(i, string(rune('a'+i)))
	}
	for i := range 5 {
		v, ok := c.Get(i)
		if ok != (i >= 2) || (ok && v != string(rune('a'+i))) {
			t.Fatalf("key %d: %q %v", i, v, ok)
		}
	}
	c.Put(4, "other")
	if v, _ := c.Get(4); v != "e" {
		t.Fatalf("second Put replaced the value: %q", v)
	}
	if len(c.m) != 3 || len(c.order) != 3 {
		t.Fatalf("%d entries, %d in order", len(c.m), len(c.order))
	}
}

// TestConcurrent (run under -race): gets and puts from many goroutines.
func TestConcurrent(t *testing.T) {
	c := New[int, int](16)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				c.Put(i%40, (i%40)*2)
				if v, ok := c.Get((i + g) % 40); ok && v != ((i+g)%40)*2 {
					t.Errorf("key %d: %d", (i+g)%40, v)
					return
				}
			}
		})
	}
	wg.Wait()
}
