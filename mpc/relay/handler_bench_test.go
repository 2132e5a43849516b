package relay_test

import (
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/quorumd/quorumd/mpc/relay"
)

// handlerCall runs one request through srv.Handler in this goroutine (no
// connection, no kernel: the relay's own CPU per request) and returns the
// status and body.
func handlerCall(srv *relay.Server, method, uri, token string, body []byte) (int, []byte) {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	if token != "" {
		req.Header.Set("Authorization", "Seat "+token)
	}
	req.SetBody(body)
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	srv.Handler(&ctx)
	return ctx.Response.StatusCode(), append([]byte(nil), ctx.Response.Body()...)
}

// BenchmarkHandlerSign runs the relay's side of a 2-signer signature
// through its handler, request by request as quorumd now makes them: a
// room; per signer a seat claim carrying its nonce envelope (the second
// also fetching the first's), then a post of its partial signature that
// fetches the other's and leaves (leave_after). cpu-µs/op is the relay's
// CPU for one signature's 5 requests, without HTTP parsing or sockets
// (and the benchmark's own decoding of the answers).
func BenchmarkHandlerSign(b *testing.B) {
	// Logs as quorum-relay's: JSON at info level, to a file (a write each).
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	srv, err := relay.New(relay.Config{Name: "bench", MaxRooms: 1 << 20, MaxRoomsPerClient: 1 << 20, ClientRoomRate: 1e9, ClientRoomBurst: 1 << 30,
		MaxTombstones: 1024, Logger: slog.New(slog.NewJSONHandler(devnull, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ids := testIDs()[:2]
	members := testMembers()[:3]
	env := make([]byte, 300)
	claimBody := func(i int, room string) []byte {
		sc, err := relay.NewSeatClaim(ids[i], "bench", room, members, time.Now().UnixMilli(), [32]byte{})
		if err != nil {
			b.Fatal(err)
		}
		sc.Envelope = env
		out, _ := json.Marshal(sc)
		return out
	}
	var tok [2]string
	var signing time.Duration // CPU of the claims' signing, not the relay's
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		st, body := handlerCall(srv, "POST", "/v1/rooms", "", []byte(`{"size":2}`))
		var rr struct {
			Room string `json:"room_uuid"`
		}
		if st != 200 || json.Unmarshal(body, &rr) != nil {
			b.Fatalf("room: %d %s", st, body)
		}
		// The claims' signatures are the parties' work, not the relay's.
		b.StopTimer()
		s0 := cpuTime()
		c0, c1 := claimBody(0, rr.Room), claimBody(1, rr.Room)
		signing += cpuTime() - s0
		b.StartTimer()
		base := "/v1/rooms/" + rr.Room
		for i, c := range [][]byte{c0, c1} {
			q := "?to="
			if i == 1 {
				q += "&after=0&wait_ms=0&max_bytes=65536"
			}
			st, body := handlerCall(srv, "POST", base+"/seats"+q, "", c)
			var sr struct {
				Token string `json:"token"`
			}
			if st != 200 || json.Unmarshal(body, &sr) != nil {
				b.Fatalf("claim: %d %s", st, body)
			}
			tok[i] = sr.Token
		}
		for i := range 2 {
			after := "1"
			if i == 1 {
				after = "2"
			}
			st, body := handlerCall(srv, "POST", base+"/messages?to=&after="+after+"&wait_ms="+strconv.Itoa(i*1000)+"&max_bytes=65536&leave_after=1", tok[i], env)
			if st != 200 {
				b.Fatalf("post+fetch: %d %s", st, body)
			}
		}
	}
	// CPU, unlike ns/op, does not count waiting for a loaded machine.
	b.ReportMetric(float64((cpuTime()-cpu0-signing).Microseconds())/float64(b.N), "cpu-µs/op")
}
