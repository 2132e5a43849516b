package daemon

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// hold starts an import recipient for user in a room of two nobody else
// joins, and returns once it holds its ceremony seat (it has joined the
// room); its answer arrives on the channel when the ceremony times out.
func (h *harness) hold(user string, other slot) <-chan resp {
	h.t.Helper()
	mine := h.newSlot(user)
	room := h.newRoom(user, 2)
	out := make(chan resp, 1)
	go func() {
		out <- h.do("POST", "/bip340/import/import-key-share-recipient", user, importBody(room, mine.keyID, 2, []string{other.keygenID}, ""))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.net.mu.Lock()
		joined := h.net.rooms[room].joined
		h.net.mu.Unlock()
		if joined == 1 {
			return out
		}
		if time.Now().After(deadline) {
			h.t.Fatal("recipient never joined its room")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func wantBusy(t *testing.T, r resp) {
	t.Helper()
	wantErr(t, r, 503, ErrTypeInternalProblem)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
}

func (h *harness) metricsText() string {
	return h.must(h.do("GET", "/metrics", "", "")).raw
}

// TestCeremonyBudget: ceremonies waiting on a room fill only the ceremony
// budget; short requests, probes and other routes still answer, /readyz
// says why it is not ready, and the rejection is counted.
func TestCeremonyBudget(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Server.MaxConcurrentRequests = 1
		c.Server.MaxConcurrentCeremonies = 1
		c.Ceremony.Timeout = 2 * time.Second
	})
	u1, u2 := h.newUser("u1"), h.newUser("u2")
	other := h.newSlot(u1)
	held := h.hold(u2, other)

	room := h.newRoom(u1, 2)
	wantBusy(t, h.do("POST", "/bip340/import/import-key-share-recipient", u1, importBody(room, h.newSlot(u1).keyID, 2, []string{other.keygenID}, "")))
	h.must(h.do("GET", "/bip340/create", u1, ""))
	h.must(h.do("GET", "/healthz", "", ""))
	r := h.do("GET", "/readyz", "", "")
	wantErr(t, r, 503, ErrTypeInternalProblem)
	if !strings.Contains(r.str("err_msg"), "ceremony budget full") {
		t.Fatalf("readyz under saturation: %s", r.raw)
	}
	if m := h.metricsText(); !strings.Contains(m, `quorumd_http_rejected_total{reason="ceremonies"} 1`) {
		t.Fatalf("no rejection metric:\n%s", m)
	}
	wantErr(t, <-held, 400, ErrTypeExecutorResult)
	h.must(h.do("GET", "/readyz", "", ""))
}

// TestUserCeremonyShare: a user at its share of the ceremony budget is
// refused further ceremonies while another user's ceremony is admitted.
func TestUserCeremonyShare(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Server.MaxConcurrentCeremonies = 4
		c.Server.UserMaxCeremonies = 2
		c.Ceremony.Timeout = 2 * time.Second
	})
	abuser, honest := h.newUser("abuser"), h.newUser("honest")
	other := h.newSlot(honest)
	held := []<-chan resp{h.hold(abuser, other), h.hold(abuser, other)}
	room := h.newRoom(abuser, 2)
	r := h.do("POST", "/bip340/import/import-key-share-recipient", abuser, importBody(room, h.newSlot(abuser).keyID, 2, []string{other.keygenID}, ""))
	wantBusy(t, r)
	if !strings.Contains(r.str("err_msg"), "user_max_ceremonies") {
		t.Fatalf("refusal does not name the user's budget: %s", r.raw)
	}
	// The honest user gets in: its ceremony runs (and, alone, times out)
	// instead of being refused.
	wantErr(t, <-h.hold(honest, h.newSlot(abuser)), 400, ErrTypeExecutorResult)
	for _, c := range held {
		wantErr(t, <-c, 400, ErrTypeExecutorResult)
	}
	if m := h.metricsText(); !strings.Contains(m, `quorumd_http_rejected_total{reason="user_ceremonies"} 1`) {
		t.Fatalf("no rejection metric:\n%s", m)
	}
}

