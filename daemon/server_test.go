package daemon

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"

	"github.com/quorumd/quorumd/internal/apispec"
)

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type harness struct {
	t        *testing.T
	srv      *Server
	cfg      *Config
	base     string
	pol      *memPolicy
	keys     *memKeys
	net      *memNet
	logs     *syncBuffer
	client   *http.Client
	ready    map[string]error
	readyMu  sync.Mutex
	adminKey string
}

func testConfig() *Config {
	cfg := DefaultConfig()
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Ceremony.Timeout = 3 * time.Second
	cfg.Server.RequestTimeout = 3 * time.Second
	cfg.HSM.Module = "/usr/lib/softhsm/libsofthsm2.so"
	cfg.HSM.PINEnv = "QUORUMD_TEST_PIN"
	cfg.Policy.Source = "embedded"
	cfg.Policy.Embedded.File = "/etc/quorumd/policy.yaml"
	cfg.Relay.DefaultAddress = "127.0.0.1:7000"
	return cfg
}

func newHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	return newHarnessWith(t, mod, nil)
}

// newHarnessWith is newHarness with a hook that may replace backends (and
// set h.adminKey accordingly) before the server starts.
func newHarnessWith(t *testing.T, mod func(*Config), backends func(*harness, *Backends)) *harness {
	t.Helper()
	cfg := testConfig()
	if mod != nil {
		mod(cfg)
	}
	h := &harness{t: t, cfg: cfg, pol: newMemPolicy(), keys: newMemKeys(), logs: &syncBuffer{}, ready: map[string]error{}}
	h.net = newMemNet(h.keys)
	_, h.adminKey = h.pol.add("admin", true)
	logger := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	check := func(name string) ReadinessCheck {
		return ReadinessCheck{Name: name, Check: func(context.Context) error {
			h.readyMu.Lock()
			defer h.readyMu.Unlock()
			return h.ready[name]
		}}
	}
	b := Backends{
		Auth: h.pol, Admin: h.pol, Keys: h.keys, Rooms: h.net, Ceremonies: h.net,
		Ready: []ReadinessCheck{check("hsm"), check("policy")},
	}
	if backends != nil {
		backends(h, &b)
	}
	srv, err := New(cfg, b, logger)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		t.Fatal(err)
	}
	h.base = "http://" + ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	// Every exchange is checked against docs/openapi.yaml (internal/apispec).
	h.client = &http.Client{Timeout: 20 * time.Second, Transport: apispec.NewTransport(t, nil)}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		srv.Close()
	})
	return h
}

type resp struct {
	status int
	raw    string
	body   map[string]any
	header http.Header
}

func (r resp) str(k string) string { s, _ := r.body[k].(string); return s }

