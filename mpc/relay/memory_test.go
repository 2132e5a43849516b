package relay

import (
	"encoding/json"
	"runtime"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/valyala/fasthttp"

	"github.com/quorumd/quorumd/mpc/envelope"
)

// handlerSeat creates a room on srv and claims one seat in it, through the
// real handler, returning the room id and the seat token.
func handlerSeat(t *testing.T, srv *Server) (room, token string) {
	t.Helper()
	var create fasthttp.RequestCtx
	create.Request.Header.SetMethod("POST")
	create.Request.SetRequestURI("/v1/rooms")
	create.Request.SetBodyString(`{"size":2}`)
	srv.Handler(&create)
	var created struct {
		RoomUUID string `json:"room_uuid"`
	}
	if err := json.Unmarshal(create.Response.Body(), &created); err != nil {
		t.Fatalf("create: %q", create.Response.Body())
	}
	var k btcec.ModNScalar
	k.SetInt(5)
	id, err := envelope.NewIdentity(&k)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := NewSeatClaim(id, srv.cfg.Name, created.RoomUUID, []envelope.Party{id.Public()}, time.Now().UnixMilli(), [32]byte{})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(sc)
	var claim fasthttp.RequestCtx
	claim.Request.Header.SetMethod("POST")
	claim.Request.SetRequestURI("/v1/rooms/" + created.RoomUUID + "/seats")
	claim.Request.SetBody(body)
	srv.Handler(&claim)
	var got struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(claim.Response.Body(), &got); err != nil || got.Token == "" {
		t.Fatalf("claim: %q", claim.Response.Body())
	}
	return created.RoomUUID, got.Token
}

func heapNow() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestMessageOverheadMatchesHeap measures the real heap a stored envelope
// holds (posting through the handler, so nothing but the relay's own state
// stays live) and checks that the accounted cost never undercounts it and
// does not overcount it wildly either.
func TestMessageOverheadMatchesHeap(t *testing.T) {
	for _, size := range []int{1, 100, 1000} {
		srv, err := New(Config{MaxRoomMessages: 1 << 20, MaxTotalMessages: 1 << 20, MaxRoomBytes: 1 << 30, MaxTotalBytes: 1 << 31})
		if err != nil {
			t.Fatal(err)
		}
		room, token := handlerSeat(t, srv)
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI("/v1/rooms/" + room + "/messages?to=")
		ctx.Request.Header.Set("Authorization", "Seat "+token)
		ctx.Request.SetBody(make([]byte, size))
		srv.Handler(&ctx) // warm-up: lazily allocated parser state
		n := 50000 / (1 + size/100)
		accounted0 := srv.totalBytes.Load()
		before := heapNow()
		for range n {
			ctx.Response.Reset()
			srv.Handler(&ctx)
			if ctx.Response.StatusCode() != 200 {
				t.Fatalf("post: %d %q", ctx.Response.StatusCode(), ctx.Response.Body())
			}
		}
		after := heapNow()
		perMsg := float64(after-before) / float64(n)
		accounted := float64(srv.totalBytes.Load()-accounted0) / float64(n)
		t.Logf("%4d-byte envelopes: heap %.1f B each, accounted %.0f B (body cap %d + MessageOverhead %d)",
			size, perMsg, accounted, int(accounted)-MessageOverhead, MessageOverhead)
		if perMsg > accounted {
			t.Errorf("%d-byte envelopes hold %.1f B of heap each but are accounted %.0f B: raise MessageOverhead", size, perMsg, accounted)
		}
		if perMsg < accounted/2 {
			t.Errorf("%d-byte envelopes hold %.1f B of heap each, accounted %.0f B: the accounting is far off", size, perMsg, accounted)
		}
		runtime.KeepAlive(srv)
	}
}
