package envelope

import (
	"bytes"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
)

func randomKey(t *testing.T) btcec.ModNScalar {
	t.Helper()
	var k btcec.ModNScalar
	if err := randomScalar(&k); err != nil {
		t.Fatal(err)
	}
	return k
}

// TestIdentityStorage: NewIdentity copies the key, NewIdentityAt and
// GenerateIdentityAt use the caller's storage in place; all derive the
// same keygen_id as btcec for the same key, and Zero wipes what the
// identity uses.
func TestIdentityStorage(t *testing.T) {
	cases := []struct {
		name     string
		make     func(storage *btcec.ModNScalar) (*Identity, error)
		generate bool // the constructor draws the key into storage
		inPlace  bool
	}{
		{"NewIdentity", NewIdentity, false, false},
		{"NewIdentityAt", NewIdentityAt, false, true},
		{"GenerateIdentityAt", func(s *btcec.ModNScalar) (*Identity, error) { return GenerateIdentityAt(s) }, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var storage btcec.ModNScalar
			if !c.generate {
				storage = randomKey(t)
			}
			id, err := c.make(&storage)
			if err != nil {
				t.Fatal(err)
			}
			if storage.IsZero() {
				t.Fatal("no key in storage")
			}
			want := btcec.PrivKeyFromScalar(&storage).PubKey().SerializeCompressed()
			if pub := id.Public(); !bytes.Equal(pub[:], want) {
				t.Fatalf("keygen_id %x, want %x", pub, want)
			}
			var put [32]byte
			id.PutPrivateBytes(put[:])
			if put != id.PrivateBytes() || put != storage.Bytes() {
				t.Fatal("PutPrivateBytes, PrivateBytes and the key disagree")
			}
			orig := storage
			id.Zero()
			if got := storage.IsZero(); got != c.inPlace {
				t.Fatalf("Zero wiped the caller's storage: %t, want %t", got, c.inPlace)
			}
			if p := id.PrivateScalar(); !p.IsZero() {
				t.Fatal("Zero left the identity's key")
			}
			if !c.inPlace && !storage.Equals(&orig) {
				t.Fatal("NewIdentity changed the caller's key")
			}
		})
	}
}

// TestIdentityAtSeesStorage: an in-place identity signs and decrypts with
// whatever its storage holds, so the key is never copied out of it.
func TestIdentityAtSeesStorage(t *testing.T) {
	storage := randomKey(t)
	a, err := NewIdentityAt(&storage)
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	members := []Party{a.Public(), b.Public()}
	session := SessionID("test/v1", "room", members, 2, 2, nil)
	// b encrypts to a; a (in place) opens it.
	raw, err := NewSender(b, KindImport, session).Seal(1, a.Public(), []byte("for a"), true)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := NewInbox(a, KindImport, session, members).Accept(raw); err != nil || string(e.Payload) != "for a" {
		t.Fatalf("in-place identity cannot open: %v", err)
	}
	// With its storage wiped, a can no longer open nor sign validly.
	storage.Zero()
	if _, err := NewInbox(a, KindImport, session, members).Accept(raw); err == nil {
		t.Fatal("identity still opened envelopes after its storage was wiped")
	}
}

func TestIdentityRejectsZero(t *testing.T) {
	var zero btcec.ModNScalar
	if _, err := NewIdentity(&zero); err == nil {
		t.Error("NewIdentity accepted a zero key")
	}
	if _, err := NewIdentityAt(&zero); err == nil {
		t.Error("NewIdentityAt accepted a zero key")
	}
}

// TestIdentityWithPublic: with its own public key the identity signs as
// NewIdentityAt's does; with another key's it cannot seal anything.
func TestIdentityWithPublic(t *testing.T) {
	a, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	storage := a.PrivateScalar()
	good, err := NewIdentityAtWithPublic(&storage, a.Public())
	if err != nil {
		t.Fatal(err)
	}
	var session [SessionIDSize]byte
	raw, err := NewSender(good, KindImport, session).Seal(1, b.Public(), []byte("share"), true)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewInbox(b, KindImport, session, []Party{a.Public(), b.Public()}).Accept(raw)
	if err != nil || string(e.Payload) != "share" {
		t.Fatalf("Accept: %v", err)
	}

	wrong, err := NewIdentityAtWithPublic(&storage, b.Public())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSender(wrong, KindImport, session).Seal(1, a.Public(), []byte("share"), true); err == nil {
		t.Fatal("sealed under another identity's public key")
	}
	var zero btcec.ModNScalar
	if _, err := NewIdentityAtWithPublic(&zero, a.Public()); err == nil {
		t.Fatal("accepted a zero key")
	}
	if _, err := NewIdentityAtWithPublic(&storage, Party{}); err == nil {
		t.Fatal("accepted an invalid public key")
	}
}

// TestPartyPointCache: decoded party keys, first parsed then remembered,
// equal btcec's decoding of exactly their own bytes (the other parity is
// the other point); invalid keys are refused every time.
func TestPartyPointCache(t *testing.T) {
	for range 8 {
		id, err := GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range [][]byte{id.Public().Bytes(), append([]byte{id.Public()[0] ^ 1}, id.Public().Bytes()[1:]...)} {
			want, err := btcec.ParsePubKey(b)
			if err != nil {
				t.Fatal(err)
			}
			for round := range 2 {
				got, err := partyPoint(b)
				if err != nil || !got.IsEqual(want) {
					t.Fatalf("round %d: %x decoded to another point (%v)", round, b, err)
				}
			}
		}
	}
	bad := make([]byte, PartySize)
	bad[0], bad[32] = 2, 5 // x = 5 is not on the curve
	for round := range 2 {
		if _, err := ParseParty(bad); err == nil {
			t.Fatalf("round %d: off-curve party key accepted", round)
		}
	}
}
