package relay_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/relay"
)

// A keep-alive connection the relay closed while idle is not an error:
// the next request (a post, which is not idempotent) goes out once more on
// a new connection, and is stored once.
func TestWireIdleConnectionClosedByRelay(t *testing.T) {
	addr := testkit.Relay(t, relay.Config{IdleTimeout: 100 * time.Millisecond})
	c := newClient(t, addr)
	room := mustRoom(t, c, 2)
	a, b := party(1), party(2)
	for range 3 {
		mustPost(t, c, room, a, b, "x")
		time.Sleep(400 * time.Millisecond) // the relay closes the idle connection
	}
	msgs, err := fetchAs(c, ctxT(t), room, b, 0, 0)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("fetch: %v, %d envelopes, want 3", err, len(msgs))
	}
}

// Requests travel on few connections: sequential requests reuse one.
func TestWireReusesConnections(t *testing.T) {
	addr := testkit.Relay(t)
	var dials atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() { // a counting TCP proxy in front of the relay
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			dials.Add(1)
			out, err := net.Dial("tcp", addr)
			if err != nil {
				in.Close()
				continue
			}
			go func() { _, _ = copyClose(out, in) }()
			go func() { _, _ = copyClose(in, out) }()
		}
	}()
	c := newClient(t, ln.Addr().String(), relay.ClientConfig{RelayName: relayNameOf(t, addr)})
	room := mustRoom(t, c, 2)
	a, b := party(1), party(2)
	for range 20 {
		mustPost(t, c, room, a, b, "x")
	}
	if msgs, err := fetchAs(c, ctxT(t), room, b, 0, 0); err != nil || len(msgs) != 20 {
		t.Fatalf("fetch: %v, %d envelopes", err, len(msgs))
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d connections for sequential requests, want 1", n)
	}
}

func copyClose(dst, src net.Conn) (int64, error) {
	defer dst.Close()
	var n int64
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err != nil {
			return n, err
		}
	}
}

func relayNameOf(t *testing.T, addr string) string {
	c := newClient(t, addr)
	name, err := c.Name(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// A hostile relay's oversized answer is a protocol violation, whether it
// says its length up front or streams it chunked.
func TestWireAnswerBound(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		big := strings.Repeat("a", 70<<10)
		addr := rawServer(t, func(w http.ResponseWriter, r *http.Request) {
			if chunked {
				w.Header().Set("Transfer-Encoding", "chunked")
			}
			_, _ = w.Write([]byte(big))
		})
		c := newClient(t, addr, relay.ClientConfig{MaxResponseBytes: 64 << 10})
		if err := c.Health(ctxT(t)); !errors.Is(err, relay.ErrProtocol) {
			t.Fatalf("chunked=%v: %v, want ErrProtocol", chunked, err)
		}
	}
}

// A request that gets no answer ends at its timeout with DeadlineExceeded
// and ErrTransport.
func TestWireTimeout(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	addr := rawServer(t, func(w http.ResponseWriter, r *http.Request) { <-release })
	c := newClient(t, addr, relay.ClientConfig{RequestTimeout: 200 * time.Millisecond})
	err := c.Health(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, relay.ErrTransport) {
		t.Fatalf("got %v", err)
	}
}

func rawServer(t *testing.T, h http.HandlerFunc) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// A Conn told how many envelopes it will read ends its reading with the
// fetch that brings the last of them: Leave then sends nothing, and the
// room closes once every seat is done.
func TestConnLeaveAfter(t *testing.T) {
	addr := testkit.Relay(t)
	var leaves atomic.Int32
	c := newClient(t, addr, relay.ClientConfig{OnRequest: func(method, path string, _ time.Time) {
		if method == http.MethodDelete {
			leaves.Add(1)
		}
	}})
	room := mustRoom(t, c, 2)
	a, b := joinAs(t, c, room, party(1)), joinAs(t, c, room, party(2))
	ctx := ctxT(t)
	b.LeaveAfter(3)
	for i := range 3 {
		if err := a.Send(ctx, b.Party(), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if i == 0 { // the first fetch brings one envelope: not yet all
			if m, err := b.Recv(ctx); err != nil || m.Body[0] != 0 {
				t.Fatalf("recv 0: %v %v", m, err)
			}
		}
	}
	for i := 1; i < 3; i++ { // one fetch brings both: the seat leaves with it
		if m, err := b.Recv(ctx); err != nil || m.Body[0] != byte(i) {
			t.Fatalf("recv %d: %v %v", i, m, err)
		}
	}
	// Done reading, the seat still posts while the room is open (its peer
	// has yet to read it), but reads no more.
	if err := b.Send(ctx, a.Party(), []byte("x")); err != nil {
		t.Fatalf("send after the last fetch: %v", err)
	}
	if _, err := fetchAs(c, ctx, room, party(2), 0, 0); !errors.Is(err, relay.ErrPartyLeft) {
		t.Fatalf("fetch after the last fetch: %v", err)
	}
	if m, err := a.Recv(ctx); err != nil || string(m.Body) != "x" {
		t.Fatalf("recv the last post: %v %v", m, err)
	}
	if err := b.Leave(ctx); err != nil || leaves.Load() != 0 {
		t.Fatalf("leave after leaving with a fetch: %v, %d DELETE requests", err, leaves.Load())
	}
	if err := a.Leave(ctx); err != nil || leaves.Load() != 1 {
		t.Fatalf("leave: %v, %d DELETE requests", err, leaves.Load())
	}
	if _, err := fetchAs(c, ctx, room, party(1), 0, 0); !errors.Is(err, relay.ErrRoomExpired) {
		t.Fatalf("fetch in a room every seat left: %v", err)
	}
}

// A relay that does not leave with a fetch (JetStream) leaves the Conn
// to send DELETE as before.
func TestConnLeaveAfterJetStream(t *testing.T) {
	url, _ := testkit.NATSServer(t)
	cfg := relay.Config{Name: "leave-after", NATS: &relay.NATSConfig{URL: url, Memory: true}}
	var leaves atomic.Int32
	c := newClient(t, testkit.Relay(t, cfg), relay.ClientConfig{OnRequest: func(method, path string, _ time.Time) {
		if method == http.MethodDelete {
			leaves.Add(1)
		}
	}})
	room := mustRoom(t, c, 2)
	a, b := joinAs(t, c, room, party(1)), joinAs(t, c, room, party(2))
	ctx := ctxT(t)
	b.LeaveAfter(1)
	if err := a.Send(ctx, b.Party(), []byte("m")); err != nil {
		t.Fatal(err)
	}
	if m, err := b.Recv(ctx); err != nil || string(m.Body) != "m" {
		t.Fatalf("recv: %v %v", m, err)
	}
	if err := b.Leave(ctx); err != nil || leaves.Load() != 1 {
		t.Fatalf("leave: %v, %d DELETE requests, want 1", err, leaves.Load())
	}
}
