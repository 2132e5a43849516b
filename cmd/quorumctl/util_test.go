package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"

	"github.com/quorumd/quorumd/mpc/secp"
)

func TestNormalizeURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"http://127.0.0.1:8080/", "http://127.0.0.1:8080"},
		{"https://quorum.example:443/api", "https://quorum.example:443/api"},
		{"ftp://x:1", ""},
		{"http://user:pw@x:1", ""},
		{"http://x:1/?q=1", ""},
		{"http://", ""},
	}
	for _, tc := range tests {
		got, err := normalizeURL(tc.in)
		if tc.want == "" {
			if !errors.Is(err, errUsage) {
				t.Errorf("normalizeURL(%q) = %q, %v; want a usage error", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("normalizeURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseIndexes(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want []int
		ok   bool
	}{
		{"0,2", 3, []int{0, 2}, true},
		{" 2 , 0 ", 3, []int{2, 0}, true},
		{"3", 3, nil, false},
		{"-1", 3, nil, false},
		{"1,1", 3, nil, false},
		{"a", 3, nil, false},
	}
	for _, tc := range tests {
		got, err := parseIndexes(tc.in, tc.n)
		if (err == nil) != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("parseIndexes(%q, %d) = %v, %v", tc.in, tc.n, got, err)
		}
	}
}

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:1", true},
		{"http://127.5.6.7:1", true},
		{"http://[::1]:1", true},
		{"http://localhost:1", true},
		{"http://10.0.0.1:1", false},
		{"http://192.168.1.1:1", false},
		{"http://[2001:db8::1]:1", false},
		{"http://example.com:1", false},
	}
	for _, tc := range tests {
		err := checkLoopback(context.Background(), tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("checkLoopback(%s) = %v, want ok=%v", tc.url, err, tc.ok)
		}
		if err != nil && !tc.ok && !errors.Is(err, errNotLoopback) {
			t.Errorf("checkLoopback(%s) = %v, want errNotLoopback", tc.url, err)
		}
	}
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
		got := appendHexCT(nil, b[:])
		if string(got) != hex.EncodeToString(b[:]) {
			t.Fatalf("appendHexCT(%x) = %s", b, got)
		}
		var dec [32]byte
		upper := []byte(strings.ToUpper(string(got)))
		if bad := secp.DecodeHex(dec[:], upper); bad != 0 || dec != b {
			t.Fatalf("secp.DecodeHex(%s) = %x, bad %d", upper, dec, bad)
		}
	}
	// Every byte value: only hex digits decode.
	for c := range 256 {
		var dst [1]byte
		bad := secp.DecodeHex(dst[:], []byte{byte(c), '0'})
		isHex := strings.ContainsRune("0123456789abcdefABCDEF", rune(c))
		if (bad == 0) != isHex {
			t.Errorf("secp.DecodeHex(%q): bad=%d", rune(c), bad)
		}
	}
}

func TestParsePrivateKeyHex(t *testing.T) {
	n := "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"one", strings.Repeat("0", 63) + "1", true},
		{"n-1", n[:63] + "0", true},
		{"upper case and newline", strings.ToUpper("b7e151628aed2a6abf7158809cf4f3c762e7160f38b4da56a784d9045190cfef") + "\n", true},
		{"zero", strings.Repeat("0", 64), false},
		{"n", n, false},
		{"above n", strings.Repeat("f", 64), false},
		{"non-hex", strings.Repeat("g", 64), false},
		{"short", strings.Repeat("1", 62), false},
		{"long", strings.Repeat("1", 66), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := parsePrivateKeyHex(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if err != nil {
				if strings.Contains(err.Error(), strings.TrimSpace(tc.in)) {
					t.Error("the error echoes the key")
				}
				return
			}
			want, _ := hex.DecodeString(strings.TrimSpace(tc.in))
			if !bytes.Equal(k.b[:], want) {
				t.Errorf("decoded %x", k.b)
			}
			k.wipe()
			if k.b != ([32]byte{}) {
				t.Error("wipe left data")
			}
		})
	}
}