func (h *harness) do(method, path, apiKey, body string, hdr ...string) resp {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if apiKey != "" {
		req.Header.Set("Authorization", apiKey)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, raw: string(raw), header: res.Header}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// must asserts a 200 answer.
func (h *harness) must(r resp) resp {
	h.t.Helper()
	if r.status != 200 {
		h.t.Fatalf("status %d: %s", r.status, r.raw)
	}
	return r
}

// wantErr asserts the envelope: exactly err_type and err_msg, with status.
func wantErr(t *testing.T, r resp, status int, errType string) {
	t.Helper()
	if r.status != status || r.str("err_type") != errType || r.str("err_msg") == "" || len(r.body) != 2 {
		t.Fatalf("got %d %s, want %d %s", r.status, r.raw, status, errType)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
}

func (h *harness) newUser(name string) string {
	r := h.must(h.do("GET", "/admin/create-user?name="+name, h.adminKey, ""))
	return r.str("api_key")
}

type slot struct{ keyID, keygenID string }

func (h *harness) newSlot(apiKey string) slot {
	r := h.must(h.do("GET", "/bip340/create", apiKey, ""))
	return slot{r.str("key_id"), r.str("keygen_id")}
}

func (h *harness) newRoom(apiKey string, size int) string {
	return h.must(h.do("POST", "/create-room", apiKey, fmt.Sprintf(`{"room_size":%d}`, size))).str("room_uuid")
}

func importBody(room, keyID string, t int, others []string, priv string) string {
	m := map[string]any{"room_uuid": room, "key_id": keyID, "threshold": t, "others_keygen_ids": others}
	if priv != "" {
		m["private_key"] = priv
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func othersOf(slots []slot, i int) []string {
	var out []string
	for j, s := range slots {
		if j != i {
			out = append(out, s.keygenID)
		}
	}
	return out
}

// importQuorum runs a whole import over HTTP: party 0 is the importer.
func (h *harness) importQuorum(apiKeys []string, t int, priv string) ([]slot, string) {
	h.t.Helper()
	slots := make([]slot, len(apiKeys))
	for i, k := range apiKeys {
		slots[i] = h.newSlot(k)
	}
	room := h.newRoom(apiKeys[0], len(apiKeys))
	results := make([]resp, len(apiKeys))
	var wg sync.WaitGroup
	for i := range apiKeys {
		wg.Go(func() {
			path, p := "/bip340/import/import-key-share-recipient", ""
			if i == 0 {
				path, p = "/bip340/import/key-importer", priv
			}
			results[i] = h.do("POST", path, apiKeys[i], importBody(room, slots[i].keyID, t, othersOf(slots, i), p))
		})
	}
	wg.Wait()
	for i, r := range results {
		h.must(r)
		if r.str("key_id") != slots[i].keyID || r.str("pubkey") != results[0].str("pubkey") {
			h.t.Fatalf("party %d answered %s", i, r.raw)
		}
	}
	return slots, results[0].str("pubkey")
}

func randomKeyHex(t *testing.T) (string, *btcec.PrivateKey) {
	priv, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	b := priv.Key.Bytes()
	return hex.EncodeToString(b[:]), priv
}

// TestImportSignFlow drives the seed endpoint and its neighbours end to end
// through HTTP with the in-memory quorum.
func TestImportSignFlow(t *testing.T) {
	h := newHarness(t, nil)
	users := []string{h.newUser("alice"), h.newUser("bob"), h.newUser("carol")}
	privHex, priv := randomKeyHex(t)
	slots, pubkey := h.importQuorum(users, 2, privHex)
	if want := hex.EncodeToString(schnorr.SerializePubKey(priv.PubKey())); pubkey != want {
		t.Fatalf("pubkey %s, want %s", pubkey, want)
	}

	rec := h.must(h.do("GET", "/bip340/keys/"+slots[1].keyID, users[1], ""))
	if rec.str("state") != "ready" || rec.body["t"] != 2.0 || rec.body["n"] != 3.0 || rec.str("pubkey") != pubkey ||
		rec.str("keygen_id") != slots[1].keygenID || len(rec.body["participants"].([]any)) != 3 {
		t.Fatalf("key record %s", rec.raw)
	}
	if id := h.must(h.do("GET", "/bip340/export-id/"+slots[2].keyID, users[2], "")).str("keygen_id"); id != slots[2].keygenID {
		t.Fatalf("export-id %s", id)
	}
	derived := h.must(h.do("POST", "/bip340/derive-tweak-pubkey", users[0], `{"key_id":"`+slots[0].keyID+`"}`))
	if derived.str("pubkey") != pubkey {
		t.Fatalf("untweaked derive %s", derived.raw)
	}

	// Sign with parties 0 and 2 in a room of two.
	msg := bytes.Repeat([]byte{0x5a}, 32)
	room := h.newRoom(users[0], 2)
	var sigs [2]resp
	var wg sync.WaitGroup
	for j, i := range []int{0, 2} {
		wg.Go(func() {
			body := fmt.Sprintf(`{"room_uuid":%q,"key_id":%q,"msg":%q}`, room, slots[i].keyID, hex.EncodeToString(msg))
			sigs[j] = h.do("POST", "/bip340/sign", users[i], body)
		})
	}
	wg.Wait()
	for _, r := range sigs {
		h.must(r)
		sb, _ := hex.DecodeString(r.str("signature"))
		sig, err := schnorr.ParseSignature(sb)
		if err != nil || !sig.Verify(msg, priv.PubKey()) {
			t.Fatalf("signature %s does not verify", r.raw)
		}
	}

	all := h.must(h.do("GET", "/admin/list-all-system-keys", h.adminKey, ""))
	if byUser, _ := all.body["keys_by_user"].(map[string]any); len(byUser) != 3 {
		t.Fatalf("list-all %s", all.raw)
	}
	h.must(h.do("DELETE", "/bip340/delete-key-share/"+slots[2].keyID, users[2], ""))
	wantErr(t, h.do("GET", "/bip340/keys/"+slots[2].keyID, users[2], ""), 400, ErrTypeKeyIDNotExists)

	// Audit lines: one per key event, never the private key.
	logs := h.logs.String()
	for _, ev := range []string{"key.created", "key.imported", "key.signed", "key.deleted", "user.created"} {
		if !strings.Contains(logs, `"event":"`+ev+`"`) {
			t.Errorf("no audit line for %s", ev)
		}
	}
	assertNoSecret(t, logs, privHex)
}

// assertNoSecret fails if the hex secret appears in s in either case.
func assertNoSecret(t *testing.T, s, secretHex string) {
	t.Helper()
	for _, v := range []string{strings.ToLower(secretHex), strings.ToUpper(secretHex)} {
		if v != "" && strings.Contains(s, v) {
			t.Fatalf("secret found in output")
		}
	}
}

const curveN = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"

// TestErrorTypes asserts every err_type the request rules and the handlers
// produce, with its status, through the real server.
func TestErrorTypes(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.MaxParties = 5 })
	u1, u2 := h.newUser("u1"), h.newUser("u2")
	mine, theirs := h.newSlot(u1), h.newSlot(u2)
	other1, other2 := h.newSlot(u2), h.newSlot(u2)
	ready, _ := h.importQuorum([]string{u1, u2}, 2, mustHex(t))
	room := h.newRoom(u1, 3)
	valid := func(priv string) string {
		return importBody(room, mine.keyID, 2, []string{other1.keygenID, other2.keygenID}, priv)
	}
	privOK := mustHex(t)
	notOnCurve := "02" + strings.Repeat("0", 63) + "5" // x = 5 has no point on secp256k1
	signBody := func(keyID string, extra string) string {
		return `{"room_uuid":"` + room + `","key_id":"` + keyID + `","msg":"00ff"` + extra + `}`
	}

	cases := []struct {
		name, method, path, key, body string
		status                        int
		errType                       string
	}{
		{"unknown route", "GET", "/nope", u1, "", 404, ErrTypeNotFound},
		{"unknown nested route", "POST", "/bip340/import/other", u1, "{}", 404, ErrTypeNotFound},
		{"wrong method", "GET", "/bip340/sign", u1, "", 404, ErrTypeNotFound},
		{"empty path param", "GET", "/bip340/keys/", u1, "", 400, ErrTypeBadRequestParams},
		{"no API key", "GET", "/bip340/create", "", "", 401, ErrTypeAccessDenied},
		{"wrong API key", "GET", "/bip340/create", "k1.deadbeef", "", 401, ErrTypeAccessDenied},
		{"bearer prefix is not stripped", "GET", "/bip340/create", "Bearer " + u1, "", 401, ErrTypeAccessDenied},
		{"no API key on import", "POST", "/bip340/import/key-importer", "", valid(privOK), 401, ErrTypeAccessDenied},
		{"user on admin route", "GET", "/admin/list-all-system-keys", u1, "", 400, ErrTypeYouHaveToBeAdmin},
		{"user creates user", "GET", "/admin/create-user?name=x", u1, "", 400, ErrTypeYouHaveToBeAdmin},
		{"duplicate user name", "GET", "/admin/create-user?name=u1", h.adminKey, "", 400, ErrTypeUserNameAlreadyExists},
		{"bad user name", "GET", "/admin/create-user?name=a%09b", h.adminKey, "", 400, ErrTypeBadRequestParams},
		{"empty user name", "GET", "/admin/create-user?name=", h.adminKey, "", 400, ErrTypeBadRequestParams},
		{"unknown query parameter", "GET", "/admin/create-user?name=x&admin=1", h.adminKey, "", 400, ErrTypeBadRequestParams},
		{"repeated query parameter", "GET", "/admin/create-user?name=x&name=y", h.adminKey, "", 400, ErrTypeBadRequestParams},
		{"delete user with keys", "DELETE", "/admin/delete-user?user_id=user-2", h.adminKey, "", 400, ErrTypeUserHasAssociatedKeys},
		{"delete unknown user", "DELETE", "/admin/delete-user?user_id=user-99", h.adminKey, "", 400, ErrTypeUserIDNotExists},
		{"revoke unknown key", "DELETE", "/admin/revoke-api-key", h.adminKey, `{"user_id":"user-2","api_key":"k9.00"}`, 400, ErrTypeAPIKeyNotFound},
		{"revoke missing field", "DELETE", "/admin/revoke-api-key", h.adminKey, `{"user_id":"user-2"}`, 400, ErrTypeBadRequestParams},
		{"body on a GET", "GET", "/bip340/create", u1, `{"x":1}`, 400, ErrTypeBadRequestParams},

		{"malformed JSON", "POST", "/bip340/import/key-importer", u1, `{"room_uuid":`, 400, ErrTypeBadRequestParams},
		{"not an object", "POST", "/bip340/import/key-importer", u1, `[1,2]`, 400, ErrTypeBadRequestParams},
		{"empty body", "POST", "/bip340/import/key-importer", u1, ``, 400, ErrTypeBadRequestParams},
		{"unknown field", "POST", "/bip340/import/key-importer", u1, strings.Replace(valid(privOK), "{", `{"extra":1,`, 1), 400, ErrTypeBadRequestParams},
		{"private_key on recipient", "POST", "/bip340/import/import-key-share-recipient", u1, valid(privOK), 400, ErrTypeBadRequestParams},
		{"duplicate field", "POST", "/bip340/import/key-importer", u1, strings.Replace(valid(privOK), "{", `{"threshold":1,`, 1), 400, ErrTypeBadRequestParams},
		{"missing private_key", "POST", "/bip340/import/key-importer", u1, valid(""), 400, ErrTypeBadRequestParams},
		{"missing others", "POST", "/bip340/import/import-key-share-recipient", u1, `{"room_uuid":"` + room + `","key_id":"` + mine.keyID + `","threshold":1}`, 400, ErrTypeBadRequestParams},
		{"threshold not integer", "POST", "/bip340/import/import-key-share-recipient", u1, strings.Replace(importBody(room, mine.keyID, 2, []string{other1.keygenID}, ""), `"threshold":2`, `"threshold":2.5`, 1), 400, ErrTypeBadRequestParams},
		{"threshold as string", "POST", "/bip340/import/import-key-share-recipient", u1, strings.Replace(importBody(room, mine.keyID, 2, []string{other1.keygenID}, ""), `"threshold":2`, `"threshold":"2"`, 1), 400, ErrTypeBadRequestParams},
		{"threshold 0", "POST", "/bip340/import/import-key-share-recipient", u1, importBody(room, mine.keyID, 0, []string{other1.keygenID}, ""), 400, ErrTypeBadNAndTParams},
		{"threshold > N", "POST", "/bip340/import/import-key-share-recipient", u1, importBody(room, mine.keyID, 3, []string{other1.keygenID}, ""), 400, ErrTypeBadNAndTParams},
		{"N = 1", "POST", "/bip340/import/key-importer", u1, importBody(room, mine.keyID, 1, []string{}, privOK), 400, ErrTypeBadNAndTParams},
		{"N above maximum", "POST", "/bip340/import/import-key-share-recipient", u1, importBody(room, mine.keyID, 2, []string{other1.keygenID, other1.keygenID, other1.keygenID, other1.keygenID, other1.keygenID}, ""), 400, ErrTypeBadNAndTParams},
		{"num_parties mismatch", "POST", "/bip340/import/import-key-share-recipient", u1, strings.Replace(importBody(room, mine.keyID, 2, []string{other1.keygenID}, ""), "{", `{"num_parties":3,`, 1), 400, ErrTypeBadNAndTParams},
		{"duplicate keygen ids", "POST", "/bip340/import/import-key-share-recipient", u1, importBody(room, mine.keyID, 2, []string{other1.keygenID, other1.keygenID}, ""), 400, ErrTypeBadRequestParams},
		{"duplicate keygen ids across case", "POST", "/bip340/import/import-key-share-recipient", u1, importBody(room, mine.keyID, 2, []string{other1.keygenID, strings.ToUpper(other1.keygenID)}, ""), 400, ErrTypeBadRequestParams},
		{"own keygen id among others", "POST", "/bip340/import/import-key-share-recipient", u1, importBody(room, mine.keyID, 2, []string{other1.keygenID, mine.keygenID}, ""), 400, ErrTypeBadRequestParams},
		{"keygen id not on curve", "POST", "/bip340/import/import-key-share-recipient", u1, importBody(room, mine.keyID, 2, []string{notOnCurve}, ""), 400, ErrTypeBadRequestParams},
		{"keygen id uncompressed prefix", "POST", "/bip340/import/import-key-share-recipient", u1, importBody(room, mine.keyID, 2, []string{"04" + other1.keygenID[2:]}, ""), 400, ErrTypeBadRequestParams},
		{"keygen id short", "POST", "/bip340/import/import-key-share-recipient", u1, importBody(room, mine.keyID, 2, []string{other1.keygenID[:64]}, ""), 400, ErrTypeBadRequestParams},
		{"keygen id not hex", "POST", "/bip340/import/import-key-share-recipient", u1, importBody(room, mine.keyID, 2, []string{"zz" + other1.keygenID[2:]}, ""), 400, ErrTypeBadRequestParams},
		{"bad key_id", "POST", "/bip340/import/import-key-share-recipient", u1, importBody(room, "not-a-uuid", 2, []string{other1.keygenID}, ""), 400, ErrTypeBadRequestParams},
		{"upper-case key_id", "POST", "/bip340/import/import-key-share-recipient", u1, importBody(room, strings.ToUpper(mine.keyID), 2, []string{other1.keygenID}, ""), 400, ErrTypeBadRequestParams},
		{"bad room_uuid", "POST", "/bip340/import/import-key-share-recipient", u1, importBody("room", mine.keyID, 2, []string{other1.keygenID}, ""), 400, ErrTypeBadRequestParams},
		{"malformed relay_address", "POST", "/bip340/import/import-key-share-recipient", u1, strings.Replace(importBody(room, mine.keyID, 2, []string{other1.keygenID}, ""), "{", `{"relay_address":"no port",`, 1), 400, ErrTypeBadRequestParams},
		{"relay_address not allowed", "POST", "/bip340/import/import-key-share-recipient", u1, strings.Replace(importBody(room, mine.keyID, 2, []string{other1.keygenID}, ""), "{", `{"relay_address":"evil.example:443",`, 1), 400, ErrTypePolicyValidationFailed},
		{"unknown key_id", "POST", "/bip340/import/import-key-share-recipient", u1, importBody(room, "00000000-0000-4000-8000-000000000000", 2, []string{other1.keygenID}, ""), 400, ErrTypeKeyIDNotExists},
		{"another user's key_id", "POST", "/bip340/import/import-key-share-recipient", u1, importBody(room, theirs.keyID, 2, []string{other1.keygenID}, ""), 400, ErrTypeKeyIDNotExists},
		{"second import", "POST", "/bip340/import/import-key-share-recipient", u1, importBody(room, ready[0].keyID, 2, []string{other1.keygenID}, ""), 400, ErrTypeAlreadyPerformedKeygen},

		{"private key zero", "POST", "/bip340/import/key-importer", u1, valid(strings.Repeat("0", 64)), 400, ErrTypeBadRequestParams},
		{"private key = n", "POST", "/bip340/import/key-importer", u1, valid(curveN), 400, ErrTypeBadRequestParams},
		{"private key = n+1", "POST", "/bip340/import/key-importer", u1, valid(curveN[:63] + "2"), 400, ErrTypeBadRequestParams},
		{"private key all ff", "POST", "/bip340/import/key-importer", u1, valid(strings.Repeat("f", 64)), 400, ErrTypeBadRequestParams},
		{"private key non-hex", "POST", "/bip340/import/key-importer", u1, valid("g" + privOK[1:]), 400, ErrTypeBadRequestParams},
		{"private key short", "POST", "/bip340/import/key-importer", u1, valid(privOK[:62]), 400, ErrTypeBadRequestParams},
		{"private key long", "POST", "/bip340/import/key-importer", u1, valid(privOK + "00"), 400, ErrTypeBadRequestParams},
		{"private key number", "POST", "/bip340/import/key-importer", u1, strings.Replace(valid(privOK), `"`+privOK+`"`, "12345", 1), 400, ErrTypeBadRequestParams},
		{"private key escaped", "POST", "/bip340/import/key-importer", u1, strings.Replace(valid(privOK), `"`+privOK+`"`, `"\u0030`+privOK[1:]+`"`, 1), 400, ErrTypeBadRequestParams},

		{"sign before import", "POST", "/bip340/sign", u1, signBody(mine.keyID, ""), 400, ErrTypeKeyOperationBeforeKeygen},
		{"sign unknown key", "POST", "/bip340/sign", u1, signBody(theirs.keyID, ""), 400, ErrTypeKeyIDNotExists},
		{"sign msg not hex", "POST", "/bip340/sign", u1, strings.Replace(signBody(ready[0].keyID, ""), "00ff", "0g", 1), 400, ErrTypeBadRequestParams},
		{"sign empty msg", "POST", "/bip340/sign", u1, strings.Replace(signBody(ready[0].keyID, ""), "00ff", "", 1), 400, ErrTypeBadRequestParams},
		{"sign hardened path", "POST", "/bip340/sign", u1, signBody(ready[0].keyID, `,"derivation_path":"m/0'/1"`), 400, ErrTypeBadRequestParams},
		{"sign tweak >= n", "POST", "/bip340/sign", u1, signBody(ready[0].keyID, `,"tweak":"`+curveN+`"`), 400, ErrTypeBadRequestParams},
		{"derive before import", "POST", "/bip340/derive-tweak-pubkey", u1, `{"key_id":"` + mine.keyID + `"}`, 400, ErrTypeKeyOperationBeforeKeygen},
		{"derive bad tweak", "POST", "/bip340/derive-tweak-pubkey", u1, `{"key_id":"` + mine.keyID + `","tweak":"00"}`, 400, ErrTypeBadRequestParams},
		{"export-id bad key_id", "GET", "/bip340/export-id/xyz", u1, "", 400, ErrTypeBadRequestParams},
		{"keys of another user", "GET", "/bip340/keys/" + theirs.keyID, u1, "", 400, ErrTypeKeyIDNotExists},
		{"delete another user's key", "DELETE", "/bip340/delete-key-share/" + theirs.keyID, u1, "", 400, ErrTypeKeyIDNotExists},
		{"room_size 0", "POST", "/create-room", u1, `{"room_size":0}`, 400, ErrTypeBadNAndTParams},
		{"room_size above maximum", "POST", "/create-room", u1, `{"room_size":6}`, 400, ErrTypeBadNAndTParams},
		{"room_size missing", "POST", "/create-room", u1, `{}`, 400, ErrTypeBadRequestParams},
		{"body too large", "POST", "/bip340/sign", u1, `{"msg":"` + strings.Repeat("00", 40<<10) + `"}`, 400, ErrTypeBadRequestParams},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.do(c.method, c.path, c.key, c.body)
			wantErr(t, r, c.status, c.errType)
			assertNoSecret(t, r.raw, privOK)
			if r.header.Get("X-Request-Id") == "" {
				t.Fatal("no X-Request-Id")
			}
		})
	}
	assertNoSecret(t, h.logs.String(), privOK)
	for _, bad := range []string{curveN, strings.Repeat("f", 64)} {
		assertNoSecret(t, h.logs.String(), bad)
	}
}

