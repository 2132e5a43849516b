package daemon

import (
	"context"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
)

func TestGracefulShutdown(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Ceremony.Timeout = 10 * time.Second })
	u1, u2 := h.newUser("u1"), h.newUser("u2")
	a, b := h.newSlot(u1), h.newSlot(u2)
	room := h.newRoom(u1, 2)
	got := make(chan resp)
	go func() {
		got <- h.do("POST", "/bip340/import/import-key-share-recipient", u2, importBody(room, b.keyID, 2, []string{a.keygenID}, ""))
	}()
	for {
		h.net.mu.Lock()
		joined := h.net.rooms[room].joined
		h.net.mu.Unlock()
		if joined == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A short grace period ends before the ceremony: its context is
	// cancelled and it fails cleanly with executor_result.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := h.srv.Shutdown(ctx); err == nil {
		t.Fatal("shutdown did not report the request still in flight")
	}
	r := <-got
	wantErr(t, r, 400, ErrTypeExecutorResult)
	if !strings.Contains(r.str("err_msg"), "shutting down") || time.Since(start) > 5*time.Second {
		t.Fatalf("%s after %v", r.raw, time.Since(start))
	}
}

// TestShutdownLetsCeremoniesFinish: during a graceful shutdown a ceremony in
// flight completes (its other party lives on another daemon, modelled by
// calling the in-memory quorum directly) and Shutdown returns cleanly.
func TestShutdownLetsCeremoniesFinish(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Ceremony.Timeout = 10 * time.Second })
	u1, u2 := h.newUser("u1"), h.newUser("u2")
	a, b := h.newSlot(u1), h.newSlot(u2)
	room := h.newRoom(u1, 2)
	got := make(chan resp)
	go func() {
		got <- h.do("POST", "/bip340/import/import-key-share-recipient", u2, importBody(room, b.keyID, 2, []string{a.keygenID}, ""))
	}()
	for {
		h.net.mu.Lock()
		joined := h.net.rooms[room].joined
		h.net.mu.Unlock()
		if joined == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- h.srv.Shutdown(ctx)
	}()
	// /readyz now fails; new connections are refused, so probe the handler.
	for !h.srv.stopping.Load() {
		time.Sleep(time.Millisecond)
	}
	var fc fastCtx
	fc.init("GET", "/readyz", "", "")
	h.srv.Handler(fc.ctx)
	if fc.ctx.Response.StatusCode() != 503 {
		t.Fatalf("readyz during shutdown: %d", fc.ctx.Response.StatusCode())
	}
	var x btcec.ModNScalar
	x.SetInt(7)
	users := h.pol
	users.mu.Lock()
	owner := ""
	for id, u := range users.users {
		if u.name == "u1" {
			owner = id
		}
	}
	users.mu.Unlock()
	if _, err := h.net.ImportKey(context.Background(), ImportParams{Owner: owner, KeyID: a.keyID, RoomUUID: room, Threshold: 2, Others: [][]byte{mustDecodeHex(t, b.keygenID)}}, &x); err != nil {
		t.Fatal(err)
	}
	r := <-got
	h.must(r)
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func mustDecodeHex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
