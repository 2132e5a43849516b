package relay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/relay"
)

func newClient(t testing.TB, addr string, cfg ...relay.ClientConfig) *relay.Client {
	t.Helper()
	var c relay.ClientConfig
	if len(cfg) > 0 {
		c = cfg[0]
	}
	cl, err := relay.NewClient(addr, c)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustRoom(t testing.TB, c *relay.Client, size int) string {
	t.Helper()
	id, err := c.CreateRoom(ctxT(t), size)
	if err != nil {
		t.Fatalf("CreateRoom(%d): %v", size, err)
	}
	return id
}

func mustPost(t testing.TB, c *relay.Client, room, from, to, body string) {
	t.Helper()
	if err := postAs(c, ctxT(t), room, from, to, []byte(body)); err != nil {
		t.Fatalf("Post %s→%q: %v", from, to, err)
	}
}

type post struct{ from, to, body string }

// postLater posts in the background after delay; checkPosted collects the outcome.
func postLater(c *relay.Client, room string, delay time.Duration, posts ...post) <-chan error {
	errc := make(chan error, 1)
	go func() {
		time.Sleep(delay)
		for _, p := range posts {
			if err := postAs(c, context.Background(), room, p.from, p.to, []byte(p.body)); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	return errc
}

func checkPosted(t *testing.T, errc <-chan error) {
	t.Helper()
	if err := <-errc; err != nil {
		t.Errorf("background post: %v", err)
	}
}

func TestOrderingAndRouting(t *testing.T) {
	addr := testkit.Relay(t)
	c := newClient(t, addr)
	room := mustRoom(t, c, 3)
	a, b, cc := party(1), party(2), party(3)
	posts := []struct{ from, to, body string }{
		{a, "", "a-bcast-1"},
		{b, a, "b-to-a"},
		{cc, "", "c-bcast"},
		{a, b, "a-to-b"},
		{b, "", "b-bcast"},
		{a, cc, "a-to-c"},
		{a, "", "a-bcast-2"},
		{cc, cc, "c-to-self"},
	}
	for _, p := range posts {
		mustPost(t, c, room, p.from, p.to, p.body)
	}
	tests := []struct {
		name  string
		party string
		after uint64
		want  []string
	}{
		{"a sees addressed and others' broadcasts", a, 0, []string{"b-to-a", "c-bcast", "b-bcast"}},
		{"b", b, 0, []string{"a-bcast-1", "c-bcast", "a-to-b", "a-bcast-2"}},
		{"c gets its self-addressed message", cc, 0, []string{"a-bcast-1", "b-bcast", "a-to-c", "a-bcast-2", "c-to-self"}},
		{"b after seq 3", b, 3, []string{"a-to-b", "a-bcast-2"}},
		{"a after everything", a, 8, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := fetchAs(c, ctxT(t), room, tc.party, tc.after, 0)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			var got []string
			last := tc.after
			for _, m := range msgs {
				if m.Seq <= last {
					t.Errorf("seq %d not above %d", m.Seq, last)
				}
				last = m.Seq
				if m.To == "" && m.From == tc.party {
					t.Errorf("own broadcast echoed: %q", m.Body)
				}
				got = append(got, string(m.Body))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLongPoll(t *testing.T) {
	addr := testkit.Relay(t)
	c := newClient(t, addr)
	a, b, cc := party(1), party(2), party(3)

	t.Run("wakes on an addressed post", func(t *testing.T) {
		room := mustRoom(t, c, 2)
		start := time.Now()
		posted := postLater(c, room, 100*time.Millisecond, post{a, b, "hello"})
		defer checkPosted(t, posted)
		msgs, err := fetchAs(c, ctxT(t), room, b, 0, 20*time.Second)
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		if len(msgs) != 1 || string(msgs[0].Body) != "hello" {
			t.Fatalf("got %+v", msgs)
		}
		// Generous bound: without a wake-up the fetch would sit out its 20 s.
		if el := time.Since(start); el > 10*time.Second {
			t.Fatalf("long-poll returned after %v: not woken by the post", el)
		}
	})
	t.Run("wakes on a broadcast", func(t *testing.T) {
		room := mustRoom(t, c, 3)
		start := time.Now()
		posted := postLater(c, room, 50*time.Millisecond, post{a, "", "all"})
		defer checkPosted(t, posted)
		msgs, err := fetchAs(c, ctxT(t), room, cc, 0, 20*time.Second)
		if err != nil || len(msgs) != 1 || string(msgs[0].Body) != "all" {
			t.Fatalf("Fetch: %v %+v", err, msgs)
		}
		if el := time.Since(start); el > 10*time.Second {
			t.Fatalf("long-poll returned after %v", el)
		}
	})
	t.Run("others' traffic does not end the wait", func(t *testing.T) {
		room := mustRoom(t, c, 3)
		posted := postLater(c, room, 30*time.Millisecond, post{a, cc, "for c"}, post{b, "", "b's own broadcast"})
		defer checkPosted(t, posted)
		start := time.Now()
		msgs, err := fetchAs(c, ctxT(t), room, b, 0, 300*time.Millisecond)
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		if len(msgs) != 0 {
			t.Fatalf("b got %+v", msgs)
		}
		if el := time.Since(start); el < 300*time.Millisecond {
			t.Fatalf("empty answer after %v, before the wait expired", el)
		}
	})
	t.Run("wait capped at the relay's MaxWait", func(t *testing.T) {
		short := newClient(t, testkit.Relay(t, relay.Config{MaxWait: 100 * time.Millisecond}))
		room := mustRoom(t, short, 2)
		start := time.Now()
		msgs, err := fetchAs(short, ctxT(t), room, a, 0, 25*time.Second)
		if err != nil || len(msgs) != 0 {
			t.Fatalf("Fetch: %v %+v", err, msgs)
		}
		if el := time.Since(start); el > 10*time.Second {
			t.Fatalf("wait not capped: %v", el)
		}
	})
	t.Run("wait expires with an empty list", func(t *testing.T) {
		room := mustRoom(t, c, 2)
		msgs, err := fetchAs(c, ctxT(t), room, a, 0, 150*time.Millisecond)
		if err != nil || len(msgs) != 0 {
			t.Fatalf("Fetch: %v %+v", err, msgs)
		}
	})
}

func TestRoomErrors(t *testing.T) {
	cfg := relay.Config{
		MaxEnvelopeBytes: 1024,
		MaxRoomMessages:  3,
		MaxRoomBytes:     4096, // a set of 10 members, 2 seats and 2 KiB envelopes with their overhead
		MaxRooms:         100,
		MaxRoomSize:      5,
		DefaultRoomTTL:   200 * time.Millisecond,
		MaxRoomTTL:       time.Hour,
	}
	addr := testkit.Relay(t, cfg)
	c := newClient(t, addr)
	a, b, cc := party(1), party(2), party(3)
	long := func(t *testing.T, ttl time.Duration) string {
		info, err := c.CreateRoomTTL(ctxT(t), 2, ttl)
		if err != nil {
			t.Fatalf("CreateRoomTTL: %v", err)
		}
		return info.ID
	}

	tests := []struct {
		name string
		run  func(t *testing.T) error
		want error
	}{
		{"unknown room post", func(t *testing.T) error {
			return postAs(c, ctxT(t), "6f1c3a52-7d0e-4b8a-9c1d-2e3f4a5b6c7d", a, "", []byte("x"))
		}, relay.ErrUnknownRoom},
		{"unknown room fetch", func(t *testing.T) error {
			_, err := fetchAs(c, ctxT(t), "6f1c3a52-7d0e-4b8a-9c1d-2e3f4a5b6c7d", a, 0, 0)
			return err
		}, relay.ErrUnknownRoom},
		{"unknown room leave", func(t *testing.T) error {
			return leaveAs(c, ctxT(t), "6f1c3a52-7d0e-4b8a-9c1d-2e3f4a5b6c7d", a)
		}, relay.ErrUnknownRoom},
		{"room full on third post", func(t *testing.T) error {
			r := long(t, time.Minute)
			mustPost(t, c, r, a, "", "1")
			if _, err := fetchAs(c, ctxT(t), r, b, 0, 0); err != nil { // fetching joins too
				t.Fatalf("b fetch: %v", err)
			}
			return postAs(c, ctxT(t), r, cc, "", []byte("3"))
		}, relay.ErrRoomFull},
		{"room full on third fetch", func(t *testing.T) error {
			r := long(t, time.Minute)
			mustPost(t, c, r, a, "", "1")
			mustPost(t, c, r, b, "", "2")
			_, err := fetchAs(c, ctxT(t), r, cc, 0, 0)
			return err
		}, relay.ErrRoomFull},
		{"envelope at limit ok, over limit 413", func(t *testing.T) error {
			r := long(t, time.Minute)
			if err := postAs(c, ctxT(t), r, a, b, bytes.Repeat([]byte{1}, 1024)); err != nil {
				t.Fatalf("post of exactly the limit: %v", err)
			}
			return postAs(c, ctxT(t), r, a, b, bytes.Repeat([]byte{1}, 1025))
		}, relay.ErrTooLarge},
		{"envelope over limit, sizes up to 4 MiB", func(t *testing.T) error {
			r := long(t, time.Minute)
			for _, n := range []int{1025, 20 << 10, 100 << 10, 4 << 20} {
				err := postAs(c, ctxT(t), r, a, b, bytes.Repeat([]byte{1}, n))
				if !errors.Is(err, relay.ErrTooLarge) {
					return fmt.Errorf("%d bytes: %w", n, err)
				}
				var re *relay.Error
				if n < 64<<10 && (!errors.As(err, &re) || re.Code != relay.CodeTooLarge) {
					t.Errorf("%d bytes: no JSON envelope_too_large in %v", n, err)
				}
			}
			return postAs(c, ctxT(t), r, a, b, bytes.Repeat([]byte{1}, 4<<20))
		}, relay.ErrTooLarge},
		{"message limit", func(t *testing.T) error {
			r := long(t, time.Minute)
			for i := range 3 {
				mustPost(t, c, r, a, b, fmt.Sprint(i))
			}
			return postAs(c, ctxT(t), r, b, a, []byte("4th"))
		}, relay.ErrRoomMessageLimit},
		{"room byte limit", func(t *testing.T) error {
			r := long(t, time.Minute)
			for range 3 {
				if err := postAs(c, ctxT(t), r, a, b, bytes.Repeat([]byte{2}, 1000)); err != nil {
					if errors.Is(err, relay.ErrRoomMessageLimit) {
						return err
					}
					t.Fatalf("post: %v", err)
				}
			}
			return errors.New("no limit hit")
		}, relay.ErrRoomMessageLimit},
		{"expired room", func(t *testing.T) error {
			r := mustRoom(t, c, 2) // default TTL 200ms
			mustPost(t, c, r, a, b, "early")
			time.Sleep(300 * time.Millisecond)
			return postAs(c, ctxT(t), r, a, b, []byte("late"))
		}, relay.ErrRoomExpired},
		{"long-poll across expiry", func(t *testing.T) error {
			r := mustRoom(t, c, 2)
			_, err := fetchAs(c, ctxT(t), r, a, 0, 5*time.Second)
			return err
		}, relay.ErrRoomExpired},
		{"closed after all leave", func(t *testing.T) error {
			r := long(t, time.Minute)
			mustPost(t, c, r, a, b, "x")
			if _, err := fetchAs(c, ctxT(t), r, b, 0, 0); err != nil {
				t.Fatalf("b joins: %v", err)
			}
			if err := leaveAs(c, ctxT(t), r, a); err != nil {
				t.Fatalf("leave a: %v", err)
			}
			if err := leaveAs(c, ctxT(t), r, a); err != nil {
				t.Fatalf("leave a twice: %v", err)
			}
			if err := postAs(c, ctxT(t), r, a, b, []byte("after leaving")); !errors.Is(err, relay.ErrPartyLeft) {
				t.Fatalf("post after leaving: %v", err)
			}
			if _, err := fetchAs(c, ctxT(t), r, b, 0, 0); err != nil {
				t.Fatalf("b still in the room: %v", err)
			}
			if err := leaveAs(c, ctxT(t), r, b); err != nil {
				t.Fatalf("leave b: %v", err)
			}
			_, err := fetchAs(c, ctxT(t), r, b, 0, 0)
			return err
		}, relay.ErrRoomExpired},
		{"ttl over max", func(t *testing.T) error {
			_, err := c.CreateRoomTTL(ctxT(t), 2, 2*time.Hour)
			return err
		}, relay.ErrBadRequest},
		{"size over max", func(t *testing.T) error {
			_, err := c.CreateRoom(ctxT(t), 6)
			return err
		}, relay.ErrBadRequest},
		{"malformed room id", func(t *testing.T) error {
			return postAs(c, ctxT(t), "not-a-room", a, "", []byte("x"))
		}, relay.ErrBadRequest},
		{"uppercase party", func(t *testing.T) error {
			return postAs(c, ctxT(t), long(t, time.Minute), strings.ToUpper(a)+"A", "", []byte("x"))
		}, relay.ErrBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run(t)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestTooManyRoomsAndForget(t *testing.T) {
	srv, addr := testkit.RelayServer(t, relay.Config{
		MaxRooms:       2,
		DefaultRoomTTL: time.Minute,
		ForgetAfter:    200 * time.Millisecond,
		GCInterval:     20 * time.Millisecond,
	})
	c := newClient(t, addr)
	a := party(1)
	r1 := mustRoom(t, c, 1)
	mustRoom(t, c, 1)
	if _, err := c.CreateRoom(ctxT(t), 1); !errors.Is(err, relay.ErrTooManyRooms) {
		t.Fatalf("third room: %v, want ErrTooManyRooms", err)
	}
	if err := leaveAs(c, ctxT(t), r1, a); err != nil { // sole member leaves: closed
		t.Fatalf("leave: %v", err)
	}
	if _, err := fetchAs(c, ctxT(t), r1, a, 0, 0); !errors.Is(err, relay.ErrRoomExpired) {
		t.Fatalf("closed room: %v, want ErrRoomExpired", err)
	}
	r3 := mustRoom(t, c, 1)
	if r3 == r1 {
		t.Fatalf("room id reused")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := fetchAs(c, ctxT(t), r1, a, 0, 0)
		if errors.Is(err, relay.ErrUnknownRoom) {
			break
		}
		if !errors.Is(err, relay.ErrRoomExpired) || time.Now().After(deadline) {
			t.Fatalf("forgotten room: %v, want ErrUnknownRoom eventually", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := srv.Stats()
	if st.RoomsOpen != 2 || st.RoomsCreated != 3 || st.RoomsClosedLeft != 1 || st.Tombstones != 0 {
		t.Fatalf("stats %+v", st)
	}
	if st.Rejects[relay.CodeTooManyRooms] != 1 || st.Rejects[relay.CodeRoomExpired] == 0 || st.Rejects[relay.CodeUnknownRoom] != 1 {
		t.Fatalf("rejects %+v", st.Rejects)
	}
}

func TestExpiredRoomsCollected(t *testing.T) {
	srv, addr := testkit.RelayServer(t, relay.Config{
		DefaultRoomTTL: 100 * time.Millisecond,
		GCInterval:     20 * time.Millisecond,
		ForgetAfter:    time.Hour,
	})
	c := newClient(t, addr)
	for range 5 {
		mustRoom(t, c, 2)
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.Stats().RoomsOpen != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("expired rooms not collected: %+v", srv.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := srv.Stats(); st.RoomsClosedExpire != 5 || st.Tombstones != 5 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTombstoneCap(t *testing.T) {
	srv, addr := testkit.RelayServer(t, relay.Config{MaxTombstones: 2})
	c := newClient(t, addr)
	a := party(1)
	var rooms []string
	for range 3 {
		r := mustRoom(t, c, 1)
		if err := leaveAs(c, ctxT(t), r, a); err != nil {
			t.Fatal(err)
		}
		rooms = append(rooms, r)
	}
	want := []error{relay.ErrUnknownRoom, relay.ErrRoomExpired, relay.ErrRoomExpired}
	for i, r := range rooms {
		if err := postAs(c, ctxT(t), r, a, "", []byte("x")); !errors.Is(err, want[i]) {
			t.Errorf("room %d: %v, want %v", i, err, want[i])
		}
	}
	if n := srv.Stats().Tombstones; n != 2 {
		t.Errorf("tombstones %d, want 2", n)
	}
}

// rawReq sends a hand-made request (with "Authorization: Seat <token>" if
// a token is given) and returns the status and decoded error code.
func rawReq(t *testing.T, method, url, body string, token ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(token) > 0 && token[0] != "" {
		req.Header.Set("Authorization", "Seat "+token[0])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var code string
	if resp.StatusCode != http.StatusOK {
		var eb struct{ Error, Message string }
		if err := jsonUnmarshal(data, &eb); err != nil || eb.Message == "" {
			t.Errorf("%s %s: error body %q is not {error,message} JSON", method, url, data)
		}
		code = eb.Error
	}
	return resp.StatusCode, code, resp.Header
}

func TestBadRequests(t *testing.T) {
	addr := testkit.Relay(t, relay.Config{MaxWait: 2 * time.Second, MaxRoomSize: 10})
	base := "http://" + addr
	c := newClient(t, addr)
	room := mustRoom(t, c, 2)
	a := party(1)
	st, err := seatOf(ctxT(t), c, room, a)
	if err != nil {
		t.Fatal(err)
	}
	tok := st.Token()
	outsider := strings.Repeat("ab", 32) // a well-formed token no seat holds
	msgs := base + "/v1/rooms/" + room + "/messages"
	seats := base + "/v1/rooms/" + room + "/seats"
	claim := func(edit func(*relay.SeatClaim)) string {
		name, err := c.Name(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		sc, err := relay.NewSeatClaim(identityOf(party(2)), name, room, testMembers(), time.Now().UnixMilli(), [32]byte{})
		if err != nil {
			t.Fatal(err)
		}
		edit(&sc)
		var b strings.Builder
		_ = jsonEncode(&b, sc)
		return b.String()
	}
	tests := []struct {
		name, method, url, body, token string
		status                         int
		code                           string
	}{
		{"post without seat", "POST", msgs + "?to=", "x", "", 401, "seat_required"},
		{"post with the from of old", "POST", msgs + "?from=" + a + "&to=", "x", "", 401, "seat_required"},
		{"post with an unknown token", "POST", msgs + "?to=", "x", outsider, 401, "seat_required"},
		{"post bad to", "POST", msgs + "?to=zz", "x", tok, 400, "bad_request"},
		{"post to a non-member", "POST", msgs + "?to=" + strings.Repeat("02", 33), "x", tok, 400, "bad_request"},
		{"post duplicate to", "POST", msgs + "?to=&to=", "x", tok, 400, "bad_request"},
		{"post empty body", "POST", msgs + "?to=", "", tok, 400, "bad_request"},
		{"fetch without seat", "GET", msgs + "?after=0", "", "", 401, "seat_required"},
		{"fetch bad after", "GET", msgs + "?after=-1", "", tok, 400, "bad_request"},
		{"fetch after overflow", "GET", msgs + "?after=18446744073709551616", "", tok, 400, "bad_request"},
		{"fetch wait over the wire limit", "GET", msgs + "?wait_ms=30001", "", tok, 400, "bad_request"},
		{"fetch negative wait", "GET", msgs + "?wait_ms=-5", "", tok, 400, "bad_request"},
		{"fetch fractional wait", "GET", msgs + "?wait_ms=1.5", "", tok, 400, "bad_request"},
		{"fetch tiny max_bytes", "GET", msgs + "?max_bytes=10", "", tok, 400, "bad_request"},
		{"leave without seat", "DELETE", base + "/v1/rooms/" + room, "", "", 401, "seat_required"},
		{"leave with an unknown token", "DELETE", base + "/v1/rooms/" + room, "", outsider, 401, "seat_required"},
		{"uppercase room id", "GET", base + "/v1/rooms/" + strings.ToUpper(room) + "/messages", "", tok, 400, "bad_request"},
		{"uuid v1 room id", "GET", base + "/v1/rooms/6f1c3a52-7d0e-1b8a-9c1d-2e3f4a5b6c7d/messages", "", tok, 400, "bad_request"},
		{"claim not json", "POST", seats, "party=" + a, "", 400, "bad_request"},
		{"claim unknown field", "POST", seats, `{"party":"` + a + `","x":1}`, "", 400, "bad_request"},
		{"claim members unsorted", "POST", seats, claim(func(sc *relay.SeatClaim) {
			sc.Members[0], sc.Members[1] = sc.Members[1], sc.Members[0]
		}), "", 400, "bad_request"},
		{"claim party outside members", "POST", seats, claim(func(sc *relay.SeatClaim) { sc.Party = a; sc.Members = sc.Members[:1] }), "", 400, "bad_request"},
		{"claim by another key", "POST", seats, claim(func(sc *relay.SeatClaim) { sc.Party = a }), "", 403, "bad_seat_claim"},
		{"claim time altered", "POST", seats, claim(func(sc *relay.SeatClaim) { sc.Time-- }), "", 403, "bad_seat_claim"},
		{"claim an hour old", "POST", seats, claim(func(sc *relay.SeatClaim) { sc.Time -= 3600_000 }), "", 403, "stale_seat_claim"},
		{"claim in an hour", "POST", seats, claim(func(sc *relay.SeatClaim) { sc.Time += 3600_000 }), "", 403, "stale_seat_claim"},
		{"claim signature flipped", "POST", seats, claim(func(sc *relay.SeatClaim) {
			sc.Sig = sc.Sig[:10] + string("01"[1-(sc.Sig[10]-'0')%2]) + sc.Sig[11:]
		}), "", 403, "bad_seat_claim"},
		{"create no body", "POST", base + "/v1/rooms", "", "", 400, "bad_request"},
		{"create not json", "POST", base + "/v1/rooms", "size=2", "", 400, "bad_request"},
		{"create missing size", "POST", base + "/v1/rooms", `{"ttl_seconds":5}`, "", 400, "bad_request"},
		{"create size zero", "POST", base + "/v1/rooms", `{"size":0}`, "", 400, "bad_request"},
		{"create size too big", "POST", base + "/v1/rooms", `{"size":11}`, "", 400, "bad_request"},
		{"create size float", "POST", base + "/v1/rooms", `{"size":2.5}`, "", 400, "bad_request"},
		{"create ttl zero", "POST", base + "/v1/rooms", `{"size":2,"ttl_seconds":0}`, "", 400, "bad_request"},
		{"create unknown field", "POST", base + "/v1/rooms", `{"size":2,"sise":3}`, "", 400, "bad_request"},
		{"create trailing data", "POST", base + "/v1/rooms", `{"size":2}{}`, "", 400, "bad_request"},
		{"wrong method on rooms", "GET", base + "/v1/rooms", "", "", 405, "method_not_allowed"},
		{"wrong method on messages", "PUT", msgs, "x", tok, 405, "method_not_allowed"},
		{"wrong method on seats", "GET", seats, "", "", 405, "method_not_allowed"},
		{"wrong method on room", "POST", base + "/v1/rooms/" + room, "", "", 405, "method_not_allowed"},
		{"wrong method on healthz", "POST", base + "/healthz", "", "", 405, "method_not_allowed"},
		{"wrong method on info", "POST", base + "/v1/info", "", "", 405, "method_not_allowed"},
		{"unknown path", "GET", base + "/v2/rooms", "", "", 404, "not_found"},
		{"unknown room subpath", "GET", base + "/v1/rooms/" + room + "/members", "", "", 404, "not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, code, hdr := rawReq(t, tc.method, tc.url, tc.body, tc.token)
			if status != tc.status || code != tc.code {
				t.Fatalf("got %d %q, want %d %q", status, code, tc.status, tc.code)
			}
			if status == 405 && hdr.Get("Allow") == "" {
				t.Errorf("405 without Allow header")
			}
		})
	}
	// The room is untouched by all of the above: the seat still works and
	// the second seat is free.
	mustPost(t, c, room, a, "", "still usable")
	if _, err := fetchAs(c, ctxT(t), room, party(2), 0, 0); err != nil {
		t.Fatalf("second seat: %v", err)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	addr := testkit.Relay(t)
	c := newClient(t, addr)
	if err := c.Health(ctxT(t)); err != nil {
		t.Fatalf("Health: %v", err)
	}
	room := mustRoom(t, c, 2)
	mustPost(t, c, room, party(1), party(2), "12345")
	if _, err := fetchAs(c, ctxT(t), room, party(2), 0, 0); err != nil {
		t.Fatal(err)
	}
	_ = postAs(c, ctxT(t), room, party(3), "", []byte("x")) // room_full
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("content type %q", ct)
	}
	text := string(data)
	for _, want := range []string{
		"# TYPE quorum_relay_rooms_open gauge\nquorum_relay_rooms_open 1\n",
		"quorum_relay_rooms_created_total 1\n",
		"quorum_relay_messages_total 1\n",
		"quorum_relay_message_bytes_total 5\n",
		"quorum_relay_messages_delivered_total 1\n",
		`quorum_relay_rejects_total{reason="room_full"} 1` + "\n",
		`quorum_relay_rejects_total{reason="too_many_rooms"} 0` + "\n",
		"# TYPE quorum_relay_longpoll_waiters gauge\nquorum_relay_longpoll_waiters 0\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
	// Every sample line belongs to a family announced with HELP and TYPE.
	typed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			typed[strings.Fields(f)[0]] = true
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		if !typed[name] {
			t.Errorf("sample %q without TYPE", line)
		}
	}
}

func TestConcurrentParties(t *testing.T) {
	const n, k = 8, 20
	addr := testkit.Relay(t)
	c := newClient(t, addr)
	room := mustRoom(t, c, n)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errc := make(chan error, 2*n)
	received := make([][]relay.Message, n)
	for i := range n {
		conn := joinAs(t, c, room, party(i))
		wg.Add(2)
		go func() { // sender: k broadcasts and k messages to the next party, interleaved
			defer wg.Done()
			for j := range k {
				if err := conn.Send(ctx, "", fmt.Appendf(nil, "b %d %d", i, j)); err != nil {
					errc <- err
					return
				}
				if err := conn.Send(ctx, party((i+1)%n), fmt.Appendf(nil, "p %d %d", i, j)); err != nil {
					errc <- err
					return
				}
			}
		}()
		go func() { // receiver: (n-1)·k broadcasts plus k from the previous party
			defer wg.Done()
			for range (n-1)*k + k {
				m, err := conn.Recv(ctx)
				if err != nil {
					errc <- err
					return
				}
				received[i] = append(received[i], m)
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	for i, msgs := range received {
		next := map[string]int{} // per (kind, sender): next expected counter
		var last uint64
		for _, m := range msgs {
			if m.Seq <= last {
				t.Fatalf("party %d: seq %d after %d", i, m.Seq, last)
			}
			last = m.Seq
			var kind string
			var from, j int
			if _, err := fmt.Sscanf(string(m.Body), "%s %d %d", &kind, &from, &j); err != nil {
				t.Fatalf("party %d: body %q", i, m.Body)
			}
			if m.From != party(from) {
				t.Fatalf("party %d: body %q from %s", i, m.Body, m.From)
			}
			if kind == "p" && (from+1)%n != i {
				t.Fatalf("party %d got %q meant for another", i, m.Body)
			}
			if from == i {
				t.Fatalf("party %d got its own %q", i, m.Body)
			}
			key := fmt.Sprint(kind, from)
			if j != next[key] {
				t.Fatalf("party %d: %q out of sender order (want %d)", i, m.Body, next[key])
			}
			next[key]++
		}
		if len(msgs) != n*k {
			t.Fatalf("party %d got %d messages", i, len(msgs))
		}
	}
}

func TestConnRecv(t *testing.T) {
	addr := testkit.Relay(t)
	c := newClient(t, addr, relay.ClientConfig{PollChunk: 50 * time.Millisecond})
	room := mustRoom(t, c, 2)
	a, b := joinAs(t, c, room, party(1)), joinAs(t, c, room, party(2))

	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Millisecond)
		defer cancel()
		_, err := b.Recv(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want DeadlineExceeded", err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := b.Recv(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want Canceled", err)
		}
	})
	t.Run("across several poll chunks, then buffered in order", func(t *testing.T) {
		var posts []post
		for i := range 5 {
			posts = append(posts, post{a.Party(), b.Party(), string([]byte{byte(i)})})
		}
		posted := postLater(c, room, 200*time.Millisecond, posts...) // > several 50ms chunks
		defer checkPosted(t, posted)
		ctx := ctxT(t)
		var prev uint64
		for i := range 5 {
			m, err := b.Recv(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m.Seq <= prev || !bytes.Equal(m.Body, []byte{byte(i)}) || m.From != a.Party() {
				t.Fatalf("message %d: %+v", i, m)
			}
			prev = m.Seq
		}
	})
	t.Run("leave", func(t *testing.T) {
		if err := a.Leave(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		if err := a.Send(ctxT(t), b.Party(), []byte("x")); !errors.Is(err, relay.ErrPartyLeft) {
			t.Fatalf("send after leave: %v", err)
		}
		if err := b.Leave(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Recv(ctxT(t)); !errors.Is(err, relay.ErrRoomExpired) {
			t.Fatalf("recv in closed room: %v", err)
		}
	})
}

func TestIntercept(t *testing.T) {
	a, b, cc := party(1), party(2), party(3)
	var mu sync.Mutex
	var seen []string
	srv, addr := testkit.RelayServer(t, relay.Config{
		Intercept: func(room, from, to string, body []byte) ([]byte, bool) {
			mu.Lock()
			seen = append(seen, from+">"+to)
			mu.Unlock()
			switch {
			case to == cc: // drop everything for c
				return nil, true
			case from == a: // tamper with a's ciphertext
				nb := append([]byte(nil), body...)
				nb[0] ^= 0xff
				return nb, false
			}
			return nil, false
		},
	})
	c := newClient(t, addr)
	room := mustRoom(t, c, 3)
	mustPost(t, c, room, a, b, "\x00abc")
	mustPost(t, c, room, b, cc, "for c") // acknowledged, then dropped
	mustPost(t, c, room, b, a, "untouched")
	got, err := fetchAs(c, ctxT(t), room, b, 0, 0)
	if err != nil || len(got) != 1 || string(got[0].Body) != "\xffabc" {
		t.Fatalf("b: %v %+v, want the tampered body", err, got)
	}
	got, err = fetchAs(c, ctxT(t), room, cc, 0, 100*time.Millisecond)
	if err != nil || len(got) != 0 {
		t.Fatalf("c: %v %+v, want nothing", err, got)
	}
	got, err = fetchAs(c, ctxT(t), room, a, 0, 0)
	if err != nil || len(got) != 1 || string(got[0].Body) != "untouched" || got[0].Seq != 3 {
		t.Fatalf("a: %v %+v", err, got)
	}
	if st := srv.Stats(); st.Dropped != 1 || st.Messages != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Rejected posts never reach the hook.
	_ = postAs(c, ctxT(t), room, party(4), "", []byte("x")) // room full
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 {
		t.Fatalf("hook saw %v", seen)
	}
}

func TestShutdownWakesWaiters(t *testing.T) {
	srv, err := relay.New(relay.Config{})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveOn(t, srv)
	c := newClient(t, addr)
	room := mustRoom(t, c, 2)
	errc := make(chan error, 1)
	go func() {
		_, err := fetchAs(c, context.Background(), room, party(1), 0, 25*time.Second)
		errc <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for srv.Stats().LongPollWaiters != 1 {
		if time.Now().After(deadline) {
			t.Fatal("fetch never started waiting")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-errc; !errors.Is(err, relay.ErrUnavailable) {
		t.Fatalf("waiting fetch got %v, want ErrUnavailable", err)
	}
	if el := time.Since(start); el > 8*time.Second {
		t.Fatalf("shutdown took %v: the long-poll was not released", el)
	}
}

func TestClientValidatesRelayAnswers(t *testing.T) {
	a, b := party(1), party(2)
	room := "6f1c3a52-7d0e-4b8a-9c1d-2e3f4a5b6c7d"
	tests := []struct {
		name   string
		status int
		body   string
		want   error
	}{
		{"ok", 200, `{"messages":[{"seq":2,"from":"` + b + `","to":"` + a + `","body":"eA=="}]}`, nil},
		{"not json", 200, `<html>`, relay.ErrProtocol},
		{"no list", 200, `{}`, relay.ErrProtocol},
		{"seq not above after", 200, `{"messages":[{"seq":1,"from":"` + b + `","to":"","body":"eA=="}]}`, relay.ErrProtocol},
		{"reordered", 200, `{"messages":[{"seq":5,"from":"` + b + `","to":"","body":"eA=="},{"seq":4,"from":"` + b + `","to":"","body":"eA=="}]}`, relay.ErrProtocol},
		{"for someone else", 200, `{"messages":[{"seq":5,"from":"` + b + `","to":"` + party(9) + `","body":"eA=="}]}`, relay.ErrProtocol},
		{"own broadcast", 200, `{"messages":[{"seq":5,"from":"` + a + `","to":"","body":"eA=="}]}`, relay.ErrProtocol},
		{"bad sender", 200, `{"messages":[{"seq":5,"from":"ZZ","to":"","body":"eA=="}]}`, relay.ErrProtocol},
		{"bad base64", 200, `{"messages":[{"seq":5,"from":"` + b + `","to":"","body":"!!"}]}`, relay.ErrProtocol},
		{"410 code", 410, `{"error":"room_expired","message":"gone"}`, relay.ErrRoomExpired},
		{"409 full", 409, `{"error":"room_full","message":"full"}`, relay.ErrRoomFull},
		{"413 without json", 413, `Request Entity Too Large`, relay.ErrTooLarge},
		{"429", 429, `{"error":"room_message_limit","message":"x"}`, relay.ErrRoomMessageLimit},
		{"503 too many", 503, `{"error":"too_many_rooms","message":"x"}`, relay.ErrTooManyRooms},
		{"502 proxy", 502, `bad gateway`, relay.ErrUnavailable},
		{"404 code", 404, `{"error":"unknown_room","message":"x"}`, relay.ErrUnknownRoom},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeRelay(t, tc.status, tc.body)
			c := newClient(t, addr)
			msgs, err := fetchAs(c, ctxT(t), room, a, 1, 0) // the fake relay seats anyone
			if tc.want == nil {
				if err != nil || len(msgs) != 1 {
					t.Fatalf("got %v %+v", err, msgs)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var re *relay.Error
			if tc.status != 200 && (!errors.As(err, &re) || re.Status != tc.status) {
				t.Fatalf("no *relay.Error with status %d in %v", tc.status, err)
			}
		})
	}
	t.Run("network error", func(t *testing.T) {
		c := newClient(t, "127.0.0.1:1") // nothing listens on port 1
		_, err := fetchAs(c, ctxT(t), room, a, 0, 0)
		if !errors.Is(err, relay.ErrTransport) {
			t.Fatalf("got %v, want ErrTransport", err)
		}
	})
}

func TestNewClientBaseURL(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"127.0.0.1:80", "http://127.0.0.1:80", true},
		{"http://relay.example:8790/", "http://relay.example:8790", true},
		{"https://relay.example/prefix/", "https://relay.example/prefix", true},
		{"ftp://relay.example", "", false},
		{"http://", "", false},
		{"http://u:p@relay.example", "", false},
		{"http://relay.example/?x=1", "", false},
	}
	for _, tc := range tests {
		c, err := relay.NewClient(tc.in, relay.ClientConfig{})
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v", tc.in, err)
			continue
		}
		if tc.ok && c.BaseURL() != tc.want {
			t.Errorf("%q: base %q, want %q", tc.in, c.BaseURL(), tc.want)
		}
	}
	if _, err := relay.NewClient("x:1", relay.ClientConfig{PollChunk: time.Minute}); err == nil {
		t.Errorf("PollChunk over the wire limit accepted")
	}
}

func TestTLS(t *testing.T) {
	pki := testkit.NewRelayPKI(t)
	fileCfg, err := relay.ServerTLSConfig(pki.ServerCertFile, pki.ServerKeyFile, pki.CAFile)
	if err != nil {
		t.Fatalf("ServerTLSConfig: %v", err)
	}
	fileClient, err := relay.ClientTLSConfig(pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		t.Fatalf("ClientTLSConfig: %v", err)
	}
	tests := []struct {
		name   string
		server relay.Config
		client relay.ClientConfig
		ok     bool
	}{
		{"server auth only", relay.Config{TLS: pki.ServerTLS(false)}, relay.ClientConfig{TLS: pki.ClientTLS(false)}, true},
		{"untrusted server", relay.Config{TLS: pki.ServerTLS(false)}, relay.ClientConfig{TLS: &tls12}, false},
		{"client cert required and given", relay.Config{TLS: pki.ServerTLS(true)}, relay.ClientConfig{TLS: pki.ClientTLS(true)}, true},
		{"client cert required, none given", relay.Config{TLS: pki.ServerTLS(true)}, relay.ClientConfig{TLS: pki.ClientTLS(false)}, false},
		{"config from PEM files", relay.Config{TLS: fileCfg}, relay.ClientConfig{TLS: fileClient}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := testkit.Relay(t, tc.server)
			c := newClient(t, addr, tc.client)
			if !strings.HasPrefix(c.BaseURL(), "https://") {
				t.Fatalf("base %s", c.BaseURL())
			}
			room, err := c.CreateRoom(ctxT(t), 2)
			if !tc.ok {
				if err == nil || !errors.Is(err, relay.ErrTransport) {
					t.Fatalf("got %v, want a transport (TLS) error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("CreateRoom: %v", err)
			}
			mustPost(t, c, room, party(1), party(2), "over tls")
			msgs, err := fetchAs(c, ctxT(t), room, party(2), 0, time.Second)
			if err != nil || len(msgs) != 1 || string(msgs[0].Body) != "over tls" {
				t.Fatalf("Fetch: %v %+v", err, msgs)
			}
			// Plain HTTP against the TLS port is refused.
			plain := newClient(t, "http://"+addr)
			if _, err := plain.CreateRoom(ctxT(t), 2); err == nil {
				t.Fatalf("plain HTTP accepted by a TLS relay")
			}
		})
	}
}

func TestErrorIs(t *testing.T) {
	tests := []struct {
		err  *relay.Error
		want error
		not  error
	}{
		{&relay.Error{Status: 409, Code: "room_full"}, relay.ErrRoomFull, relay.ErrPartyLeft},
		{&relay.Error{Status: 409, Code: "party_left"}, relay.ErrPartyLeft, relay.ErrRoomFull},
		{&relay.Error{Status: 404, Code: "unknown_room"}, relay.ErrUnknownRoom, relay.ErrRoomExpired},
		{&relay.Error{Status: 404, Code: "not_found"}, nil, relay.ErrUnknownRoom},
		{&relay.Error{Status: 404}, nil, relay.ErrUnknownRoom},
		{&relay.Error{Status: 410, Code: "room_expired"}, relay.ErrRoomExpired, relay.ErrUnknownRoom},
		{&relay.Error{Status: 413, Code: "envelope_too_large"}, relay.ErrTooLarge, relay.ErrBadRequest},
		{&relay.Error{Status: 429, Code: "room_message_limit"}, relay.ErrRoomMessageLimit, relay.ErrTooManyRooms},
		{&relay.Error{Status: 503, Code: "too_many_rooms"}, relay.ErrTooManyRooms, relay.ErrUnavailable},
		{&relay.Error{Status: 503, Code: "shutting_down"}, relay.ErrUnavailable, relay.ErrTooManyRooms},
		{&relay.Error{Status: 400, Code: "bad_request"}, relay.ErrBadRequest, relay.ErrTooLarge},
	}
	for _, tc := range tests {
		wrapped := fmt.Errorf("ctx: %w", tc.err)
		if tc.want != nil && !errors.Is(wrapped, tc.want) {
			t.Errorf("%v: not %v", tc.err, tc.want)
		}
		if errors.Is(wrapped, tc.not) {
			t.Errorf("%v: matches %v", tc.err, tc.not)
		}
	}
}

func TestRoomInfo(t *testing.T) {
	addr := testkit.Relay(t, relay.Config{DefaultRoomTTL: time.Minute})
	c := newClient(t, addr)
	ctx := context.Background()
	room, err := c.CreateRoom(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.RoomInfo(ctx, room)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != room || info.Size != 3 || time.Until(info.ExpiresAt) <= 0 {
		t.Fatalf("room info %+v", info)
	}
	if _, err := c.RoomInfo(ctx, "0f0e0d0c-0b0a-4908-8706-050403020100"); !errors.Is(err, relay.ErrUnknownRoom) {
		t.Fatalf("unknown room: %v", err)
	}
	if _, err := c.RoomInfo(ctx, "not-a-room"); !errors.Is(err, relay.ErrBadRequest) {
		t.Fatalf("bad id: %v", err)
	}
}