func mustHex(t *testing.T) string {
	s, _ := randomKeyHex(t)
	return s
}

// TestUnknownAndForeignKeysLookAlike: another user's key_id answers exactly
// what an absent one does, byte for byte.
func TestUnknownAndForeignKeysLookAlike(t *testing.T) {
	h := newHarness(t, nil)
	u1, u2 := h.newUser("u1"), h.newUser("u2")
	theirs := h.newSlot(u2)
	for _, path := range []string{"/bip340/keys/", "/bip340/export-id/"} {
		foreign := h.do("GET", path+theirs.keyID, u1, "")
		absent := h.do("GET", path+"00000000-0000-4000-8000-000000000000", u1, "")
		if foreign.status != absent.status || foreign.raw != absent.raw {
			t.Fatalf("%s: foreign %d %s vs absent %d %s", path, foreign.status, foreign.raw, absent.status, absent.raw)
		}
	}
}

func TestRelayDownAndCeremonyTimeout(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Ceremony.Timeout = 300 * time.Millisecond })
	u1, u2 := h.newUser("u1"), h.newUser("u2")
	a, b := h.newSlot(u1), h.newSlot(u2)
	room := h.newRoom(u1, 2)

	// The dealer never comes: the recipient blocks for the ceremony timeout.
	start := time.Now()
	r := h.do("POST", "/bip340/import/import-key-share-recipient", u2, importBody(room, b.keyID, 2, []string{a.keygenID}, ""))
	wantErr(t, r, 400, ErrTypeExecutorResult)
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("answered after %v, before the ceremony timeout", el)
	}
	// Nothing was stored: the slot is still usable.
	if st := h.must(h.do("GET", "/bip340/keys/"+b.keyID, u2, "")).str("state"); st != "created" {
		t.Fatalf("state %s after a failed ceremony", st)
	}
	if !strings.Contains(h.srv.metricsText(t), `quorumd_ceremonies_total{kind="import_recipient",outcome="executor_result"} 1`) {
		t.Fatal("ceremony failure not counted")
	}

	h.net.mu.Lock()
	h.net.down = true
	h.net.mu.Unlock()
	r = h.do("POST", "/create-room", u1, `{"room_size":2}`)
	wantErr(t, r, 400, ErrTypeRoomCreationProblem)
	if strings.Contains(r.raw, "refused") {
		t.Fatalf("relay error text leaked: %s", r.raw)
	}
}

