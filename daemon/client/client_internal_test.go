package client

// Unit tests against fake servers: only what a real daemon cannot be made
// to do on demand — answers that are not the envelope, malformed 200s,
// overload (503 + Retry-After), refused connections. Every endpoint is
// exercised against real daemons in endpoints_test.go.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func apiErr(w http.ResponseWriter, status int, errType, msg string) {
	writeJSON(w, status, map[string]string{"err_type": errType, "err_msg": msg})
}

func newTestClient(t *testing.T, base string, opts ...Option) *Client {
	t.Helper()
	c, err := New(base, "0123456789abcdef.secret", opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParallel(t *testing.T) {
	boom := errors.New("boom")
	start := time.Now()
	errs := parallel(context.Background(), 4, func(ctx context.Context, i int) error {
		if i == 2 {
			return boom
		}
		select { // the others wait until cancelled
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Second):
			return nil
		}
	})
	if time.Since(start) > 5*time.Second {
		t.Fatal("a failure did not cancel the others")
	}
	i, err := firstError(errs)
	if i != 2 || !errors.Is(err, boom) {
		t.Errorf("firstError = %d, %v; want 2, boom", i, err)
	}
	if i, err := firstError(make([]error, 3)); i != -1 || err != nil {
		t.Errorf("firstError(no errors) = %d, %v", i, err)
	}
	// A cancellation is reported only when nothing else failed.
	if i, _ := firstError([]error{context.Canceled, nil, boom}); i != 2 {
		t.Errorf("firstError picked %d over the real failure", i)
	}
}

func TestHexCT(t *testing.T) {
	for range 200 {
		var b [32]byte
		rand.Read(b[:])
		if got := appendHexCT(nil, b[:]); string(got) != hex.EncodeToString(b[:]) {
			t.Fatalf("appendHexCT(%x) = %s", b, got)
		}
	}
	for n := range 16 {
		if got, want := ctHexDigit(byte(n)), "0123456789abcdef"[n]; got != want {
			t.Errorf("ctHexDigit(%d) = %c", n, got)
		}
	}
}

func TestParseBase(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080":                 "http://127.0.0.1:8080",
		"http://127.0.0.1:8080/":         "http://127.0.0.1:8080",
		"https://quorum.example:443/api": "https://quorum.example:443/api",
		"ftp://x:1":                      "",
		"http://user:pw@127.0.0.1:1":     "",
		"http://127.0.0.1:1/?q=1":        "",
		"http://127.0.0.1:1/#frag":       "",
	} {
		got, err := ParseBase(in)
		if want == "" {
			if err == nil || !errors.Is(err, ErrUsage) {
				t.Errorf("ParseBase(%q) = %q, %v; want a usage error", in, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("ParseBase(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := New("127.0.0.1:1", "", WithReplicas("http://127.0.0.1:1")); !errors.Is(err, ErrUsage) {
		t.Errorf("a replica listed twice: %v", err)
	}
}

func TestClientErrors(t *testing.T) {
	var gotAuth, gotUA []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
		gotUA = append(gotUA, r.Header.Get("User-Agent"))
		switch r.URL.Path {
		case "/bip340/create":
			writeJSON(w, 200, map[string]string{"key_id": "not-a-uuid", "keygen_id": strings.Repeat("02", 33)})
		case "/create-room":
			w.WriteHeader(502)
			fmt.Fprint(w, "<html>bad gateway\n</html>")
		case "/bip340/sign":
			apiErr(w, 400, "executor_result", "participant 02ab... sent an invalid partial signature")
		case "/bip340/keys/00000000-0000-4000-8000-000000000000":
			writeJSON(w, 200, map[string]string{"key_id": "00000000-0000-4000-8000-000000000001"})
		default:
			writeJSON(w, 200, map[string]string{"room_uuid": "x"})
		}
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, WithUserAgent("quorumd-test"))
	ctx := context.Background()

	if _, err := c.CreateKey(ctx); !errors.Is(err, ErrBadResponse) || ErrType(err) != "bad_response" {
		t.Errorf("bad key_id: %v", err)
	}
	_, err := c.CreateRoom(ctx, 2)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 502 || ae.ErrType != "" || strings.ContainsAny(ae.ErrMsg, "\n") {
		t.Errorf("non-envelope answer: %#v", err)
	}
	if ErrType(err) != "http_502" {
		t.Errorf("ErrType = %s", ErrType(err))
	}
	_, err = c.Sign(ctx, SignRequest{RoomUUID: "r", KeyID: "k", Msg: "00"})
	if !errors.As(err, &ae) || ae.Status != 400 || ae.ErrType != "executor_result" || !strings.Contains(err.Error(), "invalid partial signature") {
		t.Errorf("envelope: %v", err)
	}
	if ErrType(err) != "executor_result" {
		t.Errorf("ErrType = %s", ErrType(err))
	}
	if _, err := c.GetKey(ctx, "00000000-0000-4000-8000-000000000000"); !errors.Is(err, ErrBadResponse) {
		t.Errorf("key record for another key: %v", err)
	}
	if _, err := c.GetKey(ctx, "../admin/list-all-system-keys"); !errors.Is(err, ErrUsage) {
		t.Errorf("a key id that is no UUID reached the server: %v", err)
	}
	for i, a := range gotAuth {
		if a != "0123456789abcdef.secret" || gotUA[i] != "quorumd-test" {
			t.Errorf("Authorization %q, User-Agent %q: want the raw API key and the set agent", a, gotUA[i])
		}
	}
	// Connection refused is a transport failure; a ceremony POST is not
	// repeated, a read only a bounded number of times.
	srv.Close()
	if _, err := c.CreateRoom(ctx, 2); ErrType(err) != "transport" {
		t.Errorf("closed server: %v (%s)", err, ErrType(err))
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.GetKey(cctx, "00000000-0000-4000-8000-000000000000"); ErrType(err) != "cancelled" {
		t.Errorf("cancelled context: %v (%s)", err, ErrType(err))
	}
}

// TestReplicaClientFailover: a party given as replicas spreads calls over
// them, moves on when one refuses connections, and does not repeat a call
// that a replica answered (even with an error).
func TestReplicaClientFailover(t *testing.T) {
	var hits [2]atomic.Int32
	mk := func(i int, status int) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			if status != 200 {
				apiErr(w, status, "internal_problem", "store unavailable")
				return
			}
			writeJSON(w, 200, map[string]string{"room_uuid": "00000000-0000-4000-8000-000000000000"})
		}))
	}
	a, b := mk(0, 200), mk(1, 500)
	defer b.Close()
	hc := NewHTTPClient(nil, 1)
	c := newTestClient(t, a.URL, WithHTTPClient(hc), WithReplicas(b.URL))
	if got := c.Bases(); len(got) != 2 || got[0] != c.Base() {
		t.Errorf("Bases() = %v", got)
	}
	ctx := context.Background()
	var ok, failed int
	for range 4 {
		if _, err := c.CreateRoom(ctx, 2); err == nil {
			ok++
		} else if ErrType(err) == "internal_problem" {
			failed++
		} else {
			t.Fatalf("both replicas up: %v", err)
		}
	}
	if ok != 2 || failed != 2 || hits[0].Load() != 2 || hits[1].Load() != 2 {
		t.Errorf("round robin: %d ok, %d failed, hits %d/%d; want 2 each", ok, failed, hits[0].Load(), hits[1].Load())
	}
	// Replica a down: every call reaches b, none fails as transport.
	a.Close()
	// A kept-alive connection a closed under us may fail a call that was
	// already written: that is not repeated (see once), so drop them here.
	hc.CloseIdleConnections()
	for range 3 {
		if _, err := c.CreateRoom(ctx, 2); ErrType(err) != "internal_problem" {
			t.Fatalf("a down: %v (%s), want b's answer", err, ErrType(err))
		}
	}
	if hits[1].Load() != 5 {
		t.Errorf("b served %d calls, want 5", hits[1].Load())
	}
	// Both down: a transport error.
	b.Close()
	if _, err := c.CreateRoom(ctx, 2); ErrType(err) != "transport" {
		t.Errorf("all replicas down: %v (%s)", err, ErrType(err))
	}
}

