package quorum

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

func TestKeyLocksSerialiseAndForget(t *testing.T) {
	var kl keyLocks
	var inside, max atomic.Int32
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock := kl.lock("owner\x00key")
			n := inside.Add(1)
			if n > max.Load() {
				max.Store(n)
			}
			runtime.Gosched() // widen the window a broken lock would show in
			inside.Add(-1)
			unlock()
		}()
	}
	wg.Wait()
	if max.Load() != 1 {
		t.Fatalf("%d holders at once", max.Load())
	}
	if len(kl.locks) != 0 {
		t.Fatalf("%d lock entries left behind", len(kl.locks))
	}
}
