package rules

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/quorumd/quorumd/policy"
)

func pemPub(t testing.TB, k crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

type server struct {
	name string
	key  crypto.Signer
	alg  string
	pub  string
}

func servers(t testing.TB) []server {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return []server{
		{"ES256", ec, "ES256", pemPub(t, &ec.PublicKey)},
		{"EdDSA pem", ed, "EdDSA", pemPub(t, edPub)},
		{"EdDSA hex", ed, "EdDSA", hex.EncodeToString(edPub)},
	}
}

func sign(msg string) Sign {
	m, _ := hex.DecodeString(msg)
	return Sign{KeyID: "11111111-1111-4111-8111-111111111111", Pubkey: make([]byte, 32), Msg: m,
		DerivationPath: []uint32{44, 0}, ExtraData: []byte("x"), RequestID: "req-1"}
}

// TestCheck: approvals pass for both algorithms; a deny, a replayed token,
// a token for another key_id, a token signed by another key or with
// another algorithm, a stale or long-lived token, an error status, a
// malformed answer and a silent server all fail as
// policy_validation_failed.
func TestCheck(t *testing.T) {
	for _, sv := range servers(t) {
		t.Run(sv.name, func(t *testing.T) {
			ex := &PrefixServer{Key: sv.key, Prefixes: [][]byte{{0xbe, 0xef}}}
			var mu sync.Mutex
			var mode string
			var last Request
			var lastTok string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				m, prevTok := mode, lastTok
				mu.Unlock()
				var req Request
				if m != "example" && m != "replay" {
					if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
						t.Errorf("decode: %v", err)
					}
				}
				answer := func(tok string) { json.NewEncoder(w).Encode(Response{JWT: tok}) }
				switch m {
				case "example":
					rec := httptest.NewRecorder()
					ex.ServeHTTP(rec, r)
					var resp Response
					json.Unmarshal(rec.Body.Bytes(), &resp)
					mu.Lock()
					lastTok = resp.JWT
					mu.Unlock()
					w.Write(rec.Body.Bytes())
				case "replay":
					answer(prevTok)
				case "other key_id":
					tok, _ := ex.Token(req.Nonce, "22222222-2222-4222-8222-222222222222", true, time.Now())
					answer(tok)
				case "stale":
					tok, _ := ex.Token(req.Nonce, req.KeyID, true, time.Now().Add(-10*time.Minute))
					answer(tok)
				case "long-lived":
					long := &PrefixServer{Key: sv.key, TTL: time.Hour}
					tok, _ := long.Token(req.Nonce, req.KeyID, true, time.Now())
					answer(tok)
				case "other key":
					_, other, _ := ed25519.GenerateKey(rand.Reader)
					var signer crypto.Signer = other
					if sv.alg == "ES256" {
						signer, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
					}
					tok, _ := (&PrefixServer{Key: signer}).Token(req.Nonce, req.KeyID, true, time.Now())
					answer(tok)
				case "hs256":
					cl := Claims{Nonce: req.Nonce, KeyID: req.KeyID, Approved: true, RegisteredClaims: jwt.RegisteredClaims{
						IssuedAt: jwt.NewNumericDate(time.Now()), ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute))}}
					tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, cl).SignedString([]byte(sv.pub))
					answer(tok)
				case "none":
					cl := Claims{Nonce: req.Nonce, KeyID: req.KeyID, Approved: true, RegisteredClaims: jwt.RegisteredClaims{
						IssuedAt: jwt.NewNumericDate(time.Now()), ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute))}}
					tok, _ := jwt.NewWithClaims(jwt.SigningMethodNone, cl).SignedString(jwt.UnsafeAllowNoneSignatureType)
					answer(tok)
				case "500":
					http.Error(w, "boom", 500)
				case "garbage":
					w.Write([]byte("not json"))
				case "silent":
					<-r.Context().Done()
				}
				mu.Lock()
				last = req
				mu.Unlock()
			}))
			defer srv.Close()
			rule := policy.NamedExternalRule{RuleID: "r1", Name: "prefixes", ExternalRule: policy.ExternalRule{JWTAlg: sv.alg, URL: srv.URL, Pubkey: sv.pub}}
			if err := rule.Validate(); err != nil {
				t.Fatal(err)
			}
			c := &Checker{Timeout: 500 * time.Millisecond}
			set := func(m string) { mu.Lock(); mode = m; mu.Unlock() }

			set("example")
			if err := c.Check(context.Background(), rule, sign("beef01")); err != nil {
				t.Fatalf("approved message: %v", err)
			}
			if err := c.Check(context.Background(), rule, sign("00beef")); !refused(err, "denied") {
				t.Fatalf("denied message: %v", err)
			}
			if err := c.Check(context.Background(), rule, sign("beef02")); err != nil {
				t.Fatal(err)
			}
			for _, m := range []string{"replay", "other key_id", "stale", "long-lived", "other key", "hs256", "none", "500", "garbage", "silent"} {
				set(m)
				if err := c.Check(context.Background(), rule, sign("beef03")); !refused(err, "") {
					t.Errorf("%s: %v, want a refusal", m, err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if last.KeyID != sign("").KeyID || last.RequestID != "req-1" || len(last.Nonce) != 64 || last.ExtraData != "78" || len(last.DerivationPath) != 2 || last.Msg != "beef03" {
				t.Fatalf("posted %+v", last)
			}
		})
	}
}

func refused(err error, reason string) bool {
	var e *Error
	if !errors.As(err, &e) || e.ErrType() != policy.ErrTypePolicyValidationFailed {
		return false
	}
	return reason == "" || e.Reason == reason
}

// BenchmarkCheck measures one rule server round trip over loopback
// (request, JWT signing at the server, verification here).
func BenchmarkCheck(b *testing.B) {
	for _, sv := range servers(b)[:2] {
		b.Run(sv.alg, func(b *testing.B) {
			srv := httptest.NewServer(&PrefixServer{Key: sv.key, Prefixes: [][]byte{{0xbe}}})
			defer srv.Close()
			rule := policy.NamedExternalRule{Name: "bench", ExternalRule: policy.ExternalRule{JWTAlg: sv.alg, URL: srv.URL, Pubkey: sv.pub}}
			c := &Checker{Client: srv.Client()}
			s := sign("beef")
			for b.Loop() {
				if err := c.Check(context.Background(), rule, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