// TestRetries: an overload answer (503 + Retry-After) is repeated for any
// call, after the wait it asks for; a 503 without Retry-After only for a
// read; a ceremony answered 500 never; all of it bounded by WithRetries
// and the context.
func TestRetries(t *testing.T) {
	var calls atomic.Int32
	var busy atomic.Int32 // answers still to refuse
	var retryAfter atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if busy.Add(-1) >= 0 {
			if ra := retryAfter.Load().(string); ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			apiErr(w, 503, "internal_problem", "ceremony budget full")
			return
		}
		switch r.URL.Path {
		case "/bip340/sign":
			writeJSON(w, 200, map[string]string{"signature": strings.Repeat("ab", 64)})
		case "/bip340/refresh":
			apiErr(w, 500, "internal_problem", "x")
		default:
			writeJSON(w, 200, map[string]any{"key_id": "00000000-0000-4000-8000-000000000000", "state": "created"})
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	const keyID = "00000000-0000-4000-8000-000000000000"
	for _, tc := range []struct {
		name       string
		retries    int
		busy       int
		retryAfter string
		call       func(c *Client) error
		wantCalls  int32
		wantErr    string // ErrType, "" = success
		minElapsed time.Duration
	}{
		{"overloaded sign, repeated after Retry-After", 2, 1, "1", func(c *Client) error {
			_, err := c.Sign(ctx, SignRequest{RoomUUID: keyID, KeyID: keyID, Msg: "00"})
			return err
		}, 2, "", time.Second},
		{"overloaded beyond the bound", 1, 5, "0", func(c *Client) error {
			_, err := c.Sign(ctx, SignRequest{RoomUUID: keyID, KeyID: keyID, Msg: "00"})
			return err
		}, 2, "internal_problem", 0},
		{"503 without Retry-After: a read is repeated", 2, 2, "", func(c *Client) error {
			_, err := c.GetKey(ctx, keyID)
			return err
		}, 3, "", 0},
		{"503 without Retry-After: a ceremony is not", 2, 1, "", func(c *Client) error {
			_, err := c.Sign(ctx, SignRequest{RoomUUID: keyID, KeyID: keyID, Msg: "00"})
			return err
		}, 1, "internal_problem", 0},
		{"500 from a ceremony: never repeated", 2, 0, "", func(c *Client) error {
			_, _, err := c.Refresh(ctx, RefreshRequest{RoomUUID: keyID, KeyID: keyID})
			return err
		}, 1, "internal_problem", 0},
		{"retries disabled", 0, 1, "1", func(c *Client) error {
			_, err := c.GetKey(ctx, keyID)
			return err
		}, 1, "internal_problem", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls.Store(0)
			busy.Store(int32(tc.busy))
			retryAfter.Store(tc.retryAfter)
			c := newTestClient(t, srv.URL, WithRetries(tc.retries))
			start := time.Now()
			err := tc.call(c)
			if ErrType(err) != tc.wantErr {
				t.Fatalf("error %v (%s), want %q", err, ErrType(err), tc.wantErr)
			}
			if got := calls.Load(); got != tc.wantCalls {
				t.Errorf("%d calls, want %d", got, tc.wantCalls)
			}
			if time.Since(start) < tc.minElapsed {
				t.Errorf("repeated after %s, before Retry-After", time.Since(start))
			}
			var ae *APIError
			if tc.retryAfter == "1" && tc.wantErr != "" && (!errors.As(err, &ae) || ae.RetryAfter != time.Second) {
				t.Errorf("error %v: want RetryAfter 1s", err)
			}
		})
	}
	// A context ending during the wait ends the call at once.
	busy.Store(5)
	retryAfter.Store("30")
	c := newTestClient(t, srv.URL)
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.GetKey(cctx, keyID)
	var ae *APIError
	if !errors.As(err, &ae) || ae.RetryAfter != 30*time.Second {
		t.Errorf("error %v: want the overload answer with its Retry-After", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("waited %s past the context's end", time.Since(start))
	}
}
