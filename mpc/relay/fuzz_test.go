package relay

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/valyala/fasthttp"

	"github.com/quorumd/quorumd/mpc/envelope"
)

const fuzzParty = "02aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899"

// FuzzRequest drives the real handler (routing, query parsing, body
// decoding, seat checks) with arbitrary requests. In the URI and body the
// literal ROOM becomes a live room id and a body of CLAIM a valid seat claim
// for it; seated=true sends a live seat's token, so the fuzzer reaches the
// seated handlers.
func FuzzRequest(f *testing.F) {
	for _, seed := range []struct {
		method, uri string
		seated      bool
		body        string
	}{
		{"POST", "/v1/rooms", false, `{"size":2}`},
		{"POST", "/v1/rooms", false, `{"size":3,"ttl_seconds":60}`},
		{"POST", "/v1/rooms", false, `{"size":-1}`},
		{"POST", "/v1/rooms/ROOM/seats", false, "CLAIM"},
		{"POST", "/v1/rooms/ROOM/seats", false, `{"party":"` + fuzzParty + `","members":["` + fuzzParty + `"],"time_ms":1,"sig":""}`},
		{"POST", "/v1/rooms/ROOM/messages?to=", true, "envelope"},
		{"POST", "/v1/rooms/ROOM/messages?to=" + fuzzParty, true, "x"},
		{"POST", "/v1/rooms/ROOM/messages?to=", false, "x"},
		{"GET", "/v1/rooms/ROOM/messages?after=0&wait_ms=0", true, ""},
		{"GET", "/v1/rooms/ROOM/messages?after=18446744073709551615&wait_ms=1&max_bytes=1024", true, ""},
		{"DELETE", "/v1/rooms/ROOM", true, ""},
		{"GET", "/v1/rooms/ROOM/../../metrics", false, ""},
		{"GET", "/v1/info", false, ""},
		{"GET", "/healthz", false, ""},
		{"PUT", "/v1/rooms/%2e%2e/messages?from=%00", true, "\x00"},
	} {
		f.Add(seed.method, seed.uri, seed.seated, []byte(seed.body))
	}
	srv, err := New(Config{MaxWait: time.Millisecond, MaxRoomSize: 4, MaxRooms: 64, MaxEnvelopeBytes: 256,
		MaxRoomBytes: 8192, MaxRoomMessages: 16, MaxRoomsPerClient: 1 << 20, ClientRoomRate: 1e9, ClientRoomBurst: 1 << 30})
	if err != nil {
		f.Fatal(err)
	}
	var k btcec.ModNScalar
	k.SetInt(7)
	id, err := envelope.NewIdentity(&k)
	if err != nil {
		f.Fatal(err)
	}
	members := []envelope.Party{id.Public()}
	serve := func(method, uri string, token string, body []byte) *fasthttp.RequestCtx {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(method)
		ctx.Request.SetRequestURI(uri)
		if token != "" {
			ctx.Request.Header.Set("Authorization", "Seat "+token)
		}
		ctx.Request.SetBody(body)
		srv.Handler(&ctx)
		return &ctx
	}
	claimFor := func(t *testing.T, room string) []byte {
		sc, err := NewSeatClaim(id, srv.cfg.Name, room, members, time.Now().UnixMilli(), [32]byte{})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(sc)
		return b
	}
	f.Fuzz(func(t *testing.T, method, uri string, seated bool, body []byte) {
		// A fresh room per input keeps inputs independent of each other.
		create := serve("POST", "/v1/rooms", "", []byte(`{"size":3}`))
		var created struct {
			RoomUUID string `json:"room_uuid"`
		}
		if create.Response.StatusCode() == fasthttp.StatusServiceUnavailable {
			srv.sweepAll() // room limit reached: start over
			return
		}
		if err := json.Unmarshal(create.Response.Body(), &created); err != nil || !ValidRoomID(created.RoomUUID) {
			t.Fatalf("create: %d %q", create.Response.StatusCode(), create.Response.Body())
		}
		room := created.RoomUUID
		token := ""
		if seated {
			claim := serve("POST", "/v1/rooms/"+room+"/seats", "", claimFor(t, room))
			var got struct {
				Token string `json:"token"`
			}
			if err := json.Unmarshal(claim.Response.Body(), &got); err != nil || got.Token == "" {
				t.Fatalf("claim: %d %q", claim.Response.StatusCode(), claim.Response.Body())
			}
			token = got.Token
		}
		if string(body) == "CLAIM" {
			body = claimFor(t, room)
		}
		ctx := serve(method, strings.ReplaceAll(uri, "ROOM", room), token, bytes.ReplaceAll(body, []byte("ROOM"), []byte(room)))
		status := ctx.Response.StatusCode()
		out := ctx.Response.Body()
		switch status {
		case 200:
			return
		case 400, 401, 403, 404, 405, 409, 410, 413, 429, 503:
		default:
			t.Fatalf("%s %q: unexpected status %d", method, uri, status)
		}
		var eb errorBody
		if err := json.Unmarshal(out, &eb); err != nil || eb.Error == "" || eb.Message == "" {
			t.Fatalf("%s %q: error body %q", method, uri, out)
		}
		if codeStatus[eb.Error] != status {
			t.Fatalf("%s %q: code %q with status %d", method, uri, eb.Error, status)
		}
		if !seated && status == 200 && strings.Contains(uri, "/messages") {
			t.Fatalf("%s %q answered 200 without a seat", method, uri)
		}
	})
}

