package store_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quorumd/quorumd/daemon/store"
)

// forms are the ways a blob can sit in the file: raw, and base64 inside
// the JSON record.
func forms(blob []byte) [][]byte {
	return [][]byte{blob, []byte(base64.StdEncoding.EncodeToString(blob))}
}

func fileHas(t *testing.T, path string, blobs ...[]byte) bool {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		for _, f := range forms(b) {
			if bytes.Contains(raw, f) {
				return true
			}
		}
	}
	return false
}

// TestDeleteScrubsFile: after Delete returns, no version of the deleted
// record's sealed blobs (as created, as committed, as re-sealed) is left
// anywhere in the store file, while every other record is intact; the
// tombstone keeps only key_id, owner, scheme, state and timestamps.
func TestDeleteScrubsFile(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts store.Options
	}{{"group", store.Options{}}, {"serial", store.Options{SerialCommit: true}}} {
		t.Run(mode.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "keys.db")
			s, err := store.Open(path, mode.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var others []string
			for i := range 60 {
				k := fmt.Sprintf("other-%03d", i)
				others = append(others, k)
				if err := s.CreateSlot(ctx, fxSlot(k)); err != nil {
					t.Fatal(err)
				}
				if i%2 == 0 {
					if err := s.Commit(ctx, fxOwner(k), k, fxCommitment(k)); err != nil {
						t.Fatal(err)
					}
				}
			}
			k := "victim"
			sl, c := fxSlot(k), fxCommitment(k)
			if err := s.CreateSlot(ctx, sl); err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(ctx, sl.Owner, k, c); err != nil {
				t.Fatal(err)
			}
			reShare, reIdent := fxBlob(k, "share-v2"), fxBlob(k, "identity-v2")
			if err := s.Reseal(ctx, k, func(store.Record) ([]byte, []byte, error) { return reShare, reIdent, nil }); err != nil {
				t.Fatal(err)
			}
			versions := [][]byte{sl.SealedIdentityKey, c.SealedShare, reShare, reIdent}
			// The test can fail: before the delete the blobs are in the file.
			if !fileHas(t, path, reShare) || !fileHas(t, path, reIdent) {
				t.Fatal("live blobs not found in the file: the scan is broken")
			}
			if err := s.Delete(ctx, sl.Owner, k); err != nil {
				t.Fatal(err)
			}
			if fileHas(t, path, versions...) {
				t.Fatal("a sealed blob of the deleted record is still in the store file")
			}
			raw, err := store.RawValue(s, k)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"sealed_", "keygen_id", "public_key", "public_shares", `"t":`} {
				if bytes.Contains(raw, []byte(f)) {
					t.Fatalf("tombstone keeps %s: %s", f, raw)
				}
			}
			for _, o := range others {
				r, err := s.Get(ctx, o)
				if err != nil || fxCheck(r) != nil {
					t.Fatalf("%s after scrub: %v %v", o, err, fxCheck(r))
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err = store.Open(path, mode.opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range others {
				if r, err := s.Get(ctx, o); err != nil || fxCheck(r) != nil {
					t.Fatalf("%s after reopen: %v %v", o, err, fxCheck(r))
				}
			}
		})
	}
}

// TestOpenScrubs: freed pages left unscrubbed (a crash between a delete's
// commit and its scrub) are zeroed at open.
func TestOpenScrubs(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.db")
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k := "victim"
	sl := fxSlot(k)
	if err := s.CreateSlot(ctx, sl); err != nil {
		t.Fatal(err)
	}
	// Delete's transaction alone, as one transaction with no write after
	// it: the pages it frees cannot be reused before Close. (Two separate
	// transactions let the second reuse the first's freed page, picked at
	// random from bbolt's map freelist, and overwrite the blob itself.)
	if err := store.DeleteUnscrubbed(s, sl.Owner, k); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !fileHas(t, path, sl.SealedIdentityKey) {
		t.Fatal("unscrubbed freed page not found: the simulation is broken")
	}
	s, err = store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fileHas(t, path, sl.SealedIdentityKey) {
		t.Fatal("Open did not scrub the freed page")
	}
}

// BenchmarkDelete is the cost of a delete in a store of 10,000 ready
// records, scrub (zeroing the free pages, fdatasync) included.
func BenchmarkDelete(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "keys.db")
	s, err := store.Open(path, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 10000
	recs := make([]store.Record, n)
	for i := range recs {
		recs[i] = fxReady(fmt.Sprintf("k-%05d", i), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	}
	if err := store.BulkLoad(s, recs); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		if i == n {
			b.Fatal("out of records")
		}
		r := recs[i]
		i++
		if err := s.Delete(ctx, r.Owner, r.KeyID); err != nil {
			b.Fatal(err)
		}
	}
}