// TestPrivateKeyPubkey cross-checks the x-only pubkey (constant-time path)
// with btcec's.
func TestPrivateKeyPubkey(t *testing.T) {
	for range 20 {
		k, err := generatePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		got, err := k.xonlyPubkey()
		if err != nil {
			t.Fatal(err)
		}
		priv, _ := btcec.PrivKeyFromBytes(k.b[:])
		if want := schnorr.SerializePubKey(priv.PubKey()); !bytes.Equal(got[:], want) {
			t.Fatalf("pubkey %x, btcec %x", got, want)
		}
	}
}

func TestReadPrivateKeyFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode uint32) string {
		p := dir + "/" + name
		if err := writeFileMode(p, body, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := "b7e151628aed2a6abf7158809cf4f3c762e7160f38b4da56a784d9045190cfef"
	if k, err := readPrivateKeyFile(write("ok", key+"\n", 0o600)); err != nil || hex.EncodeToString(k.b[:]) != key {
		t.Errorf("good file: %v", err)
	}
	if _, err := readPrivateKeyFile(write("open", key, 0o644)); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Errorf("world-readable file accepted: %v", err)
	}
	if _, err := readPrivateKeyFile(write("zero", strings.Repeat("0", 64), 0o600)); !errors.Is(err, errBadPrivateKey) {
		t.Errorf("zero key: %v", err)
	}
	if _, err := readPrivateKeyFile(dir + "/missing"); err == nil {
		t.Error("missing file accepted")
	}
}

func TestClientErrors(t *testing.T) {
	var gotAuth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
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
	hc, _ := newHTTPClient(tlsOptions{}, 1)
	c := NewClient(hc, srv.URL, "0123456789abcdef.secret")
	ctx := context.Background()

	if _, err := c.CreateKey(ctx); !errors.Is(err, errBadResponse) {
		t.Errorf("bad key_id: %v", err)
	}
	_, err := c.CreateRoom(ctx, 2)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 502 || ae.ErrType != "" || strings.ContainsAny(ae.ErrMsg, "\n") {
		t.Errorf("non-envelope answer: %#v", err)
	}
	if errType(err) != "http_502" {
		t.Errorf("errType = %s", errType(err))
	}
	_, err = c.Sign(ctx, SignRequest{RoomUUID: "r", KeyID: "k", Msg: "00"})
	if !errors.As(err, &ae) || ae.Status != 400 || ae.ErrType != "executor_result" || !strings.Contains(err.Error(), "invalid partial signature") {
		t.Errorf("envelope: %v", err)
	}
	if _, err := c.GetKey(ctx, "00000000-0000-4000-8000-000000000000"); !errors.Is(err, errBadResponse) {
		t.Errorf("key record for another key: %v", err)
	}
	for _, a := range gotAuth {
		if a != "0123456789abcdef.secret" {
			t.Errorf("Authorization %q: want the raw API key", a)
		}
	}
	// Connection refused is a transport failure.
	srv.Close()
	if _, err := c.CreateKey(ctx); errType(err) != "transport" {
		t.Errorf("closed server: %v (%s)", err, errType(err))
	}
}

// writeFileMode writes body to path with exactly mode (umask aside).
func writeFileMode(path, body string, mode uint32) error {
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		return err
	}
	return os.Chmod(path, os.FileMode(mode))
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
	hc, _ := newHTTPClient(tlsOptions{}, 1)
	c := NewReplicaClient(hc, []string{a.URL, b.URL}, "k")
	ctx := context.Background()
	var ok, failed int
	for range 4 {
		if _, err := c.CreateRoom(ctx, 2); err == nil {
			ok++
		} else if errType(err) == "internal_problem" {
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
	// already written: that is not repeated (see do), so drop them here.
	hc.CloseIdleConnections()
	for range 3 {
		if _, err := c.CreateRoom(ctx, 2); errType(err) != "internal_problem" {
			t.Fatalf("a down: %v (%s), want b's answer", err, errType(err))
		}
	}
	if hits[1].Load() != 5 {
		t.Errorf("b served %d calls, want 5", hits[1].Load())
	}
	// Both down: a transport error.
	b.Close()
	if _, err := c.CreateRoom(ctx, 2); errType(err) != "transport" {
		t.Errorf("all replicas down: %v (%s)", err, errType(err))
	}
}
