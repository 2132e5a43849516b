package relay_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/relay"
)

func heapNow() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestTinyPostFloodBound floods a real relay over loopback with one-byte
// envelopes until it refuses them, and checks that the refusal comes at
// the configured bound in real heap terms (once each envelope counted one
// byte: 100,000 posts grew the heap by 37.7 MB).
func TestTinyPostFloodBound(t *testing.T) {
	const bound = 512 << 10
	srv, addr := testkit.RelayServer(t, relay.Config{MaxTotalBytes: bound, MaxRoomBytes: 2 * bound,
		MaxRoomMessages: 1 << 20, MaxTotalMessages: 1 << 20, MaxEnvelopeBytes: 1024})
	c := newClient(t, addr)
	room := mustRoom(t, c, 4)
	const posters = 4
	seats := make([]*relay.Seat, posters)
	for i := range seats {
		st, err := seatOf(ctxT(t), c, room, party(i))
		if err != nil {
			t.Fatal(err)
		}
		seats[i] = st
	}
	before := heapNow()
	stored0 := srv.Stats().StoredBytes
	var wg sync.WaitGroup
	errs := make([]error, posters)
	ctx := ctxT(t) // one context: each ctxT holds a timer until the test ends
	for i, st := range seats {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := st.Post(ctx, "", []byte{byte(i)}); err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		var re *relay.Error
		if !errors.As(err, &re) || re.Code != relay.CodeStorageFull {
			t.Fatalf("poster %d stopped with %v, want storage_full", i, err)
		}
	}
	growth := int64(heapNow()) - int64(before)
	st := srv.Stats()
	t.Logf("refused after %d one-byte envelopes: accounted %d B (bound %d), heap grew %d B (%.1f B per envelope)",
		st.StoredMessages, st.StoredBytes, bound, growth, float64(growth)/float64(st.StoredMessages))
	if st.StoredBytes > bound || st.StoredBytes < bound-relay.MessageOverhead-64 {
		t.Fatalf("accounted %d bytes at refusal, bound %d", st.StoredBytes, bound)
	}
	if max := (bound - stored0) / relay.MessageOverhead; st.StoredMessages > max {
		t.Fatalf("%d envelopes stored, at most %d fit the bound", st.StoredMessages, max)
	}
	// Connection buffers and the client's own garbage come and go; 256 KiB
	// of slack covers them on a loaded machine.
	if growth > bound+256<<10 {
		t.Fatalf("heap grew %d bytes for a %d-byte bound", growth, bound)
	}
}

// TestStorageBudget: the relay-wide bound refuses posts in any room once
// reached, and closing a room gives its bytes back.
func TestStorageBudget(t *testing.T) {
	srv, addr := testkit.RelayServer(t, relay.Config{MaxEnvelopeBytes: 1024, MaxRoomBytes: 64 << 10, MaxTotalBytes: 32 << 10})
	c := newClient(t, addr)
	a, b := party(1), party(2)
	r1, r2 := mustRoom(t, c, 2), mustRoom(t, c, 2)
	if _, err := fetchAs(c, ctxT(t), r2, b, 0, 0); err != nil { // b takes its seat in r2
		t.Fatal(err)
	}
	kb := bytes.Repeat([]byte{7}, 1024)
	var err error
	n := 0
	for ; err == nil; n++ {
		err = postAs(c, ctxT(t), r1, a, b, kb)
	}
	var re *relay.Error
	if !errors.Is(err, relay.ErrUnavailable) || !errors.As(err, &re) || re.Code != relay.CodeStorageFull || n < 20 {
		t.Fatalf("post %d over the global budget: %v", n, err)
	}
	if err := postAs(c, ctxT(t), r2, b, a, kb); !errors.Is(err, relay.ErrUnavailable) {
		t.Fatalf("post in another room over the budget: %v", err)
	}
	if got := srv.Stats().StoredBytes; got > 32<<10 {
		t.Fatalf("stored bytes %d over the bound", got)
	}
	// a, r1's only seat, leaves: r1 closes, freeing its envelopes, set and seat.
	if err := leaveAs(c, ctxT(t), r1, a); err != nil {
		t.Fatal(err)
	}
	if got := srv.Stats().StoredBytes; got <= 0 || got > 4<<10 {
		t.Fatalf("stored bytes after close %d: only r2's set and seat should remain", got)
	}
	if err := postAs(c, ctxT(t), r2, b, a, kb); err != nil {
		t.Fatalf("post after space was freed: %v", err)
	}
}