// sweepAll ends and forgets every room (fuzzing only).
func (s *Server) sweepAll() {
	s.sweep(time.Now().Add(365 * 24 * time.Hour))
	s.sweep(time.Now().Add(2 * 365 * 24 * time.Hour))
}

// FuzzParseQuery checks the query parsers against their documented bounds.
func FuzzParseQuery(f *testing.F) {
	for _, q := range []string{
		"to=",
		"to=bb",
		"to=aa&to=bb",
		"after=7&wait_ms=30000",
		"after=-1",
		"to=AB",
		"wait_ms=99999999999999999999",
		"max_bytes=1023",
		"max_bytes=99999999999&after=1",
		"to=%61%62&from=%41",
	} {
		f.Add(q)
	}
	const maxWait = 2 * time.Second
	const maxBytes = 1 << 20
	f.Fuzz(func(t *testing.T, q string) {
		var args fasthttp.Args
		args.Parse(q)
		if to, err := parsePostParams(&args); err == nil {
			if to != "" && !ValidParty(to) {
				t.Fatalf("post params accepted to=%q", to)
			}
			if len(args.PeekMulti("to")) > 1 {
				t.Fatalf("duplicate params accepted in %q", q)
			}
		}
		if _, wait, budget, err := parseFetchParams(&args, maxWait, maxBytes); err == nil {
			if wait < 0 || wait > maxWait || budget < minFetchBytes || budget > maxBytes {
				t.Fatalf("fetch params accepted wait=%v max_bytes=%d", wait, budget)
			}
		}
	})
}