func (s *Server) metricsText(t *testing.T) string {
	var b bytes.Buffer
	if _, err := s.metrics.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestInternalErrorsAndPanics: an untyped backend error is a 500 whose text
// stays in the log; a panic is a 500 and the server keeps serving.
func TestInternalErrorsAndPanics(t *testing.T) {
	h := newHarness(t, nil)
	u := h.newUser("u")
	const secretText = "pkcs11: CKR_DEVICE_ERROR token 7 wrapping key quorumd-wrap"
	h.keys.hook = func() { panic(fmt.Errorf("%s", secretText)) }
	r := h.do("GET", "/bip340/create", u, "")
	wantErr(t, r, 500, ErrTypeInternalProblem)
	if strings.Contains(h.logs.String(), secretText) {
		t.Fatal("panic value text was logged")
	}
	if !strings.Contains(h.logs.String(), `"msg":"panic recovered"`) {
		t.Fatal("panic not logged")
	}

	h.keys.hook = nil
	h.must(h.do("GET", "/bip340/create", u, ""))
	h.must(h.do("GET", "/healthz", "", ""))

	// Untyped errors: hidden from the client, logged with the request id.
	errKeys := &failingKeys{memKeys: h.keys, err: fmt.Errorf("bolt: %s", secretText)}
	h.srv.b.Keys = errKeys
	r = h.do("GET", "/bip340/keys/00000000-0000-4000-8000-000000000000", u, "", "X-Request-Id", "req-abc.1")
	wantErr(t, r, 500, ErrTypeInternalProblem)
	if strings.Contains(r.raw, "bolt") || r.header.Get("X-Request-Id") != "req-abc.1" {
		t.Fatalf("answer %s / id %s", r.raw, r.header.Get("X-Request-Id"))
	}
	found := false
	for _, line := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(line, `"msg":"internal error"`) && strings.Contains(line, "req-abc.1") && strings.Contains(line, "bolt") {
			found = true
		}
	}
	if !found {
		t.Fatal("internal error not logged with its request id")
	}
}