// TestAdminReservedSeat: with every short-request seat taken, users are
// refused and an admin is still served.
func TestAdminReservedSeat(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Server.MaxConcurrentRequests = 2
		c.Server.AdminReservedRequests = 1
	})
	u1, u2, u3 := h.newUser("u1"), h.newUser("u2"), h.newUser("u3")
	entered, unblock := make(chan struct{}, 2), make(chan struct{})
	h.keys.hook = func() { entered <- struct{}{}; <-unblock }
	var wg sync.WaitGroup
	for _, u := range []string{u1, u2} {
		wg.Go(func() { h.must(h.do("GET", "/bip340/create", u, "")) })
	}
	<-entered
	<-entered
	wantBusy(t, h.do("GET", "/bip340/keys/"+NewKeyID(), u3, ""))
	h.must(h.do("GET", "/admin/list-all-system-keys", h.adminKey, ""))
	h.must(h.do("GET", "/admin/create-user?name=u4", h.adminKey, ""))
	close(unblock)
	wg.Wait()
	h.keys.hook = nil
	wantErr(t, h.do("GET", "/bip340/keys/"+NewKeyID(), u3, ""), 400, ErrTypeKeyIDNotExists)
}

// TestUserRequestShare: one user's short requests stop at its share.
func TestUserRequestShare(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Server.MaxConcurrentRequests = 4
		c.Server.UserMaxRequests = 1
	})
	u1, u2 := h.newUser("u1"), h.newUser("u2")
	entered, unblock := make(chan struct{}, 1), make(chan struct{})
	h.keys.hook = func() { entered <- struct{}{}; <-unblock }
	done := make(chan resp, 1)
	go func() { done <- h.do("GET", "/bip340/create", u1, "") }()
	<-entered
	r := h.do("GET", "/bip340/keys/"+NewKeyID(), u1, "")
	wantBusy(t, r)
	wantErr(t, h.do("GET", "/bip340/keys/"+NewKeyID(), u2, ""), 400, ErrTypeKeyIDNotExists)
	close(unblock)
	h.must(<-done)
	h.keys.hook = nil
}

// TestRoomQuota: the burst, then the rate limit (503 with Retry-After),
// then the count in the window (policy_validation_failed); another user is
// unaffected throughout, and a failed creation is given back.
func TestRoomQuota(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Limits.UserRooms = 5
		c.Limits.UserRoomBurst = 3
		c.Limits.UserRoomRate = 1000
	})
	flood, other := h.newUser("flood"), h.newUser("other")
	now := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	h.srv.rooms.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	for range 3 {
		h.newRoom(flood, 2)
	}
	wantBusy(t, h.do("POST", "/create-room", flood, `{"room_size":2}`))
	h.newRoom(other, 2)
	advance(10 * time.Millisecond) // ten tokens
	h.newRoom(flood, 2)
	h.net.mu.Lock()
	h.net.down = true
	h.net.mu.Unlock()
	wantErr(t, h.do("POST", "/create-room", flood, `{"room_size":2}`), 400, ErrTypeRoomCreationProblem)
	h.net.mu.Lock()
	h.net.down = false
	h.net.mu.Unlock()
	h.newRoom(flood, 2) // the failed one did not count: this is the fifth
	r := h.do("POST", "/create-room", flood, `{"room_size":2}`)
	wantErr(t, r, 400, ErrTypePolicyValidationFailed)
	if !strings.Contains(r.str("err_msg"), "room quota") {
		t.Fatalf("quota refusal: %s", r.raw)
	}
	h.newRoom(other, 2)
	advance(h.cfg.Limits.RoomWindow)
	h.newRoom(flood, 2)
	m := h.metricsText()
	for _, want := range []string{`reason="room_rate"} 1`, `reason="room_quota"} 1`} {
		if !strings.Contains(m, want) {
			t.Fatalf("metrics lack %s:\n%s", want, m)
		}
	}
}