// FuzzParseSeatClaim checks the seat-claim decoder: whatever it accepts is
// canonical (strictly sorted valid members including the party, bounded)
// and verifies only when really signed for this relay and room.
func FuzzParseSeatClaim(f *testing.F) {
	var k btcec.ModNScalar
	k.SetInt(9)
	id, _ := envelope.NewIdentity(&k)
	const room = "6f1c3a52-7d0e-4b8a-9c1d-2e3f4a5b6c7d"
	sc, _ := NewSeatClaim(id, "fuzz-relay", room, []envelope.Party{id.Public()}, 1700000000000, [32]byte{})
	good, _ := json.Marshal(sc)
	f.Add(good)
	f.Add([]byte(`{"party":"` + fuzzParty + `","members":["` + fuzzParty + `"],"time_ms":5,"sig":"` + strings.Repeat("00", 64) + `"}`))
	f.Add([]byte(`{"party":"","members":[],"time_ms":0,"sig":""}`))
	f.Add([]byte(`{"party":"aa","members":["bb","aa"],"time_ms":-1,"sig":"zz","x":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := parseClaim(body, 8)
		if err != nil {
			return
		}
		if len(c.members) < 1 || len(c.members) > 8 || c.timeMs <= 0 {
			t.Fatalf("accepted %d members, time %d", len(c.members), c.timeMs)
		}
		in := false
		for i, m := range c.members {
			if i > 0 && bytes.Compare(c.members[i-1][:], m[:]) >= 0 {
				t.Fatalf("members not strictly sorted")
			}
			in = in || m == c.party
		}
		if !in || c.set != MemberSetID(c.members) {
			t.Fatalf("party outside the set or set id wrong")
		}
		if c.verify("fuzz-relay", room) == nil && c.party != id.Public() {
			t.Fatalf("claim verified for a party nobody signed for")
		}
		if c.verify("another-relay", room) == nil || c.verify("fuzz-relay", "7f1c3a52-7d0e-4b8a-9c1d-2e3f4a5b6c7d") == nil {
			t.Fatalf("claim verified for another relay or room")
		}
	})
}

// FuzzParseCreate checks room creation bodies stay within the limits.
func FuzzParseCreate(f *testing.F) {
	for _, b := range []string{`{"size":2}`, `{"size":5,"ttl_seconds":3600}`, `{"size":1e3}`, `{"size":2,"x":1}`, `{}`, `null`, `{"size":2} 1`} {
		f.Add([]byte(b))
	}
	cfg, _ := Config{MaxRoomSize: 20, MaxRoomTTL: time.Hour, DefaultRoomTTL: time.Minute}.withDefaults()
	f.Fuzz(func(t *testing.T, body []byte) {
		size, ttl, err := parseCreate(body, &cfg)
		if err != nil {
			return
		}
		if size < 1 || size > cfg.MaxRoomSize || ttl <= 0 || ttl > cfg.MaxRoomTTL {
			t.Fatalf("accepted size=%d ttl=%v from %q", size, ttl, body)
		}
	})
}

// FuzzDecodeFetch checks the client's validation of (untrusted) fetch
// answers, and that whatever the server encodes the client decodes intact.
func FuzzDecodeFetch(f *testing.F) {
	f.Add([]byte(`{"messages":[{"seq":2,"from":"bb","to":"aa","body":"eA=="}]}`), uint64(1), []byte("hello"))
	f.Add([]byte(`{"messages":[{"seq":2,"from":"aa","to":"","body":""}]}`), uint64(0), []byte{})
	f.Add([]byte(`{"messages":null}`), uint64(0), []byte{0, 1, 2})
	f.Fuzz(func(t *testing.T, data []byte, after uint64, body []byte) {
		const me = "aa"
		if msgs, _, err := decodeFetch(data, me, after); err == nil {
			last := after
			for _, m := range msgs {
				if m.Seq <= last || !ValidParty(m.From) || !(m.To == me || (m.To == "" && m.From != me)) {
					t.Fatalf("accepted %+v after %d", m, last)
				}
				last = m.Seq
			}
		}
		if after == ^uint64(0) {
			return
		}
		stored := []*message{
			{seq: after + 1, from: "bb", to: me, body: body},
			{seq: after + 1 + uint64(len(body)%3) + 1, from: "cc", to: "", body: bytes.ToUpper(body)},
		}
		if stored[1].seq <= stored[0].seq { // overflow near the top
			return
		}
		enc := appendAnswer(nil, stored, false)
		got, left, err := decodeFetch(enc, me, after)
		if err != nil || len(got) != 2 || left {
			t.Fatalf("round trip: %v %+v from %s", err, got, enc)
		}
		for i, m := range got {
			s := stored[i]
			if m.Seq != s.seq || m.From != s.from || m.To != s.to || !bytes.Equal(m.Body, s.body) {
				t.Fatalf("round trip %d: %+v vs %+v", i, m, s)
			}
		}
	})
}

func TestValidators(t *testing.T) {
	tests := []struct {
		s           string
		party, room bool
	}{
		{"", false, false},
		{"a", true, false},
		{strings.Repeat("f", 130), true, false},
		{strings.Repeat("f", 131), false, false},
		{"0A", false, false},
		{"g0", false, false},
		{"6f1c3a52-7d0e-4b8a-9c1d-2e3f4a5b6c7d", false, true},
		{"6f1c3a52-7d0e-4b8a-7c1d-2e3f4a5b6c7d", false, false}, // variant bits
		{"6f1c3a52-7d0e-5b8a-9c1d-2e3f4a5b6c7d", false, false}, // version 5
		{"6F1C3A52-7D0E-4B8A-9C1D-2E3F4A5B6C7D", false, false},
		{"6f1c3a527d0e4b8a9c1d2e3f4a5b6c7d", true, false},
		{"6f1c3a52-7d0e-4b8a-9c1d_2e3f4a5b6c7d", false, false},
	}
	for _, tc := range tests {
		if got := ValidParty(tc.s); got != tc.party {
			t.Errorf("ValidParty(%q) = %v", tc.s, got)
		}
		if got := ValidRoomID(tc.s); got != tc.room {
			t.Errorf("ValidRoomID(%q) = %v", tc.s, got)
		}
	}
	seen := map[string]bool{}
	for range 1000 {
		id := newRoomID()
		if !ValidRoomID(id) || seen[id] {
			t.Fatalf("newRoomID gave %q (dup=%v)", id, seen[id])
		}
		seen[id] = true
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero is defaults", Config{}, true},
		{"negative", Config{MaxRooms: -1}, false},
		{"default ttl over max", Config{DefaultRoomTTL: 2 * time.Hour, MaxRoomTTL: time.Hour}, false},
		{"room bytes below envelope", Config{MaxEnvelopeBytes: 1 << 20, MaxRoomBytes: 1 << 10}, false},
		{"wait over wire limit", Config{MaxWait: 31 * time.Second}, false},
	}
	for _, tc := range tests {
		if _, err := New(tc.cfg); (err == nil) != tc.ok {
			t.Errorf("%s: err=%v", tc.name, err)
		}
	}
}