// TestTotalMessageCap: envelopes are capped across rooms too.
func TestTotalMessageCap(t *testing.T) {
	srv, addr := testkit.RelayServer(t, relay.Config{MaxTotalMessages: 5})
	c := newClient(t, addr)
	r1, r2 := mustRoom(t, c, 2), mustRoom(t, c, 2)
	for range 3 {
		mustPost(t, c, r1, party(1), "", "x")
	}
	for range 2 {
		mustPost(t, c, r2, party(1), "", "x")
	}
	var re *relay.Error
	if err := postAs(c, ctxT(t), r2, party(2), "", []byte("6th")); !errors.As(err, &re) || re.Code != relay.CodeStorageFull {
		t.Fatalf("6th envelope: %v", err)
	}
	if st := srv.Stats(); st.StoredMessages != 5 {
		t.Fatalf("stored %d", st.StoredMessages)
	}
}

// fromAddr is a client whose connections leave from local IP ip
// (any 127.0.0.0/8 address works on Linux loopback), i.e. a distinct
// client identity for the relay.
func fromAddr(t *testing.T, addr, ip string) *relay.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return newClient(t, addr, relay.ClientConfig{Transport: &http.Transport{DialContext: d.DialContext}})
}

// TestClientRoomLimits: one client flooding room creation exhausts its own
// count and rate, never the other clients'; closing rooms gives count back.
func TestClientRoomLimits(t *testing.T) {
	t.Run("count", func(t *testing.T) {
		srv, addr := testkit.RelayServer(t, relay.Config{MaxRooms: 50, MaxRoomsPerClient: 10, ClientRoomRate: 1e6, ClientRoomBurst: 1e6})
		flood, honest := fromAddr(t, addr, "127.0.0.2"), fromAddr(t, addr, "127.0.0.3")
		var rooms []string
		var err error
		for err == nil {
			var r string
			if r, err = flood.CreateRoom(ctxT(t), 1); err == nil {
				rooms = append(rooms, r)
			}
		}
		var re *relay.Error
		if !errors.Is(err, relay.ErrClientLimit) || !errors.As(err, &re) || re.Code != relay.CodeClientRoomLimit || len(rooms) != 10 {
			t.Fatalf("flood stopped after %d rooms with %v", len(rooms), err)
		}
		for range 10 {
			if _, err := honest.CreateRoom(ctxT(t), 1); err != nil {
				t.Fatalf("another client during the flood: %v", err)
			}
		}
		// A room the flooder closes is given back to it.
		if err := leaveAs(flood, ctxT(t), rooms[0], party(1)); err != nil {
			t.Fatal(err)
		}
		if _, err := flood.CreateRoom(ctxT(t), 1); err != nil {
			t.Fatalf("after closing a room: %v", err)
		}
		if st := srv.Stats(); st.RoomsOpen != 20 || st.Rejects[relay.CodeClientRoomLimit] != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("rate", func(t *testing.T) {
		_, addr := testkit.RelayServer(t, relay.Config{MaxRoomsPerClient: 1000, ClientRoomRate: 0.01, ClientRoomBurst: 5})
		flood, honest := fromAddr(t, addr, "127.0.0.4"), fromAddr(t, addr, "127.0.0.5")
		for i := range 5 {
			if _, err := flood.CreateRoom(ctxT(t), 1); err != nil {
				t.Fatalf("room %d within the burst: %v", i, err)
			}
		}
		var re *relay.Error
		if _, err := flood.CreateRoom(ctxT(t), 1); !errors.As(err, &re) || re.Code != relay.CodeClientRateLimit || re.Status != 429 {
			t.Fatalf("over the rate: %v", err)
		}
		if _, err := honest.CreateRoom(ctxT(t), 1); err != nil {
			t.Fatalf("another client: %v", err)
		}
	})
	t.Run("client certificates", func(t *testing.T) {
		pki := testkit.NewRelayPKI(t)
		addr := testkit.Relay(t, relay.Config{TLS: pki.ServerTLS(true), MaxRoomsPerClient: 3})
		c := newClient(t, addr, relay.ClientConfig{TLS: pki.ClientTLS(true)})
		for range 3 {
			if _, err := c.CreateRoom(ctxT(t), 1); err != nil {
				t.Fatal(err)
			}
		}
		// Same certificate from another address: the same client.
		tc := pki.ClientTLS(true)
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.6")}}
		other := newClient(t, addr, relay.ClientConfig{TLS: tc, Transport: &http.Transport{DialContext: d.DialContext, TLSClientConfig: tc}})
		if _, err := other.CreateRoom(context.Background(), 1); !errors.Is(err, relay.ErrClientLimit) {
			t.Fatalf("same certificate, other address: %v", err)
		}
	})
}
