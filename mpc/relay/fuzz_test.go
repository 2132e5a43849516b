package relay

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

const fuzzParty = "02aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899"

// FuzzRequest drives the real handler (routing, query parsing, body
// decoding) with arbitrary requests. The literal ROOM in the URI is replaced
// by a live room id so the fuzzer reaches the room handlers.
func FuzzRequest(f *testing.F) {
	for _, seed := range []struct{ method, uri, body string }{
		{"POST", "/v1/rooms", `{"size":2}`},
		{"POST", "/v1/rooms", `{"size":3,"ttl_seconds":60}`},
		{"POST", "/v1/rooms", `{"size":-1}`},
		{"POST", "/v1/rooms/ROOM/messages?from=" + fuzzParty + "&to=", "envelope"},
		{"POST", "/v1/rooms/ROOM/messages?from=aa&to=bb", "x"},
		{"GET", "/v1/rooms/ROOM/messages?party=" + fuzzParty + "&after=0&wait_ms=0", ""},
		{"GET", "/v1/rooms/ROOM/messages?party=aa&after=18446744073709551615&wait_ms=1", ""},
		{"DELETE", "/v1/rooms/ROOM?party=cc", ""},
		{"GET", "/v1/rooms/ROOM/../../metrics", ""},
		{"GET", "/healthz", ""},
		{"PUT", "/v1/rooms/%2e%2e/messages?from=%00", "\x00"},
	} {
		f.Add(seed.method, seed.uri, []byte(seed.body))
	}
	srv, err := New(Config{MaxWait: time.Millisecond, MaxRoomSize: 4, MaxRooms: 64, MaxEnvelopeBytes: 256,
		MaxRoomBytes: 4096, MaxRoomMessages: 16})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, uri string, body []byte) {
		// A fresh room per input keeps inputs independent of each other.
		var create fasthttp.RequestCtx
		create.Request.Header.SetMethod("POST")
		create.Request.SetRequestURI("/v1/rooms")
		create.Request.SetBodyString(`{"size":3}`)
		srv.Handler(&create)
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
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(method)
		ctx.Request.SetRequestURI(strings.ReplaceAll(uri, "ROOM", created.RoomUUID))
		ctx.Request.SetBody(body)
		srv.Handler(&ctx)
		status := ctx.Response.StatusCode()
		out := ctx.Response.Body()
		switch status {
		case 200:
			return
		case 400, 404, 405, 409, 410, 413, 429, 503:
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
		"from=" + fuzzParty + "&to=",
		"from=aa&to=bb",
		"from=aa&from=bb",
		"party=ab&after=7&wait_ms=30000",
		"party=ab&after=-1",
		"party=AB",
		"party=ab&wait_ms=99999999999999999999",
		"to=%61%62&from=%41",
	} {
		f.Add(q)
	}
	const maxWait = 2 * time.Second
	f.Fuzz(func(t *testing.T, q string) {
		var args fasthttp.Args
		args.Parse(q)
		if from, to, err := parsePostParams(&args); err == nil {
			if !ValidParty(from) || (to != "" && !ValidParty(to)) {
				t.Fatalf("post params accepted from=%q to=%q", from, to)
			}
			if len(args.PeekMulti("from")) != 1 || len(args.PeekMulti("to")) > 1 {
				t.Fatalf("duplicate params accepted in %q", q)
			}
		}
		if p, _, wait, err := parseFetchParams(&args, maxWait); err == nil {
			if !ValidParty(p) || wait < 0 || wait > maxWait {
				t.Fatalf("fetch params accepted party=%q wait=%v", p, wait)
			}
		}
		if p, err := parseLeaveParams(&args); err == nil && !ValidParty(p) {
			t.Fatalf("leave accepted party=%q", p)
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
		if msgs, err := decodeFetch(data, me, after); err == nil {
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
		enc := appendMessages(nil, stored)
		got, err := decodeFetch(enc, me, after)
		if err != nil || len(got) != 2 {
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
