// Package rules is the client of external rule servers (DESIGN §6): before
// each signature the daemon posts the operation to every external rule of
// the caller's policy and signs only if each answers with a JWT, signed
// with the rule's key, that approves this very request (its fresh nonce)
// and is itself fresh. Anything else — no answer within the timeout, a
// non-200 status, a deny, a token for another nonce (a replay), a bad
// signature or algorithm, a stale token — is policy_validation_failed.
package rules

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/quorumd/quorumd/policy"
)

// Request is the JSON body posted to a rule server. Binary values are hex;
// DerivationPath is Vertex's array form (empty: none).
type Request struct {
	KeyID          string   `json:"key_id"`
	Pubkey         string   `json:"pubkey"`
	Msg            string   `json:"msg"`
	DerivationPath []uint32 `json:"derivation_path"`
	ExtraData      string   `json:"extra_data"`
	RequestID      string   `json:"request_id"`
	Nonce          string   `json:"nonce"`
}

// Claims are what an approving token carries: the request's nonce (and
// key_id), approved true, and iat and exp.
type Claims struct {
	Nonce    string `json:"nonce"`
	KeyID    string `json:"key_id"`
	Approved bool   `json:"approved"`
	jwt.RegisteredClaims
}

// Response is the rule server's answer body: {"jwt": "<compact JWS>"}.
type Response struct {
	JWT string `json:"jwt"`
}

// Error is a refusal: err_type policy_validation_failed, naming the rule
// and the reason (never the token or the message).
type Error struct {
	Rule   string
	Reason string
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("external rule %q did not approve the signature: %s", e.Rule, e.Reason)
}

// ErrType implements the daemon's Typed interface.
func (e *Error) ErrType() string { return policy.ErrTypePolicyValidationFailed }

// Unwrap exposes the cause for logs.
func (e *Error) Unwrap() error { return e.Err }

// Checker posts requests to rule servers. The zero value is usable:
// DefaultTimeout, DefaultMaxAge, a plain HTTP client and the wall clock.
type Checker struct {
	Client  *http.Client
	Timeout time.Duration    // per rule server call
	MaxAge  time.Duration    // oldest acceptable iat, and longest exp-iat
	Now     func() time.Time // tests may substitute
}

// Defaults of Checker.
const (
	DefaultTimeout = 5 * time.Second
	DefaultMaxAge  = 2 * time.Minute
	leeway         = 5 * time.Second
	maxAnswer      = 16 << 10
)

// Sign is one sign operation as rule servers see it.
type Sign struct {
	KeyID          string
	Pubkey, Msg    []byte
	DerivationPath []uint32
	ExtraData      []byte
	RequestID      string
}

// CheckAll consults every rule in order and returns the first refusal.
func (c *Checker) CheckAll(ctx context.Context, rules []policy.NamedExternalRule, s Sign) error {
	for _, r := range rules {
		if err := c.Check(ctx, r, s); err != nil {
			return err
		}
	}
	return nil
}

// Check posts s with a fresh nonce to r's URL and verifies the answer.
func (c *Checker) Check(ctx context.Context, r policy.NamedExternalRule, s Sign) error {
	fail := func(reason string, err error) error { return &Error{Rule: r.Name, Reason: reason, Err: err} }
	key, err := r.PublicKey()
	if err != nil {
		return fail("the rule's public key is unusable", err)
	}
	var nb [32]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return fmt.Errorf("rules: random: %w", err)
	}
	nonce := hex.EncodeToString(nb[:])
	path := s.DerivationPath
	if path == nil {
		path = []uint32{}
	}
	body, err := json.Marshal(Request{
		KeyID: s.KeyID, Pubkey: hex.EncodeToString(s.Pubkey), Msg: hex.EncodeToString(s.Msg),
		DerivationPath: path, ExtraData: hex.EncodeToString(s.ExtraData), RequestID: s.RequestID, Nonce: nonce,
	})
	if err != nil {
		return fmt.Errorf("rules: encode: %w", err)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(body))
	if err != nil {
		return fail("bad rule server URL", err)
	}
	req.Header.Set("Content-Type", "application/json")
	hc := c.Client
	if hc == nil {
		hc = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fail(fmt.Sprintf("no answer within %s", timeout), err)
		}
		return fail("rule server unreachable", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return fail("reading the answer failed", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fail(fmt.Sprintf("rule server answered status %d", resp.StatusCode), nil)
	}
	if len(raw) > maxAnswer {
		return fail("answer too large", nil)
	}
	var ans Response
	if err := json.Unmarshal(raw, &ans); err != nil || ans.JWT == "" {
		return fail(`answer is not {"jwt": "..."}`, err)
	}
	return c.verify(r, key, ans.JWT, nonce, s.KeyID, fail)
}

// verify checks the token's algorithm, signature, freshness and binding.
func (c *Checker) verify(r policy.NamedExternalRule, key any, token, nonce, keyID string, fail func(string, error) error) error {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	maxAge := c.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	var cl Claims
	p := jwt.NewParser(jwt.WithValidMethods([]string{r.JWTAlg}), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithLeeway(leeway), jwt.WithTimeFunc(now))
	if _, err := p.ParseWithClaims(strings.TrimSpace(token), &cl, func(*jwt.Token) (any, error) { return key, nil }); err != nil {
		return fail("the token is invalid, expired or not signed with the rule's key", err)
	}
	if cl.IssuedAt == nil || now().Sub(cl.IssuedAt.Time) > maxAge+leeway || cl.ExpiresAt.Sub(cl.IssuedAt.Time) > maxAge {
		return fail("the token is not fresh", nil)
	}
	if cl.Nonce != nonce || cl.KeyID != keyID {
		return fail("the token is not bound to this request (nonce or key_id mismatch: a replay?)", nil)
	}
	if !cl.Approved {
		return fail("denied", nil)
	}
	return nil
}
