package store_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/quorumd/quorumd/daemon/store"
)

// testBlobs: a named blob is absent (version 0) until created, each swap
// needs the current version and bumps it, a stale or repeated swap is
// ErrConflict and changes nothing, blobs survive a reopen, and bad names
// or sizes are ErrInvalid.
func testBlobs(t *testing.T, b backend) {
	s, reopen := b.open(t)
	if v, ver, err := s.GetBlob(ctx, "a"); v != nil || ver != 0 || err != nil {
		t.Fatalf("absent blob: %q %d %v", v, ver, err)
	}
	if _, err := s.SwapBlob(ctx, "a", 1, []byte("x")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("swap of an absent blob at version 1: %v", err)
	}
	v1, err := s.SwapBlob(ctx, "a", 0, []byte("one"))
	if err != nil || v1 != 1 {
		t.Fatalf("create: %d %v", v1, err)
	}
	if _, err := s.SwapBlob(ctx, "a", 0, []byte("again")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second create: %v", err)
	}
	v2, err := s.SwapBlob(ctx, "a", v1, []byte("two"))
	if err != nil || v2 != 2 {
		t.Fatalf("swap: %d %v", v2, err)
	}
	if _, err := s.SwapBlob(ctx, "a", v1, []byte("stale")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale swap: %v", err)
	}
	if _, err := s.SwapBlob(ctx, "b", 0, []byte("other")); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s)
	if v, ver, err := s.GetBlob(ctx, "a"); string(v) != "two" || ver != 2 || err != nil {
		t.Fatalf("after reopen: %q %d %v", v, ver, err)
	}
	if v, ver, err := s.GetBlob(ctx, "b"); string(v) != "other" || ver != 1 || err != nil {
		t.Fatalf("other blob: %q %d %v", v, ver, err)
	}
	for name, c := range map[string]struct {
		name  string
		ver   int64
		value []byte
	}{
		"empty name":     {"", 0, []byte("x")},
		"long name":      {string(bytes.Repeat([]byte("n"), store.MaxBlobNameLen+1)), 0, []byte("x")},
		"empty value":    {"c", 0, nil},
		"large value":    {"c", 0, make([]byte, store.MaxBlobLen+1)},
		"negative value": {"c", -1, []byte("x")},
	} {
		if _, err := s.SwapBlob(ctx, c.name, c.ver, c.value); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

// testBlobRace: writers that read the same version and swap at once: in
// every round exactly one wins, the others get ErrConflict, and the blob
// holds the winner's value.
func testBlobRace(t *testing.T, b backend) {
	s, _ := b.open(t)
	const writers, rounds = 8, 5
	for round := range rounds {
		_, ver, err := s.GetBlob(ctx, "race")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for i := range writers {
			wg.Go(func() { _, errs[i] = s.SwapBlob(ctx, "race", ver, []byte{byte(round), byte(i)}) })
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: writers %d and %d both won", round, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("round %d: writer %d: %v", round, i, err)
			}
		}
		got, v, err := s.GetBlob(ctx, "race")
		if winner < 0 || err != nil || v != ver+1 || !bytes.Equal(got, []byte{byte(round), byte(winner)}) {
			t.Fatalf("round %d: winner %d, blob %x at version %d (%v)", round, winner, got, v, err)
		}
	}
}

// TestBlobSwapScrubsFile: a replaced blob's old value is not left in the
// bbolt file's free pages.
func TestBlobSwapScrubsFile(t *testing.T) {
	s, path := openStore(t, store.Options{})
	old := make([]byte, 600)
	rand.Read(old)
	v, err := s.SwapBlob(ctx, "k", 0, old)
	if err != nil {
		t.Fatal(err)
	}
	if !fileHas(t, path, old) {
		t.Fatal("the blob is not in the file at all (test is blind)")
	}
	if _, err := s.SwapBlob(ctx, "k", v, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if fileHas(t, path, old) {
		t.Fatalf("the replaced value is still in %s", filepath.Base(path))
	}
}

// TestPostgresBlobsAcrossReplicas: two stores on one database (two
// replicas) see each other's swaps, and a swap from a stale read on the
// other replica is ErrConflict.
func TestPostgresBlobsAcrossReplicas(t *testing.T) {
	dsn := pgSchema(t)
	a, b := openPG(t, dsn), openPG(t, dsn)
	v, err := a.SwapBlob(ctx, "shared", 0, []byte("from a"))
	if err != nil {
		t.Fatal(err)
	}
	got, vb, err := b.GetBlob(ctx, "shared")
	if err != nil || string(got) != "from a" || vb != v {
		t.Fatalf("b reads %q %d %v", got, vb, err)
	}
	if _, err := b.SwapBlob(ctx, "shared", vb, []byte("from b")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SwapBlob(ctx, "shared", v, []byte("stale a")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale swap on a: %v", err)
	}
	if got, _, _ := a.GetBlob(ctx, "shared"); string(got) != "from b" {
		t.Fatalf("a reads %q", got)
	}
}
