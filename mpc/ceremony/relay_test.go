package ceremony

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/quorumd/quorumd/daemon/quorumtest/relaytest"
	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/relay"
)

// TestRelaySeatReadAhead: on a real relay, a seat claimed early learns the
// room's size from its claim; reading ahead yields its budget of envelopes
// in order, later ones are read directly, a timed-out Recv loses nothing,
// and after Leave the seat neither posts nor reads.
func TestRelaySeatReadAhead(t *testing.T) {
	q := newQuorum(t, testkit.Relay(t), 3)
	room := q.room(2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := RelayTransport(q.client, room, q.ids[0], q.parties())
	b := RelayTransport(q.client, room, q.ids[1], q.parties())
	if err := a.Claim(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := a.RoomSize(ctx); err != nil || n != 2 {
		t.Fatalf("room size %d, %v; want 2", n, err)
	}
	a.readAhead(2)
	const sent = 5
	for i := range sent {
		if err := b.Send(ctx, q.ids[0].Public(), fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range sent {
		body, err := a.Recv(ctx)
		if err != nil || string(body) != fmt.Sprintf("m%d", i) {
			t.Fatalf("recv %d: %q, %v", i, body, err)
		}
	}
	// Nothing more was sent: a Recv times out, and loses nothing.
	short, stop := context.WithTimeout(ctx, 200*time.Millisecond)
	if _, err := a.Recv(short); err == nil {
		t.Fatal("recv with nothing sent returned")
	}
	stop()
	if err := b.Send(ctx, q.ids[0].Public(), []byte("late")); err != nil {
		t.Fatal(err)
	}
	if body, err := a.Recv(ctx); err != nil || string(body) != "late" {
		t.Fatalf("recv after a timeout: %q, %v", body, err)
	}
	if err := a.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(ctx, q.ids[1].Public(), []byte("gone")); err == nil {
		t.Fatal("posted after leaving")
	}
	if _, err := a.Recv(ctx); err == nil {
		t.Fatal("read after leaving")
	}
	_ = b.Leave(ctx)
}

// TestRelaySeatReadAheadLeaveStops: a reader waiting at the relay for
// envelopes that never come ends with Leave; a Recv then fails at once.
func TestRelaySeatReadAheadLeaveStops(t *testing.T) {
	q := newQuorum(t, testkit.Relay(t), 2)
	room := q.room(2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := RelayTransport(q.client, room, q.ids[0], q.parties())
	a.readAhead(4)
	short, stop := context.WithTimeout(ctx, 200*time.Millisecond)
	if _, err := a.Recv(short); err == nil {
		t.Fatal("recv with nothing sent returned")
	}
	stop()
	a.mu.Lock()
	in := a.in
	a.mu.Unlock()
	if err := a.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-drained(in):
	case <-ctx.Done():
		t.Fatal("the reader did not stop after Leave")
	}
	start := time.Now()
	if _, err := a.Recv(ctx); err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("recv after leaving: %v after %v", err, time.Since(start))
	}
}

// drained is closed once in is closed (the reader ended), whatever it held.
func drained(in chan recvResult) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		for range in {
		}
		close(done)
	}()
	return done
}

// TestRelaySignRequests counts a 2-of-3 signature's requests at the
// relay (2 signers, the room's size asked of the seat claim as quorumd
// does): a room, then per signer one request per round, the first with
// the seat claim (claim + nonce + fetch, partial signature + fetch +
// leave). Against a relay from before those features the same signers
// fall back to a claim, two posts and two fetches each, and still sign.
// A signer slow to be woken may find the other's nonce and partial
// signature in one fetch: then it posts alone and leaves with DELETE (one
// request more in all), or saves a fetch on the older relay.
func TestRelaySignRequests(t *testing.T) {
	for _, tc := range []struct {
		name     string
		start    func(testing.TB, ...relay.Config) (*relay.Server, string)
		min, max uint64
	}{
		{"combined", testkit.RelayServer, 1 + 2*2, 1 + 2*2 + 1},
		{"v1 relay", relaytest.StartV1, 1 + 2*5 - 2, 1 + 2*5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, addr := tc.start(t)
			q := newQuorum(t, addr, 3)
			x := randomScalar(t)
			out := q.runImport(x, 0, 2, slow*60*time.Second, nil, nil)
			for i, o := range out {
				if o.err != nil {
					t.Fatalf("import, party %d: %v", i, o.err)
				}
			}
			// Leaving may still be on its way (leaveLater): wait for the
			// rooms to close before counting.
			settle := func() {
				deadline := time.Now().Add(slow * 10 * time.Second)
				for srv.Stats().RoomsOpen > 0 && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
			}
			for range 3 {
				msg := make([]byte, 32)
				rand.Read(msg)
				settle()
				before := srv.Stats().Requests
				sigs := q.runSign(out, []int{2, 0}, msg, nil, slow*60*time.Second, func(i int, p *SignParams) { p.Signers = 0 })
				for i, s := range sigs {
					if s.err != nil {
						t.Fatalf("signer %d: %v", i, s.err)
					}
					verifyBTCEC(t, xonly(x), msg, s.sig)
				}
				settle()
				if got := srv.Stats().Requests - before; got < tc.min || got > tc.max {
					t.Fatalf("a signature took %d relay requests, want %d to %d", got, tc.min, tc.max)
				}
			}
		})
	}
}

// TestRelayImportRequests counts a 2-of-3 import's relay requests: the
// importer's claim carries its deal, a recipient's claim fetches the deal,
// each prepared notice rides on the fetch after it and each certificate
// leaves with its post: 18 to 20 on this machine (how many envelopes each
// fetch finds varies), against 25 to 29 through a relay without those
// features, where the same import still completes.
func TestRelayImportRequests(t *testing.T) {
	for _, tc := range []struct {
		name     string
		start    func(testing.TB, ...relay.Config) (*relay.Server, string)
		min, max uint64
	}{
		{"combined", testkit.RelayServer, 16, 22},
		{"v1 relay", relaytest.StartV1, 23, 32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, addr := tc.start(t)
			q := newQuorum(t, addr, 3)
			for range 2 {
				x := randomScalar(t)
				before := srv.Stats().Requests
				out := q.runImport(x, 0, 2, slow*60*time.Second, nil, nil)
				for i, o := range out {
					if o.err != nil {
						t.Fatalf("party %d: %v", i, o.err)
					}
				}
				// The certificates' posts and leaves run in the background.
				deadline := time.Now().Add(slow * 10 * time.Second)
				for srv.Stats().RoomsOpen > 0 && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if got := srv.Stats().Requests - before; got < tc.min || got > tc.max {
					t.Fatalf("an import took %d relay requests, want %d to %d", got, tc.min, tc.max)
				}
			}
		})
	}
}
