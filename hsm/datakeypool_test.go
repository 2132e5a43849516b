package hsm_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumd/quorumd/hsm"
)

var poolSeq atomic.Int64

func poolID() string { return fmt.Sprintf("pool-test-%d-%d", time.Now().UnixNano(), poolSeq.Add(1)) }

// waitFor polls cond for up to a minute (generous on a loaded machine).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func tokenDataKeys(t *testing.T, h *hsm.HSM) map[string]bool {
	t.Helper()
	dks, err := h.DataKeys()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, d := range dks {
		m[d.KeyID] = true
	}
	return m
}

// TestDataKeyPool: the pool fills to its size on the token, concurrent
// takers never get the same key, every key taken seals, the pool refills,
// and Close destroys exactly the keys still pooled.
func TestDataKeyPool(t *testing.T) {
	h := mustOpen(t, cfgFor(tok.main, "wrap-a"))
	const size = 4
	p := hsm.NewDataKeyPool(h, hsm.DataKeyPoolConfig{Size: size, MaxAge: time.Hour, NewID: poolID, Log: func(err error) { t.Errorf("pool: %v", err) }})
	waitFor(t, "the pool to fill", func() bool { return p.Len() == size })

	var mu sync.Mutex
	var taken []string
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if id, ok := p.Take(); ok {
				mu.Lock()
				taken = append(taken, id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(taken) < size {
		t.Fatalf("took %d keys from a full pool of %d", len(taken), size)
	}
	slices.Sort(taken)
	if len(slices.Compact(slices.Clone(taken))) != len(taken) {
		t.Fatalf("a key was handed out twice: %v", taken)
	}
	for _, id := range taken {
		if _, err := h.SealFor(id, []byte("secret"), []byte("aad")); err != nil {
			t.Fatalf("sealing under taken key %s: %v", id, err)
		}
	}
	waitFor(t, "the pool to refill", func() bool { return p.Len() == size })
	before := tokenDataKeys(t, h)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Take(); ok {
		t.Fatal("Take after Close handed a key out")
	}
	after := tokenDataKeys(t, h)
	for _, id := range taken {
		if !after[id] {
			t.Errorf("Close destroyed taken key %s", id)
		}
	}
	gone := 0
	for id := range before {
		if !after[id] {
			gone++
		}
	}
	if gone != size {
		t.Errorf("Close destroyed %d keys, want the %d pooled", gone, size)
	}
	for _, id := range taken {
		if err := h.DestroyDataKey(id); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeMaker records what a pool makes and destroys, and when.
type fakeMaker struct {
	mu        sync.Mutex
	created   map[string]time.Time
	destroyed map[string]bool
}

func (f *fakeMaker) CreateNewDataKey(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created[id] = time.Now()
	return nil
}

func (f *fakeMaker) DestroyDataKey(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.destroyed[id] = true
	return nil
}

// TestDataKeyPoolMaxAge: a pool never hands out a key older than its
// maximum age, and destroys keys that reached it unused (so that the orphan
// sweep, whose grace is longer, never races a hand-out).
func TestDataKeyPoolMaxAge(t *testing.T) {
	f := &fakeMaker{created: map[string]time.Time{}, destroyed: map[string]bool{}}
	const maxAge = 100 * time.Millisecond
	p := hsm.NewDataKeyPool(f, hsm.DataKeyPoolConfig{Size: 2, MaxAge: maxAge, NewID: poolID})
	defer p.Close()
	waitFor(t, "the pool to fill", func() bool { return p.Len() == 2 })
	f.mu.Lock()
	var first []string
	for id := range f.created {
		first = append(first, id)
	}
	f.mu.Unlock()
	waitFor(t, "the first keys to be destroyed unused", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.destroyed[first[0]] && f.destroyed[first[1]]
	})
	for range 20 {
		id, ok := p.Take()
		if !ok {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		f.mu.Lock()
		age, destroyed := time.Since(f.created[id]), f.destroyed[id]
		f.mu.Unlock()
		if destroyed || age >= maxAge+time.Second {
			t.Fatalf("handed out %s aged %s (destroyed %t)", id, age, destroyed)
		}
	}
}

// TestDataKeyPoolWaitsWhileBusy: no key is made while Busy says a ceremony
// runs; the pool fills once it stops.
func TestDataKeyPoolWaitsWhileBusy(t *testing.T) {
	f := &fakeMaker{created: map[string]time.Time{}, destroyed: map[string]bool{}}
	var busy atomic.Bool
	busy.Store(true)
	p := hsm.NewDataKeyPool(f, hsm.DataKeyPoolConfig{Size: 2, MaxAge: time.Hour, NewID: poolID, Busy: busy.Load})
	defer p.Close()
	time.Sleep(50 * time.Millisecond)
	f.mu.Lock()
	made := len(f.created)
	f.mu.Unlock()
	if made != 0 {
		t.Fatalf("made %d keys while busy", made)
	}
	busy.Store(false)
	waitFor(t, "the pool to fill", func() bool { return p.Len() == 2 })
}