type failingKeys struct {
	*memKeys
	err error
}

func (f *failingKeys) Get(context.Context, string, string) (KeyInfo, error) { return KeyInfo{}, f.err }

func TestReadiness(t *testing.T) {
	h := newHarness(t, nil)
	r := h.must(h.do("GET", "/readyz", "", ""))
	if r.str("status") != "ready" {
		t.Fatal(r.raw)
	}
	h.readyMu.Lock()
	h.ready["hsm"] = fmt.Errorf("CKR_TOKEN_NOT_PRESENT")
	h.readyMu.Unlock()
	r = h.do("GET", "/readyz", "", "")
	wantErr(t, r, 503, ErrTypeInternalProblem)
	if !strings.Contains(r.str("err_msg"), "hsm") || strings.Contains(r.raw, "CKR") {
		t.Fatalf("readyz %s", r.raw)
	}
	h.must(h.do("GET", "/healthz", "", ""))
}

func TestAccessLogAndRequestID(t *testing.T) {
	h := newHarness(t, nil)
	u := h.newUser("u")
	h.must(h.do("GET", "/bip340/create", u, "", "X-Request-Id", "client-id-1"))
	r := h.do("GET", "/bip340/create", u, "", "X-Request-Id", "bad id with spaces")
	if id := r.header.Get("X-Request-Id"); id == "" || strings.Contains(id, " ") {
		t.Fatalf("request id %q", id)
	}
	var line map[string]any
	for _, l := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(l, `"request_id":"client-id-1"`) && strings.Contains(l, `"msg":"request"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line == nil || line["status"] != 200.0 || line["user_id"] == nil || line["route"] != "/bip340/create" || line["method"] != "GET" {
		t.Fatalf("access line %v", line)
	}
	if strings.Contains(h.logs.String(), u) {
		t.Fatal("API key logged")
	}
}

func TestMetricsEndpoint(t *testing.T) {
	h := newHarness(t, nil)
	u := h.newUser("u")
	h.must(h.do("GET", "/bip340/create", u, ""))
	h.do("GET", "/nope", u, "")
	r := h.must(h.do("GET", "/metrics", "", ""))
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("content type %s", ct)
	}
	for _, want := range []string{
		`quorumd_http_requests_total{method="GET",route="/bip340/create",status="200"} 1`,
		`quorumd_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`quorumd_http_request_duration_seconds_count{route="/bip340/create"} 1`,
		"quorumd_http_requests_in_flight 1", // the scrape itself
		"\nquorumd_start_time_seconds ",
		// The Go runtime and process collectors.
		"\ngo_goroutines ", "\ngo_memstats_heap_alloc_bytes ", "\ngo_gc_duration_seconds_count ",
		"\nprocess_resident_memory_bytes ", "\nprocess_open_fds ", "\nprocess_start_time_seconds ",
	} {
		if !strings.Contains(r.raw, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	checkExposition(t, r.raw)
}

// TestBodyIsWiped: after a request, the body buffer that held the private
// key is all zeros, for accepted and rejected requests alike.
func TestBodyIsWiped(t *testing.T) {
	h := newHarness(t, nil)
	u1, u2 := h.newUser("u1"), h.newUser("u2")
	a, b := h.newSlot(u1), h.newSlot(u2)
	privHex := mustHex(t)
	for _, body := range []string{
		importBody("00000000-0000-4000-8000-000000000000", a.keyID, 2, []string{b.keygenID}, privHex),
		importBody("00000000-0000-4000-8000-000000000000", a.keyID, 9, []string{b.keygenID}, privHex),
		`{"unknown":1,"private_key":"` + privHex + `"}`,
	} {
		var fc fastCtx
		fc.init("POST", "/bip340/import/key-importer", u1, body)
		h.srv.Handler(fc.ctx)
		if !bytes.Equal(fc.ctx.Request.Body(), make([]byte, len(body))) {
			t.Fatalf("body not wiped")
		}
		assertNoSecret(t, string(fc.ctx.Response.Body()), privHex)
	}
}

// TestPathsAreNotLogged: a secret a confused client puts in the path or
// the query string reaches neither the access log nor other log lines.
func TestPathsAreNotLogged(t *testing.T) {
	h := newHarness(t, nil)
	u := h.newUser("u")
	secret := mustHex(t)
	wantErr(t, h.do("GET", "/bip340/keys/"+secret, u, ""), 400, ErrTypeBadRequestParams)
	wantErr(t, h.do("GET", "/"+secret, u, ""), 404, ErrTypeNotFound)
	wantErr(t, h.do("GET", "/bip340/create?private_key="+secret, u, ""), 400, ErrTypeBadRequestParams)
	assertNoSecret(t, h.logs.String(), secret)
	if !strings.Contains(h.logs.String(), `"route":"/bip340/keys/:key_id"`) {
		t.Fatal("no access line")
	}
}

func TestKeyQuota(t *testing.T) {
	h := newHarness(t, nil)
	u := h.newUser("u")
	h.pol.mu.Lock()
	for _, usr := range h.pol.users {
		if usr.name == "u" {
			usr.quota = 2
		}
	}
	h.pol.mu.Unlock()
	h.newSlot(u)
	h.newSlot(u)
	wantErr(t, h.do("GET", "/bip340/create", u, ""), 400, ErrTypePolicyValidationFailed)
}

func BenchmarkDecodeImport(b *testing.B) {
	var others []string
	for i := 1; i <= 4; i++ {
		var k btcec.ModNScalar
		k.SetInt(uint32(i))
		others = append(others, hex.EncodeToString(btcec.PrivKeyFromScalar(&k).PubKey().SerializeCompressed()))
	}
	body := []byte(importBody("00000000-0000-4000-8000-000000000000", "11111111-1111-4111-8111-111111111111", 3, others, strings.Repeat("0", 62)+"2a"))
	buf := make([]byte, len(body))
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, body)
		r, err := decodeImport(buf, true, 16)
		if err != nil {
			b.Fatal(err)
		}
		r.PrivateKey.Zero()
	}
}

