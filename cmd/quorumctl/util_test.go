package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

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

// TestDecodeHexCT: the constant-time decoder of private keys reads upper
// and lower case, and only hex digits.
func TestDecodeHexCT(t *testing.T) {
	for range 200 {
		var b [32]byte
		rand.Read(b[:])
		var dec [32]byte
		upper := []byte(strings.ToUpper(hex.EncodeToString(b[:])))
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

// writeFileMode writes body to path with exactly mode (umask aside).
func writeFileMode(path, body string, mode uint32) error {
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		return err
	}
	return os.Chmod(path, os.FileMode(mode))
}
