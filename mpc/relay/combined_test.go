package relay_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/quorumd/quorumd/daemon/quorumtest/relaytest"
	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/relay"
)

// combinedExchange plays two parties of a 2-seat room through JoinWith
// and SendRecv, the way a signer does: each claims with its first
// envelope (the second also fetching in the claim), then posts its second
// envelope with the fetch of the other's.
func combinedExchange(t *testing.T, ca, cb *relay.Client) {
	t.Helper()
	ctx := ctxT(t)
	room := mustRoom(t, ca, 2)
	a, posted, err := ca.JoinWith(ctx, room, testIDs()[0], testMembers()[:2], relay.JoinOptions{First: &relay.Post{Body: []byte("a1")}})
	if err != nil || !posted {
		t.Fatalf("a joins with its first envelope: posted %v, %v", posted, err)
	}
	b, posted, err := cb.JoinWith(ctx, room, testIDs()[1], testMembers()[:2],
		relay.JoinOptions{First: &relay.Post{To: party(0), Body: []byte("b1")}, Fetch: true, LeaveAfter: 2})
	if err != nil || !posted {
		t.Fatalf("b joins with its first envelope: posted %v, %v", posted, err)
	}
	if b.Seat().Size != 2 {
		t.Fatalf("claim answered size %d, want 2", b.Seat().Size)
	}
	if m, err := a.SendRecv(ctx, "", []byte("a2")); err != nil || string(m.Body) != "b1" || m.From != party(1) || m.To != party(0) {
		t.Fatalf("a's post and fetch: %+v, %v", m, err)
	}
	for _, want := range []string{"a1", "a2"} {
		if m, err := b.Recv(ctx); err != nil || string(m.Body) != want || m.From != party(0) {
			t.Fatalf("b reads %q: %+v, %v", want, m, err)
		}
	}
	if err := a.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Leave(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestClaimCarriesEnvelope: a seat claim posts the party's first envelope
// and may fetch; a post may fetch; envelopes arrive in order, addressed
// as posted, in memory and across two JetStream instances. In memory the
// relay counts the requests: the room, a's claim (its first post), b's
// claim (post and fetch), a's post and fetch, b's fetch of a2 (posted
// after b's claim; it ends b's reading, leave_after) and a's leave.
func TestClaimCarriesEnvelope(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		srv, addr := testkit.RelayServer(t)
		c := newClient(t, addr)
		if !c.ClaimsEnvelopes(ctxT(t)) {
			t.Fatal("relay does not say it takes envelopes with claims")
		}
		before := srv.Stats()
		combinedExchange(t, c, c)
		after := srv.Stats()
		if got := after.Requests - before.Requests; got != 6 {
			t.Fatalf("%d requests, want 6", got)
		}
		if got := after.SeatsClaimed - before.SeatsClaimed; got != 2 {
			t.Fatalf("%d seats claimed, want 2", got)
		}
		if got := after.Messages - before.Messages; got != 3 {
			t.Fatalf("%d envelopes stored, want 3", got)
		}
	})
	t.Run("jetstream", func(t *testing.T) {
		_, addrs := jsRelays(t, 2)
		combinedExchange(t, newClient(t, addrs[0]), newClient(t, addrs[1]))
	})
}