// TestRoomFlood: one user creating rooms as fast as it can leaves another
// user able to create rooms.
func TestRoomFlood(t *testing.T) {
	h := newHarness(t, nil)
	flood, other := h.newUser("flood"), h.newUser("other")
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range 8 {
		wg.Go(func() {
			for range 40 {
				r := h.do("POST", "/create-room", flood, `{"room_size":2}`)
				mu.Lock()
				codes[r.status]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if codes[503] == 0 || codes[200] > h.cfg.Limits.UserRoomBurst+h.cfg.Limits.UserRoomRate*60 {
		t.Fatalf("the flood was not limited: %v", codes)
	}
	for range 5 {
		h.newRoom(other, 2)
	}
}

// rawDo sends one request exactly as written (no client-side path
// cleaning) and returns the status and body.
func (h *harness) rawDo(requestLine string, headers ...string) resp {
	h.t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.base, "http://"))
	if err != nil {
		h.t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := requestLine + "\r\nHost: quorumd\r\nConnection: close\r\n"
	for _, hd := range headers {
		req += hd + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		h.t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		h.t.Fatalf("%s: %v", requestLine, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, raw: string(raw), header: res.Header}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// TestStrictRouting: for every route, a path that smuggles another route
// through encoded slashes, dot segments or double slashes is refused, never
// normalised into a match; the access log keeps the raw path.
func TestStrictRouting(t *testing.T) {
	h := newHarness(t, nil)
	u := h.newUser("u")
	key := h.newSlot(u).keyID
	var escapes []string
	for _, r := range h.srv.Routes() {
		p := strings.Replace(r.Pattern, ":key_id", key, 1)
		base := p[:strings.LastIndex(p, "/")]
		escapes = append(escapes,
			p+"/..%2F..%2Fhealthz",
			p+"/%2e%2e/%2E%2E/admin/list-all-system-keys",
			p+"/../../admin/list-all-system-keys",
			p+"/./",
			base+"//"+p[len(base)+1:],
			base+"/%2F"+p[len(base)+1:],
			base+"/./"+p[len(base)+1:],
			base+"/x/../"+p[len(base)+1:],
			strings.Replace(p, "/", "%2F", -1),
			p+"%2F",
			p+"/",
			p+"%00",
		)
	}
	escapes = append(escapes,
		"/bip340/keys/%2e%2e%2f%2e%2e%2fadmin%2flist-all-system-keys",
		"/bip340/export-id/..%2Fkeys%2F"+key,
		"/bip340/create/..%2F..%2Fhealthz",
		"/bip340/keys/"+strings.Replace(key, "-", "%2d", 1),
		"/bip340\\keys\\"+key,
		"//healthz",
	)
	for _, p := range escapes {
		for _, method := range []string{"GET", "POST", "DELETE"} {
			r := h.rawDo(method+" "+p+" HTTP/1.1", "Authorization: "+h.adminKey)
			if r.status != 400 && r.status != 404 {
				t.Fatalf("%s %s answered %d %s", method, p, r.status, r.raw)
			}
			if r.str("err_type") != ErrTypeBadRequestParams && r.str("err_type") != ErrTypeNotFound {
				t.Fatalf("%s %s answered %s", method, p, r.raw)
			}
		}
	}
	if !strings.Contains(h.logs.String(), `"path":"/bip340/keys/%2e%2e%2f%2e%2e%2fadmin%2f<redacted>"`) &&
		!strings.Contains(h.logs.String(), `"path":"/bip340/create/..%2F..%2Fhealthz"`) {
		t.Fatal("the access log does not show the raw path")
	}
	// Routes still match their plain form.
	h.must(h.rawDo("GET /bip340/keys/"+key+" HTTP/1.1", "Authorization: "+u))
}

// TestTwoAuthorizationHeaders: a proxy may read the other one, so refuse.
func TestTwoAuthorizationHeaders(t *testing.T) {
	h := newHarness(t, nil)
	u := h.newUser("u")
	for _, hdrs := range [][]string{
		{"Authorization: " + u, "Authorization: " + h.adminKey},
		{"Authorization: " + h.adminKey, "Authorization: " + u},
		{"Authorization: " + u, "authorization: " + u},
	} {
		r := h.rawDo("GET /admin/list-all-system-keys HTTP/1.1", hdrs...)
		wantErr(t, r, 400, ErrTypeBadRequestParams)
	}
	h.must(h.rawDo("GET /admin/list-all-system-keys HTTP/1.1", "Authorization: "+h.adminKey))
}

// TestHealthQueryIgnored: cache-busters on probes are fine; other routes
// still refuse unknown query parameters.
func TestHealthQueryIgnored(t *testing.T) {
	h := newHarness(t, nil)
	h.must(h.do("GET", "/healthz?x=1", "", ""))
	h.must(h.do("GET", "/readyz?cb=12345&x=1&x=2", "", ""))
	u := h.newUser("u")
	wantErr(t, h.do("GET", "/bip340/create?x=1", u, ""), 400, ErrTypeBadRequestParams)
}

// TestKeyQuotaConcurrent: the quota holds under concurrent creations (the
// in-memory Keys counts and inserts under one lock, like the store's
// transaction; the real store is tested in package store and end to end).
func TestKeyQuotaConcurrent(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Server.UserMaxRequests = 32; c.Server.MaxConcurrentRequests = 64 })
	u := h.newUser("u")
	h.pol.mu.Lock()
	for _, usr := range h.pol.users {
		if usr.name == "u" {
			usr.quota = 2
		}
	}
	h.pol.mu.Unlock()
	var wg sync.WaitGroup
	codes := make([]int, 20)
	for i := range codes {
		wg.Go(func() { codes[i] = h.do("GET", "/bip340/create", u, "").status })
	}
	wg.Wait()
	ok := 0
	for _, c := range codes {
		if c == 200 {
			ok++
		} else if c != 400 {
			t.Fatalf("answers %v", codes)
		}
	}
	if ok != 2 {
		t.Fatalf("%d creations under quota 2: %v", ok, codes)
	}
}

// TestBudgetsBookkeeping: seats taken concurrently by many users and
// given back leave every budget empty and no user entry behind; a user
// never holds more than its share at any moment.
func TestBudgetsBookkeeping(t *testing.T) {
	cfg := testConfig().Server
	cfg.MaxConcurrentRequests, cfg.MaxConcurrentCeremonies, cfg.UserMaxRequests, cfg.UserMaxCeremonies, cfg.AdminReservedRequests = 8, 6, 3, 2, 1
	b := newBudgets(cfg, time.Minute)
	var wg sync.WaitGroup
	for u := range 10 {
		c, extra := Caller{UserID: fmt.Sprintf("user-%d", u%4)}, 0
		if u == 0 {
			// An admin may go past its share into the reserved seats.
			c, extra = Caller{UserID: "admin", Admin: true}, cfg.AdminReservedRequests
		}
		wg.Go(func() {
			for i := range 500 {
				k := classShort
				if i%2 == 1 {
					k = classCeremony
				}
				release, err := b.admit(c, k)
				if err != nil {
					continue
				}
				b.mu.Lock()
				l := b.users[c.UserID]
				over := l.short > cfg.UserMaxRequests+extra || l.ceremony > cfg.UserMaxCeremonies
				b.mu.Unlock()
				if over {
					t.Errorf("%s holds %+v", c.UserID, *l)
				}
				release()
			}
		})
	}
	wg.Wait()
	if len(b.users) != 0 || len(b.short) != 0 || len(b.ceremony) != 0 || len(b.admin) != 0 {
		t.Fatalf("left behind: users %v, seats %d/%d/%d", b.users, len(b.short), len(b.ceremony), len(b.admin))
	}
}
