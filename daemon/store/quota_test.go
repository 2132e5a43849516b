package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/quorumd/quorumd/daemon/store"
)

// testQuotaIsAtomic: 20 concurrent CreateSlot calls of one owner under
// quota 2 store exactly 2, in every backend (bbolt's group commit puts
// several in one transaction; PostgreSQL runs them in parallel sessions);
// deleting one frees a place; other owners are unaffected.
func testQuotaIsAtomic(t *testing.T, b backend) {
	s, _ := b.open(t)
	slot := func(owner string, i int) store.Slot {
		sl := fxSlot(fmt.Sprintf("%s-%02d", owner, i))
		sl.Owner, sl.Quota = owner, 2
		return sl
	}
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() { errs[i] = s.CreateSlot(ctx, slot("alice", i)) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrQuotaExceeded):
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if n, err := s.CountByOwner(ctx, "alice"); ok != 2 || n != 2 || err != nil {
		t.Fatalf("%d creations succeeded, %d stored (%v), want 2", ok, n, err)
	}
	if err := s.CreateSlot(ctx, slot("bob", 0)); err != nil {
		t.Fatalf("another owner: %v", err)
	}
	recs, err := s.ListByOwner(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "alice", recs[0].KeyID); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSlot(ctx, slot("alice", 90)); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
	if err := s.CreateSlot(ctx, slot("alice", 91)); !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("third live key: %v", err)
	}
	unlimited := slot("alice", 92)
	unlimited.Quota = 0
	if err := s.CreateSlot(ctx, unlimited); err != nil {
		t.Fatalf("quota 0 means no limit: %v", err)
	}
}