// TestClaimEnvelopeRefusedWhole: a claim whose envelope the relay refuses
// (too large, to a non-member, over the room's envelope limit) is refused
// whole: no seat, nothing stored; a claim whose signature does not verify
// posts nothing. The same party then claims normally.
func TestClaimEnvelopeRefusedWhole(t *testing.T) {
	srv, addr := testkit.RelayServer(t, relay.Config{MaxEnvelopeBytes: 4096, MaxRoomBytes: 1 << 20, MaxRoomMessages: 2})
	c := newClient(t, addr)
	ctx := ctxT(t)
	outsider, err := envelope.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	room := mustRoom(t, c, 3)
	mustPost(t, c, room, party(2), "", "x1") // party 2 takes a seat and posts
	for _, tc := range []struct {
		name   string
		signer relay.Signer
		post   relay.Post
		want   error
	}{
		{"too large", testIDs()[0], relay.Post{Body: bytes.Repeat([]byte{1}, 5000)}, relay.ErrTooLarge},
		{"not a member", testIDs()[0], relay.Post{To: hexOf(outsider.Public()), Body: []byte("e")}, relay.ErrBadRequest},
		{"bad signature", impostor{as: testIDs()[0].Public(), key: outsider}, relay.Post{Body: []byte("e")}, relay.ErrSeat},
	} {
		before := srv.Stats()
		_, _, err := c.JoinWith(ctx, room, tc.signer, testMembers(), relay.JoinOptions{First: &tc.post})
		if !errors.Is(err, tc.want) {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.want)
		}
		after := srv.Stats()
		if after.SeatsClaimed != before.SeatsClaimed || after.Messages != before.Messages || after.StoredBytes != before.StoredBytes {
			t.Fatalf("%s: refused claim changed the room: %+v → %+v", tc.name, before, after)
		}
	}
	// The room's second envelope fits; a third does not, nor its seat.
	mustPost(t, c, room, party(2), "", "x2")
	before := srv.Stats()
	_, _, err = c.JoinWith(ctx, room, testIDs()[0], testMembers(), relay.JoinOptions{First: &relay.Post{Body: []byte("e")}})
	if !errors.Is(err, relay.ErrRoomMessageLimit) {
		t.Fatalf("claim over the room's envelope limit: %v", err)
	}
	if after := srv.Stats(); after.SeatsClaimed != before.SeatsClaimed || after.StoredBytes != before.StoredBytes {
		t.Fatal("a claim refused for its envelope took a seat")
	}
	cn, err := c.Join(ctx, room, testIDs()[0], testMembers())
	if err != nil {
		t.Fatalf("a plain claim after the refused ones: %v", err)
	}
	for _, want := range []string{"x1", "x2"} {
		if m, err := cn.Recv(ctx); err != nil || string(m.Body) != want {
			t.Fatalf("read %q: %+v, %v", want, m, err)
		}
	}
}

// TestClaimEnvelopeCharged: a claim that carries an envelope charges the
// room what a claim and a post do (heap bytes, envelope count).
func TestClaimEnvelopeCharged(t *testing.T) {
	srv, addr := testkit.RelayServer(t)
	c := newClient(t, addr)
	ctx := ctxT(t)
	body := bytes.Repeat([]byte{7}, 300)
	stored := func(combined bool) (int64, int64) {
		room := mustRoom(t, c, 2)
		before := srv.Stats()
		if combined {
			if _, _, err := c.JoinWith(ctx, room, testIDs()[0], testMembers(), relay.JoinOptions{First: &relay.Post{Body: body}}); err != nil {
				t.Fatal(err)
			}
		} else {
			cn, err := c.Join(ctx, room, testIDs()[0], testMembers())
			if err != nil {
				t.Fatal(err)
			}
			if err := cn.Send(ctx, "", body); err != nil {
				t.Fatal(err)
			}
		}
		after := srv.Stats()
		return after.StoredBytes - before.StoredBytes, after.StoredMessages - before.StoredMessages
	}
	b1, m1 := stored(true)
	b2, m2 := stored(false)
	// The envelope's buffer may fall in another size class (JSON decoding
	// sizes it from the base64): the same cost within one class step.
	if d := b1 - b2; d < -64 || d > 64 || m1 != m2 || m1 != 1 {
		t.Fatalf("combined claim holds %d bytes, %d envelopes; claim then post %d, %d", b1, m1, b2, m2)
	}
}

// TestClaimEnvelopeFallback: against a relay from before these features
// (relaytest.StartV1) the same calls work in separate requests: a claim,
// then the post; a post, then a fetch.
func TestClaimEnvelopeFallback(t *testing.T) {
	srv, addr := relaytest.StartV1(t)
	c := newClient(t, addr)
	if c.ClaimsEnvelopes(ctxT(t)) {
		t.Fatal("a v1 relay does not take envelopes with claims")
	}
	before := srv.Stats()
	combinedExchange(t, c, c)
	// The room, a: claim + post, b: claim + post, a: post + fetch, b: one
	// or two fetches, a's leave: at least 9 (6 combined).
	if got := srv.Stats().Requests - before.Requests; got < 9 {
		t.Fatalf("%d requests, want at least 9 (none combined)", got)
	}
}

