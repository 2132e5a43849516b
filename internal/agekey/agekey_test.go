package agekey

import (
	"testing"

	"filippo.io/age"
)

// TestRoundTrip: a generated identity's recipient survives hex and back,
// and the result is age's own encoding of it.
func TestRoundTrip(t *testing.T) {
	for range 20 {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		h, err := Hex(id.Recipient())
		if err != nil || len(h) != 64 {
			t.Fatalf("Hex: %q %v", h, err)
		}
		r, err := Recipient(h)
		if err != nil {
			t.Fatal(err)
		}
		if r.String() != id.Recipient().String() {
			t.Fatalf("%s != %s", r, id.Recipient())
		}
		if r2, err := Recipient(id.Recipient().String()); err != nil || r2.String() != r.String() {
			t.Fatalf("age1 form: %v", err)
		}
	}
	for _, bad := range []string{"", "00", "zz", "age1qqqq"} {
		if _, err := Recipient(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
