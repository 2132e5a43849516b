package rules

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// PrefixServer is the example rule server (cmd/quorum-rule-server): it
// approves a signature when the message starts with one of Prefixes and
// denies it otherwise, answering with a token signed by Key (an
// *ecdsa.PrivateKey on P-256 for ES256 or an ed25519.PrivateKey for
// EdDSA) that echoes the request's nonce and key_id.
type PrefixServer struct {
	Key      crypto.Signer
	Prefixes [][]byte
	TTL      time.Duration // token lifetime; 0: 30 s
}

// Alg is the JWT algorithm of the server's key.
func (s *PrefixServer) Alg() (jwt.SigningMethod, error) {
	switch k := s.Key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve.Params().Name != "P-256" {
			return nil, fmt.Errorf("rules: ES256 needs a P-256 key")
		}
		return jwt.SigningMethodES256, nil
	case ed25519.PrivateKey:
		return jwt.SigningMethodEdDSA, nil
	}
	return nil, fmt.Errorf("rules: key type %T: want P-256 ECDSA or Ed25519", s.Key)
}

// ServeHTTP decides one request.
func (s *PrefixServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	var req Request
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Nonce == "" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	msg, err := hex.DecodeString(req.Msg)
	if err != nil {
		http.Error(w, "bad msg", http.StatusBadRequest)
		return
	}
	approved := false
	for _, p := range s.Prefixes {
		if bytes.HasPrefix(msg, p) {
			approved = true
			break
		}
	}
	tok, err := s.Token(req.Nonce, req.KeyID, approved, time.Now())
	if err != nil {
		http.Error(w, "signing failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(Response{JWT: tok}) //nolint:errcheck // the client sees a short body
}

// Token signs a decision for nonce and keyID issued at iat.
func (s *PrefixServer) Token(nonce, keyID string, approved bool, iat time.Time) (string, error) {
	m, err := s.Alg()
	if err != nil {
		return "", err
	}
	ttl := s.TTL
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	cl := Claims{Nonce: nonce, KeyID: keyID, Approved: approved, RegisteredClaims: jwt.RegisteredClaims{
		IssuedAt: jwt.NewNumericDate(iat), ExpiresAt: jwt.NewNumericDate(iat.Add(ttl)),
	}}
	return jwt.NewWithClaims(m, cl).SignedString(s.Key)
}
