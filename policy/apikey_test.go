package policy

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestNewAPIKey(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		key, id, digest, err := newAPIKey()
		if err != nil {
			t.Fatal(err)
		}
		l, secret, ok := parseAPIKey(key)
		if !ok || l != id || len(key) != apiKeyLen {
			t.Fatalf("generated key does not parse: len %d", len(key))
		}
		raw, err := base64.RawURLEncoding.DecodeString(secret)
		if err != nil || len(raw) != 32 {
			t.Fatalf("secret is not 32 base64url bytes: %v", err)
		}
		want := sha256.Sum256([]byte(secret))
		if digest != hex.EncodeToString(want[:]) {
			t.Fatal("digest is not SHA-256 of the secret text")
		}
		if d := secretDigest(secret); hex.EncodeToString(d[:]) != digest {
			t.Fatal("secretDigest disagrees")
		}
		if seen[id] || seen[secret] {
			t.Fatal("repeated random value")
		}
		seen[id], seen[secret] = true, true
	}
}

func TestParseAPIKey(t *testing.T) {
	good := "0123456789abcdef." + strings.Repeat("Az09-_", 7) + "x"
	if _, _, ok := parseAPIKey(good); !ok {
		t.Fatal("valid key rejected")
	}
	cases := []struct{ name, key string }{
		{"empty", ""},
		{"short", good[:len(good)-1]},
		{"long", good + "A"},
		{"no dot", strings.Replace(good, ".", "x", 1)},
		{"upper hex id", "0123456789ABCDEF" + good[16:]},
		{"non hex id", "0123456789abcdeg" + good[16:]},
		{"padding", good[:len(good)-1] + "="},
		{"plus", good[:len(good)-1] + "+"},
		{"slash", good[:20] + "/" + good[21:]},
		{"space", good[:30] + " " + good[31:]},
		{"high byte", good[:40] + "\xff" + good[41:]},
		{"NUL", good[:40] + "\x00" + good[41:]},
		{"bearer", "Bearer " + good[:len(good)-7]},
	}
	for _, tc := range cases {
		if _, _, ok := parseAPIKey(tc.key); ok {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

// TestBase64URLAlphabet compares the branch-free check with a plain one on
// every byte value.
func TestBase64URLAlphabet(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if got := base64URLAlphabet(string([]byte{byte(c)})); got != want {
			t.Errorf("byte %#x: %v, want %v", c, got, want)
		}
	}
}

func TestIDs(t *testing.T) {
	for i := 0; i < 50; i++ {
		id, err := newUserID()
		if err != nil {
			t.Fatal(err)
		}
		if !validUserID(id) || id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) {
			t.Fatalf("bad uuid %q", id)
		}
	}
	for _, bad := range []string{"", "00000000-0000-4000-8000-00000000000", "00000000-0000-4000-8000-00000000000G",
		"00000000x0000-4000-8000-000000000000", "00000000-0000-4000-8000-00000000000A", "../../../../../../../../../../../../"} {
		if validUserID(bad) {
			t.Errorf("accepted user id %q", bad)
		}
	}
	for _, bad := range []string{"", "0123456789abcde", "0123456789abcdeF", "../0123456789abc"} {
		if validLookupID(bad) {
			t.Errorf("accepted lookup id %q", bad)
		}
	}
	for _, tc := range []struct {
		s  string
		ok bool
	}{{"alice", true}, {"a.b-c_d@e", true}, {strings.Repeat("x", 64), true}, {"", false}, {".", false},
		{"..", false}, {"a/b", false}, {"a b", false}, {strings.Repeat("x", 65), false}, {"é", false}} {
		if validName(tc.s) != tc.ok {
			t.Errorf("validName(%q) = %v", tc.s, !tc.ok)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	ok := Policy{Name: "p", AllowedOperations: []Operation{OpSign}, MaxN: 3, MinThreshold: 1, MaxThreshold: 2,
		AllowedRelayAddresses: []string{"relay:1", "[::1]:7443"}, KeyQuota: 0}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(*Policy)
	}{
		{"bad name", func(p *Policy) { p.Name = "a/b" }},
		{"unknown op", func(p *Policy) { p.AllowedOperations = []Operation{"fly"} }},
		{"admin op", func(p *Policy) { p.AllowedOperations = []Operation{OpDeleteUser} }},
		{"negative max_n", func(p *Policy) { p.MaxN = -1 }},
		{"negative quota", func(p *Policy) { p.KeyQuota = -1 }},
		{"min above max", func(p *Policy) { p.MinThreshold = 3 }},
		{"relay without port", func(p *Policy) { p.AllowedRelayAddresses = []string{"relay"} }},
		{"relay port 0", func(p *Policy) { p.AllowedRelayAddresses = []string{"relay:0"} }},
		{"relay port text", func(p *Policy) { p.AllowedRelayAddresses = []string{"relay:http"} }},
		{"relay without host", func(p *Policy) { p.AllowedRelayAddresses = []string{":7443"} }},
	}
	for _, tc := range cases {
		p := ok
		p.AllowedRelayAddresses = append([]string(nil), ok.AllowedRelayAddresses...)
		tc.edit(&p)
		if err := p.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	for _, op := range Operations() {
		if _, ok := opRules[op]; !ok {
			t.Errorf("operation %s has no rule", op)
		}
	}
	if len(Operations()) != len(opRules) {
		t.Error("Operations() and opRules differ")
	}
}

func TestErrorMapping(t *testing.T) {
	cause := errors.New("vault read apikeys/x: connection refused")
	cases := []struct {
		err        *Error
		status     int
		showsCause bool
	}{
		{accessDenied(ErrKeyRevoked), http.StatusUnauthorized, false},
		{denied("no"), http.StatusBadRequest, false},
		{typed(ErrTypeUserNameAlreadyExists, "dup"), http.StatusBadRequest, false},
		{&Error{Type: ErrTypeAdminRequired, Msg: "admin", Err: ErrOperationDenied}, http.StatusBadRequest, false},
		{internalError(cause), http.StatusInternalServerError, true},
	}
	for _, tc := range cases {
		if got := tc.err.HTTPStatus(); got != tc.status {
			t.Errorf("%s: status %d, want %d", tc.err.Type, got, tc.status)
		}
		if strings.Contains(tc.err.Error(), "connection refused") != tc.showsCause {
			t.Errorf("%s: Error() %q", tc.err.Type, tc.err.Error())
		}
		if tc.err.ErrType() != tc.err.Type {
			t.Error("ErrType")
		}
	}
	if e := accessDenied(ErrKeyRevoked); !errors.Is(e, ErrKeyRevoked) || strings.Contains(e.Error(), "revoked API key") == false {
		t.Errorf("access denied: %q", e.Error())
	}
	if e := internalError(fmtWrap(ErrSourceUnavailable)); e.Msg != "policy source unavailable" {
		t.Errorf("unavailable msg %q", e.Msg)
	}
	if e := internalError(fmtWrap(ErrSourceDenied)); e.Msg != "policy source denied access" {
		t.Errorf("denied msg %q", e.Msg)
	}
	var target *Error
	if err := asError(errors.New("x")); !errors.As(err, &target) || target.Type != ErrTypeInternalProblem {
		t.Errorf("asError: %v", err)
	}
	if asError(nil) != nil {
		t.Error("asError(nil)")
	}
}

func fmtWrap(err error) error { return errors.Join(errors.New("ctx"), err) }

// FuzzParseAPIKey: parsing never panics, accepts only the canonical shape,
// and an accepted key's parts re-assemble to the input.
func FuzzParseAPIKey(f *testing.F) {
	f.Add("0123456789abcdef." + strings.Repeat("A", secretLen))
	f.Add("")
	f.Add("0123456789abcdef.")
	f.Add("Bearer 0123456789abcdef.x")
	f.Fuzz(func(t *testing.T, key string) {
		id, secret, ok := parseAPIKey(key)
		if !ok {
			return
		}
		if id+"."+secret != key || !validLookupID(id) || len(secret) != secretLen {
			t.Fatalf("accepted non-canonical key %q", key)
		}
		for i := 0; i < len(secret); i++ {
			if !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", rune(secret[i])) {
				t.Fatalf("accepted byte %q", secret[i])
			}
		}
	})
}
