package hsm_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/quorumd/quorumd/hsm"
)

// FuzzOpen feeds arbitrary blobs and AADs to Open on SoftHSM. Open must never
// panic, must classify every failure, and may only succeed on the one blob
// that was really sealed with that AAD (anything else would be a forgery).
func FuzzOpen(f *testing.F) {
	h, err := hsm.Open(hsm.Config{
		ModulePath: tok.main.Module, TokenLabel: "main", PIN: tok.main.PIN,
		KeyLabel: "wrap-a", ReadKeyLabels: []string{"wrap-b"},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { h.Close() })
	aad := []byte("key_id=fuzz|user=u|id=1|v=1")
	secret := []byte("fuzzing secret share, 32 bytes!!")
	blob, err := h.Seal(secret, aad)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(blob, aad)
	f.Add(blob[:len(blob)-1], aad)
	f.Add(relabel(blob, "wrap-b"), aad)
	f.Add(relabel(blob, "other"), aad)
	f.Add([]byte{hsm.BlobVersion, 0}, aad)
	f.Add([]byte{}, []byte("x"))
	f.Add(blob, []byte{})
	f.Fuzz(func(t *testing.T, b, a []byte) {
		label, labelErr := hsm.BlobKeyLabel(b)
		pt, err := h.Open(b, a)
		if err == nil {
			if !bytes.Equal(b, blob) || !bytes.Equal(a, aad) || !bytes.Equal(pt, secret) {
				t.Fatalf("Open accepted a blob that was never sealed: %x / %x", b, a)
			}
			if labelErr != nil || label != "wrap-a" {
				t.Fatalf("BlobKeyLabel of a valid blob: %q, %v", label, labelErr)
			}
			return
		}
		if labelErr != nil && len(a) > 0 && !errors.Is(err, hsm.ErrMalformed) {
			t.Fatalf("structurally invalid blob gave %v, want ErrMalformed", err)
		}
		for _, want := range []error{hsm.ErrAuth, hsm.ErrKeyNotFound, hsm.ErrEmptyAAD} {
			if errors.Is(err, want) {
				return
			}
		}
		t.Fatalf("unclassified Open error: %v", err)
	})
}
