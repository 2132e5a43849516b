package hsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/quorumd/quorumd/hsm"
)

// TestDataKeyDestroyedOnDelete: a blob sealed for a key opens until the
// key's data key is destroyed, and never again after, even though the blob
// (a copy taken before) and the token with every other key are intact.
func TestDataKeyDestroyedOnDelete(t *testing.T) {
	h := mustOpen(t, cfgFor(tok.main, "wrap-a"))
	keyID, other := fmt.Sprintf("dk-test-%d", time.Now().UnixNano()), fmt.Sprintf("dk-other-%d", time.Now().UnixNano())
	for _, k := range []string{keyID, other} {
		if err := h.CreateDataKey(k); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.CreateDataKey(keyID); err != nil { // idempotent
		t.Fatal(err)
	}
	secret, aad := bytes.Repeat([]byte{0x5a}, 32), []byte("aad")
	blob, err := h.SealFor(keyID, secret, aad)
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := hsm.BlobKeyLabel(blob); l != hsm.DataKeyLabel(keyID) {
		t.Fatalf("blob names %q", l)
	}
	otherBlob, err := h.SealFor(other, secret, aad)
	if err != nil {
		t.Fatal(err)
	}
	// A blob sealed for one key does not open as another's.
	if _, err := h.Open(relabel(otherBlob, hsm.DataKeyLabel(keyID)), aad); !errors.Is(err, hsm.ErrAuth) {
		t.Fatalf("other key's blob relabelled: %v", err)
	}
	pt, err := h.Open(blob, aad)
	if err != nil || !bytes.Equal(pt, secret) {
		t.Fatalf("open: %v", err)
	}
	found := false
	dks, err := h.DataKeys()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dks {
		if d.KeyID == keyID {
			found = true
			if time.Since(d.Created) > time.Minute || time.Since(d.Created) < -time.Minute {
				t.Fatalf("creation stamp %v", d.Created)
			}
		}
	}
	if !found {
		t.Fatalf("DataKeys does not list %s: %v", keyID, dks)
	}

	if err := h.DestroyDataKey(keyID); err != nil {
		t.Fatal(err)
	}
	if err := h.DestroyDataKey(keyID); err != nil { // idempotent
		t.Fatal(err)
	}
	if _, err := h.Open(blob, aad); !errors.Is(err, hsm.ErrNoDataKey) {
		t.Fatalf("open after destroy: %v, want ErrNoDataKey", err)
	}
	// Not even a fresh process (no cached handle) opens it.
	h2 := mustOpen(t, cfgFor(tok.main, "wrap-a"))
	if _, err := h2.Open(blob, aad); !errors.Is(err, hsm.ErrNoDataKey) {
		t.Fatalf("open after destroy, new context: %v", err)
	}
	if _, err := h.SealFor(keyID, secret, aad); !errors.Is(err, hsm.ErrNoDataKey) {
		t.Fatalf("seal after destroy: %v", err)
	}
	// The other key is untouched.
	if pt, err := h2.Open(otherBlob, aad); err != nil || !bytes.Equal(pt, secret) {
		t.Fatalf("other key after destroy: %v", err)
	}
	if err := h.DestroyDataKey(other); err != nil {
		t.Fatal(err)
	}
}

// TestResealForMigrates moves a blob from the wrapping key to a data key.
func TestResealForMigrates(t *testing.T) {
	h := mustOpen(t, cfgFor(tok.main, "wrap-a"))
	keyID := fmt.Sprintf("dk-mig-%d", time.Now().UnixNano())
	secret, aad := []byte("share"), []byte("aad")
	old, err := h.Seal(secret, aad)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.CreateDataKey(keyID); err != nil {
		t.Fatal(err)
	}
	defer h.DestroyDataKey(keyID)
	blob, err := h.ResealFor(keyID, old, aad)
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := hsm.BlobKeyLabel(blob); l != hsm.DataKeyLabel(keyID) {
		t.Fatalf("resealed blob names %q", l)
	}
	if pt, err := h.Open(blob, aad); err != nil || !bytes.Equal(pt, secret) {
		t.Fatalf("open: %v", err)
	}
}

// TestDataKeyConcurrentCreateDestroy: data keys created, used and destroyed
// from many goroutines at once (the /bip340/create quota race: the refused
// creations destroy their data keys while others create theirs). SoftHSM
// fails a C_GenerateKey concurrent with a C_DestroyObject with
// CKR_GENERAL_ERROR unless the HSM serialises them.
func TestDataKeyConcurrentCreateDestroy(t *testing.T) {
	h := mustOpen(t, cfgFor(tok.main, "wrap-a"))
	base := time.Now().UnixNano()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 32 {
		wg.Go(func() {
			for j := range 6 {
				keyID := fmt.Sprintf("dk-race-%d-%d-%d", base, i, j)
				if err := h.CreateDataKey(keyID); err != nil {
					errs <- fmt.Errorf("create %s: %w", keyID, err)
					return
				}
				if _, err := h.SealFor(keyID, []byte("secret"), []byte("aad")); err != nil {
					errs <- fmt.Errorf("seal %s: %w", keyID, err)
					return
				}
				if err := h.DestroyDataKey(keyID); err != nil {
					errs <- fmt.Errorf("destroy %s: %w", keyID, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