// TestClaimEnvelopeRollingUpgrade: a client that learned the relay takes
// envelopes with claims, then fails over to an instance that does not (an
// older one during a rolling upgrade), asks again and falls back.
func TestClaimEnvelopeRollingUpgrade(t *testing.T) {
	// Instances of one deployment share their name (claims sign it).
	srvNew, err := relay.New(relay.Config{Name: "relay.test"})
	if err != nil {
		t.Fatal(err)
	}
	newAddr := serveOn(t, srvNew)
	_, oldAddr := relaytest.StartV1(t, relay.Config{Name: "relay.test"})
	c := newClient(t, newAddr+","+oldAddr)
	ctx := ctxT(t)
	if !c.ClaimsEnvelopes(ctx) {
		t.Fatal("the first instance takes envelopes with claims")
	}
	// Without JetStream a room lives in one instance: it is made at the
	// old one, and the new one goes away, so the client fails over to it.
	co := newClient(t, oldAddr)
	room := mustRoom(t, co, 2)
	if err := srvNew.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	a, posted, err := c.JoinWith(ctx, room, testIDs()[0], testMembers()[:2], relay.JoinOptions{First: &relay.Post{Body: []byte("a1")}})
	if err != nil || !posted {
		t.Fatalf("join after failing over to an older instance: posted %v, %v", posted, err)
	}
	if c.ClaimsEnvelopes(ctx) {
		t.Fatal("the client still thinks the relay takes envelopes with claims")
	}
	b, err := co.Join(ctx, room, testIDs()[1], testMembers()[:2])
	if err != nil {
		t.Fatal(err)
	}
	if m, err := b.Recv(ctx); err != nil || string(m.Body) != "a1" {
		t.Fatalf("the envelope posted after the claim: %+v, %v", m, err)
	}
	_ = a.Leave(ctx)
	_ = b.Leave(ctx)
}

// TestPostLeave: a seat's last post may leave with it (one request
// instead of a post and a DELETE); the room closes once every seat left.
// Relays without it (older ones, JetStream) only post, and the client
// leaves with DELETE.
func TestPostLeave(t *testing.T) {
	run := func(t *testing.T, addr string, requests func() uint64, want uint64) {
		c := newClient(t, addr)
		ctx := ctxT(t)
		room := mustRoom(t, c, 2)
		a, err := c.Join(ctx, room, testIDs()[0], testMembers()[:2])
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.Join(ctx, room, testIDs()[1], testMembers()[:2])
		if err != nil {
			t.Fatal(err)
		}
		before := requests()
		if err := a.SendLeave(ctx, "", []byte("last")); err != nil {
			t.Fatal(err)
		}
		if err := a.Leave(ctx); err != nil {
			t.Fatalf("leaving again: %v", err)
		}
		if got := requests() - before; got != want {
			t.Fatalf("post and leave took %d requests, want %d", got, want)
		}
		if m, err := b.Recv(ctx); err != nil || string(m.Body) != "last" {
			t.Fatalf("the last post: %+v, %v", m, err)
		}
		if err := b.SendLeave(ctx, "", []byte("bye")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.RoomInfo(ctx, room); !errors.Is(err, relay.ErrRoomExpired) {
			t.Fatalf("room after every seat left: %v", err)
		}
	}
	t.Run("memory", func(t *testing.T) {
		srv, addr := testkit.RelayServer(t)
		run(t, addr, func() uint64 { return srv.Stats().Requests }, 1)
	})
	t.Run("v1 relay", func(t *testing.T) {
		srv, addr := relaytest.StartV1(t)
		run(t, addr, func() uint64 { return srv.Stats().Requests }, 2)
	})
	t.Run("jetstream", func(t *testing.T) {
		_, addrs := jsRelays(t, 1)
		run(t, addrs[0], func() uint64 { return 0 }, 0)
	})
}