// BenchmarkHandlerGetKey measures the HTTP layer's own cost per request
// (routing, auth call, lookup, JSON, logging to a discarding handler) with
// the in-memory backends, without the network.
func BenchmarkHandlerGetKey(b *testing.B) {
	pol, keys := newMemPolicy(), newMemKeys()
	_, key := pol.add("u", false)
	c, _ := pol.Authorize(context.Background(), key, OpGetKey, AuthParams{})
	slot, _ := keys.Create(context.Background(), c.UserID, 0)
	srv, err := New(testConfig(), Backends{Auth: pol, Admin: pol, Keys: keys, Rooms: newMemNet(keys), Ceremonies: newMemNet(keys)},
		slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var fc fastCtx
		fc.init("GET", "/bip340/keys/"+slot.KeyID, key, "")
		srv.Handler(fc.ctx)
		if fc.ctx.Response.StatusCode() != 200 {
			b.Fatal(string(fc.ctx.Response.Body()))
		}
	}
}

// FuzzLogPath: the no-copy path of logPath answers what the redacting
// builder answers.
func FuzzLogPath(f *testing.F) {
	s := &Server{segments: map[string]bool{"import-key-share-recipient": true}}
	for _, p := range []string{"/bip340/sign", "/bip340/import/import-key-share-recipient", "/bip340/keys/00000000-0000-4000-8000-000000000000",
		"/" + strings.Repeat("a", 64), "/x%2f..", strings.Repeat("/ab", 100)} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if got, want := s.logPath(p), s.redactPath(p, 256, 20); got != want {
			t.Fatalf("logPath(%q) = %q, redacting builder %q", p, got, want)
		}
	})
}
