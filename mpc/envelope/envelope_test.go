package envelope

import (
	"bytes"
	"errors"
	"testing"
)

type trio struct {
	a, b, c *Identity
	members []Party
	session [SessionIDSize]byte
}

func newTrio(t testing.TB) *trio {
	t.Helper()
	var ids [3]*Identity
	for i := range ids {
		id, err := GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	members := []Party{ids[0].Public(), ids[1].Public(), ids[2].Public()}
	return &trio{a: ids[0], b: ids[1], c: ids[2], members: members,
		session: SessionID("test/v1", "room-1", members, 2, 3, nil)}
}

func TestRoundTrip(t *testing.T) {
	tr := newTrio(t)
	s := NewSender(tr.a, KindImport, tr.session)
	inB := NewInbox(tr.b, KindImport, tr.session, tr.members)
	inC := NewInbox(tr.c, KindImport, tr.session, tr.members)

	secret := []byte("share bytes for b only")
	raw, err := s.Seal(1, tr.b.Public(), secret, true)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, secret) {
		t.Fatal("encrypted payload visible on the wire")
	}
	e, err := inB.Accept(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.Payload, secret) || e.From != tr.a.Public() || e.Round != 1 {
		t.Fatalf("got %+v", e)
	}
	// c must not accept (or read) b's envelope.
	if _, err := inC.Accept(raw); !errors.Is(err, ErrMisrouted) {
		t.Fatalf("c accepted b's envelope: %v", err)
	}
	bc, err := s.Seal(2, Broadcast, []byte("hello all"), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []*Inbox{inB, inC} {
		if e, err := in.Accept(bc); err != nil || string(e.Payload) != "hello all" {
			t.Fatalf("broadcast: %v", err)
		}
	}
	if _, err := s.Seal(1, Broadcast, []byte("x"), true); err == nil {
		t.Fatal("encrypted broadcast allowed")
	}
}

func TestInboxRejects(t *testing.T) {
	tr := newTrio(t)
	outsider, _ := GenerateIdentity()
	other := SessionID("test/v1", "room-2", tr.members, 2, 3, nil)

	seal := func(id *Identity, kind uint8, sess [32]byte, to Party, enc bool) []byte {
		raw, err := NewSender(id, kind, sess).Seal(1, to, []byte("payload"), enc)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	good := seal(tr.a, KindImport, tr.session, tr.b.Public(), true)
	flip := func(raw []byte, off int) []byte {
		b := bytes.Clone(raw)
		b[off] ^= 0x80
		return b
	}
	cases := []struct {
		name string
		raw  []byte
		want error
	}{
		{"truncated", good[:len(good)-1], ErrMalformed},
		{"bad magic", flip(good, 0), ErrMalformed},
		{"bad version", flip(good, 4), ErrMalformed},
		{"unknown flag", flip(good, 7), ErrMalformed},
		{"tampered round", flip(good, 6), ErrBadSignature},
		{"tampered session", flip(good, 8), ErrBadSignature},
		{"tampered ciphertext", flip(good, headerSize+20), ErrBadSignature},
		{"tampered signature", flip(good, len(good)-1), ErrBadSignature},
		{"non-member", seal(outsider, KindImport, tr.session, tr.b.Public(), false), ErrNonMember},
		{"other room", seal(tr.a, KindImport, other, tr.b.Public(), false), ErrWrongSession},
		{"other kind", seal(tr.a, KindSign, tr.session, tr.b.Public(), false), ErrWrongKind},
		{"to someone else", seal(tr.a, KindImport, tr.session, tr.c.Public(), false), ErrMisrouted},
		{"from self", seal(tr.b, KindImport, tr.session, Broadcast, false), ErrMisrouted},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := NewInbox(tr.b, KindImport, tr.session, tr.members)
			if _, err := in.Accept(tc.raw); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestInboxSequence(t *testing.T) {
	tr := newTrio(t)
	s := NewSender(tr.a, KindImport, tr.session)
	in := NewInbox(tr.b, KindImport, tr.session, tr.members)
	m1, _ := s.Seal(1, tr.b.Public(), []byte("1"), true)
	m2, _ := s.Seal(1, tr.b.Public(), []byte("2"), true)
	m3, _ := s.Seal(1, tr.b.Public(), []byte("3"), true)
	bc, _ := s.Seal(1, Broadcast, []byte("b"), false) // its own channel: seq 1
	if _, err := in.Accept(m2); !errors.Is(err, ErrReordered) {
		t.Fatalf("skipped ahead: %v", err)
	}
	if _, err := in.Accept(bc); err != nil {
		t.Fatalf("broadcast channel: %v", err)
	}
	if _, err := in.Accept(m1); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Accept(m1); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	if _, err := in.Accept(m2); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Accept(m3); err != nil {
		t.Fatal(err)
	}
}

func TestSessionIDBindsEverything(t *testing.T) {
	tr := newTrio(t)
	base := SessionID("l", "r", tr.members, 2, 3, []byte("c"))
	reversed := []Party{tr.members[2], tr.members[1], tr.members[0]}
	if SessionID("l", "r", reversed, 2, 3, []byte("c")) != base {
		t.Fatal("session id depends on party order")
	}
	for name, s := range map[string][32]byte{
		"label":   SessionID("m", "r", tr.members, 2, 3, []byte("c")),
		"room":    SessionID("l", "s", tr.members, 2, 3, []byte("c")),
		"parties": SessionID("l", "r", tr.members[:2], 2, 3, []byte("c")),
		"t":       SessionID("l", "r", tr.members, 3, 3, []byte("c")),
		"n":       SessionID("l", "r", tr.members, 2, 4, []byte("c")),
		"context": SessionID("l", "r", tr.members, 2, 3, []byte("d")),
	} {
		if s == base {
			t.Errorf("session id ignores the %s", name)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	tr := newTrio(f)
	raw, _ := NewSender(tr.a, KindImport, tr.session).Seal(1, tr.b.Public(), []byte("seed"), true)
	f.Add(raw)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Unmarshal(b)
		if err != nil {
			return
		}
		if !bytes.Equal(e.Marshal(), b) {
			t.Fatal("decode/encode is not the identity")
		}
		in := NewInbox(tr.b, KindImport, tr.session, tr.members)
		_, _ = in.Accept(b) // must not panic
	})
}

// TestBox: a box opens only for its recipient, from its sender, in its
// session and with its associated data; a dealer can box to itself.
func TestBox(t *testing.T) {
	a, _ := GenerateIdentity()
	b, _ := GenerateIdentity()
	c, _ := GenerateIdentity()
	var session, other [SessionIDSize]byte
	session[0], other[0] = 1, 2
	secret := []byte("0123456789abcdef0123456789abcdef")
	box, err := SealBox(a, nil, b.Public(), session, []byte("s1"), secret)
	if err != nil {
		t.Fatal(err)
	}
	if len(box) != len(secret)+BoxOverhead {
		t.Fatalf("box of %d bytes", len(box))
	}
	pt, err := OpenBox(b, nil, a.Public(), session, []byte("s1"), box)
	if err != nil || string(pt) != string(secret) {
		t.Fatalf("open: %q, %v", pt, err)
	}
	self, _ := SealBox(a, nil, a.Public(), session, []byte("s0"), secret)
	if pt, err := OpenBox(a, nil, a.Public(), session, []byte("s0"), self); err != nil || string(pt) != string(secret) {
		t.Fatalf("box to self: %v", err)
	}
	flipped := append([]byte(nil), box...)
	flipped[len(flipped)-1] ^= 1
	for name, open := range map[string]func() ([]byte, error){
		"another recipient": func() ([]byte, error) { return OpenBox(c, nil, a.Public(), session, []byte("s1"), box) },
		"another sender":    func() ([]byte, error) { return OpenBox(b, nil, c.Public(), session, []byte("s1"), box) },
		"another session":   func() ([]byte, error) { return OpenBox(b, nil, a.Public(), other, []byte("s1"), box) },
		"another ad":        func() ([]byte, error) { return OpenBox(b, nil, a.Public(), session, []byte("s2"), box) },
		"tampered":          func() ([]byte, error) { return OpenBox(b, nil, a.Public(), session, []byte("s1"), flipped) },
		"truncated":         func() ([]byte, error) { return OpenBox(b, nil, a.Public(), session, []byte("s1"), box[:10]) },
	} {
		if _, err := open(); !errors.Is(err, ErrBox) {
			t.Errorf("%s: %v, want ErrBox", name, err)
		}
	}
}

// TestVerifyDetached: Verify checks a kept envelope's signature alone, and
// VerifyDigest proves what an envelope said from its digest and signature.
func TestVerifyDetached(t *testing.T) {
	a, _ := GenerateIdentity()
	var session [SessionIDSize]byte
	raw, err := NewSender(a, KindImport, session).Seal(1, Broadcast, []byte("deal"), false)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Verify(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !VerifyDigest(a.Public(), e.Digest(), e.Sig) {
		t.Fatal("VerifyDigest rejects the envelope's own signature")
	}
	bad := append([]byte(nil), raw...)
	bad[len(bad)-65] ^= 1 // the payload's last byte
	if _, err := Verify(bad); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered: %v", err)
	}
	if VerifyDigest(a.Public(), [32]byte{1}, e.Sig) {
		t.Fatal("VerifyDigest accepts another digest")
	}
}

// TestChannels: a party whose Sender and Inbox share one Channels talks with
// parties that derive every key afresh, in both directions and over several
// envelopes per channel (the cached secret is the one ECDH would give); Zero
// wipes the cache and the next envelope derives again.
func TestChannels(t *testing.T) {
	tr := newTrio(t)
	ch := NewChannels()
	sA := NewSender(tr.a, KindSign, tr.session).WithChannels(ch)
	inA := NewInbox(tr.a, KindSign, tr.session, tr.members).WithChannels(ch)
	sB := NewSender(tr.b, KindSign, tr.session)
	inB := NewInbox(tr.b, KindSign, tr.session, tr.members)
	for i := range 3 {
		msg := []byte{'a', byte(i)}
		raw, err := sA.Seal(1, tr.b.Public(), msg, true)
		if err != nil {
			t.Fatal(err)
		}
		if e, err := inB.Accept(raw); err != nil || !bytes.Equal(e.Payload, msg) {
			t.Fatalf("a→b %d: %v", i, err)
		}
		msg[0] = 'b'
		raw, err = sB.Seal(1, tr.a.Public(), msg, true)
		if err != nil {
			t.Fatal(err)
		}
		if e, err := inA.Accept(raw); err != nil || !bytes.Equal(e.Payload, msg) {
			t.Fatalf("b→a %d: %v", i, err)
		}
		if i == 1 {
			ch.Zero()
		}
	}
	ch.mu.Lock()
	n := len(ch.secrets)
	ch.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d cached secrets, want 1 (b only)", n)
	}
	var zero [32]byte
	s := ch.secrets[tr.b.Public()]
	ch.Zero()
	if *s != zero || len(ch.secrets) != 0 {
		t.Fatal("Zero left a secret")
	}
}
