package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/importkey"
)

// maxResponseBytes bounds what is read from a daemon.
const maxResponseBytes = 1 << 20

// APIError is a non-200 answer of a daemon: the {"err_type","err_msg"}
// envelope of DESIGN §2, or a description of whatever else came back.
type APIError struct {
	Daemon  string // base URL
	Method  string
	Path    string
	Status  int
	ErrType string // "" when the body was not an error envelope
	ErrMsg  string
}

func (e *APIError) Error() string {
	if e.ErrType == "" {
		return fmt.Sprintf("%s %s%s: HTTP %d: %s", e.Method, e.Daemon, e.Path, e.Status, e.ErrMsg)
	}
	return fmt.Sprintf("%s %s%s: %d %s: %s", e.Method, e.Daemon, e.Path, e.Status, e.ErrType, e.ErrMsg)
}

// errType returns the err_type of err if it is an *APIError, "transport"
// for connection-level failures, "timeout"/"cancelled" for context ends and
// "other" otherwise (bench tallies failures by it).
func errType(err error) string {
	var ae *APIError
	switch {
	case errors.As(err, &ae):
		if ae.ErrType != "" {
			return ae.ErrType
		}
		return fmt.Sprintf("http_%d", ae.Status)
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, errMismatch):
		return "mismatch"
	case errors.Is(err, errInvalidSignature):
		return "invalid_signature"
	case errors.Is(err, errBadResponse):
		return "bad_response"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return "transport"
	}
	return "other"
}

// tlsOptions configure https daemons: a CA bundle and an optional client
// certificate (for daemons requiring mutual TLS).
type tlsOptions struct {
	CAFile, CertFile, KeyFile string
}

// newHTTPClient returns the client shared by every call of a command; its
// connection pool is sized for bench concurrency.
func newHTTPClient(o tlsOptions, conns int) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = max(100, 4*conns)
	tr.MaxIdleConnsPerHost = max(16, 2*conns)
	tr.IdleConnTimeout = 30 * time.Second
	if o.CAFile != "" || o.CertFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("CA file %s: no PEM certificate", o.CAFile)
			}
			tc.RootCAs = pool
		}
		if (o.CertFile == "") != (o.KeyFile == "") {
			return nil, usagef("-client-cert and -client-key go together")
		}
		if o.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		tr.TLSClientConfig = tc
	}
	return &http.Client{Transport: tr}, nil
}

// Client calls one party's REST API with one API key: one daemon, or
// several replicas of the party (sharing its database and HSM key).
type Client struct {
	Base     string   // normalized base URL (the first replica's)
	replicas []string // further replicas' base URLs, tried when Base refuses
	key      string   // raw API key (Authorization header); secret, never printed
	hc       *http.Client
	next     atomic.Uint32 // round-robin start among Base and replicas
}

// NewClient returns a client for the daemon at base using apiKey.
func NewClient(hc *http.Client, base, apiKey string) *Client {
	return &Client{Base: base, key: apiKey, hc: hc}
}

// NewReplicaClient returns a client of one party served by several
// replicas: calls start round-robin and move to the next replica when one
// cannot be dialled (a request that was never sent is safe to repeat;
// one cut mid-answer is not, and fails).
func NewReplicaClient(hc *http.Client, bases []string, apiKey string) *Client {
	c := NewClient(hc, bases[0], apiKey)
	c.replicas = bases[1:]
	return c
}

// do sends one request to a replica that accepts the connection and
// decodes a 200 answer into out (if not nil). body, if it held a secret, is
// the caller's to wipe after do returns.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body []byte, out any) error {
	n := 1 + len(c.replicas)
	start := int(c.next.Add(1)-1) % n
	var err error
	for i := range n {
		base := c.Base
		if k := (start + i) % n; k > 0 {
			base = c.replicas[k-1]
		}
		err = c.doAt(ctx, base, method, path, query, body, out)
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "dial" || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func (c *Client) doAt(ctx context.Context, base, method, path string, query url.Values, body []byte, out any) error {
	u := base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set("Authorization", c.key)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// url.Error's text holds the URL only (no header, no body).
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("%s %s%s: reading the answer: %w", method, base, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		ae := &APIError{Daemon: base, Method: method, Path: path, Status: resp.StatusCode}
		var env struct {
			ErrType string `json:"err_type"`
			ErrMsg  string `json:"err_msg"`
		}
		if json.Unmarshal(b, &env) == nil && env.ErrType != "" {
			ae.ErrType, ae.ErrMsg = env.ErrType, env.ErrMsg
		} else {
			ae.ErrMsg = printable(b, 200)
		}
		return ae
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s%s: %w: %v", method, base, path, errBadResponse, err)
	}
	return nil
}

// printable returns at most n bytes of b with control characters replaced.
func printable(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, string(b))
}

func (c *Client) badResponse(path, format string, args ...any) error {
	return fmt.Errorf("%s%s: %w: %s", c.Base, path, errBadResponse, fmt.Sprintf(format, args...))
}

// KeySlot is the answer of GET /bip340/create.
type KeySlot struct {
	KeyID    string `json:"key_id"`
	KeygenID string `json:"keygen_id"`
}

// CreateKey makes a new key slot (GET /bip340/create).
func (c *Client) CreateKey(ctx context.Context) (KeySlot, error) {
	var s KeySlot
	if err := c.do(ctx, http.MethodGet, "/bip340/create", nil, nil, &s); err != nil {
		return KeySlot{}, err
	}
	if !daemon.ValidKeyID(s.KeyID) {
		return KeySlot{}, c.badResponse("/bip340/create", "key_id %q is not a UUID", printable([]byte(s.KeyID), 64))
	}
	if err := checkKeygenID(s.KeygenID); err != nil {
		return KeySlot{}, c.badResponse("/bip340/create", "keygen_id: %v", err)
	}
	return s, nil
}

// CreateRoom makes a room of size parties on the daemon's default relay.
func (c *Client) CreateRoom(ctx context.Context, size int) (string, error) {
	body, _ := json.Marshal(map[string]int{"room_size": size})
	var r struct {
		RoomUUID string `json:"room_uuid"`
	}
	if err := c.do(ctx, http.MethodPost, "/create-room", nil, body, &r); err != nil {
		return "", err
	}
	if !daemon.ValidKeyID(r.RoomUUID) {
		return "", c.badResponse("/create-room", "room_uuid %q is not a UUID", printable([]byte(r.RoomUUID), 64))
	}
	return r.RoomUUID, nil
}

// ImportRequest is the body of both import endpoints minus private_key.
type ImportRequest struct {
	RoomUUID        string   `json:"room_uuid"`
	KeyID           string   `json:"key_id"`
	Threshold       int      `json:"threshold"`
	OthersKeygenIDs []string `json:"others_keygen_ids"`
	RelayAddress    string   `json:"relay_address,omitempty"`
	// DealerID names an external dealer (import -deal-locally); recipients only.
	DealerID string `json:"dealer_id,omitempty"`
}

// ImportRecipient runs the recipient side of an import and returns the
// x-only pubkey (32 bytes).
func (c *Client) ImportRecipient(ctx context.Context, r ImportRequest) ([]byte, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return c.importCall(ctx, "/bip340/import/import-key-share-recipient", r.KeyID, body)
}

// ImportKey runs the importer side with the private key k. The request
// body holding k's hex is zeroed once the call returns; the hex encoding is
// constant time (appendHexCT).
func (c *Client) ImportKey(ctx context.Context, r ImportRequest, k *privateKey) ([]byte, error) {
	pub, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	const field = `,"private_key":"`
	body := make([]byte, 0, len(pub)+len(field)+64+2)
	body = append(body, pub[:len(pub)-1]...) // drop the closing brace
	body = append(body, field...)
	body = appendHexCT(body, k.b[:])
	body = append(body, '"', '}')
	defer clear(body)
	return c.importCall(ctx, "/bip340/import/key-importer", r.KeyID, body)
}

// ImportKeyEncrypted runs the importer side with k encrypted client-side:
// it fetches the daemon's HPKE import key (kem "" = the daemon's default),
// encrypts k to it bound to the importer's slot (keygenID, hex), key and
// room, and sends encrypted_private_key, so k never crosses the network in
// the clear. The plaintext copy handed to HPKE is zeroed after sealing.
func (c *Client) ImportKeyEncrypted(ctx context.Context, r ImportRequest, keygenID, kem string, k *privateKey) ([]byte, error) {
	var ik struct {
		KEM       string `json:"kem"`
		PublicKey []byte `json:"public_key"`
		Label     string `json:"key_id_label"`
	}
	var q url.Values
	if kem != "" {
		q = url.Values{"kem": {kem}}
	}
	if err := c.do(ctx, http.MethodGet, "/bip340/import/import-key", q, nil, &ik); err != nil {
		return nil, err
	}
	kg, err := hex.DecodeString(keygenID)
	if err != nil {
		return nil, fmt.Errorf("keygen_id %q: %w", keygenID, err)
	}
	pub := importkey.Public{KEM: ik.KEM, PublicKey: ik.PublicKey, Label: ik.Label}
	ct, err := importkey.Encrypt(pub, importkey.Info(pub.Label, kg, r.KeyID, r.RoomUUID), k.b[:])
	if err != nil {
		return nil, c.badResponse("/bip340/import/import-key", "%v", err)
	}
	type encrypted struct {
		Label      string `json:"key_id_label"`
		Ciphertext []byte `json:"ciphertext"` // base64
	}
	body, err := json.Marshal(struct {
		ImportRequest
		Encrypted encrypted `json:"encrypted_private_key"`
	}{r, encrypted{pub.Label, ct}})
	if err != nil {
		return nil, err
	}
	return c.importCall(ctx, "/bip340/import/key-importer", r.KeyID, body)
}

func (c *Client) importCall(ctx context.Context, path, keyID string, body []byte) ([]byte, error) {
	var r struct {
		KeyID  string `json:"key_id"`
		Pubkey string `json:"pubkey"`
	}
	if err := c.do(ctx, http.MethodPost, path, nil, body, &r); err != nil {
		return nil, err
	}
	if r.KeyID != keyID {
		return nil, c.badResponse(path, "answered key_id %q for %s", printable([]byte(r.KeyID), 64), keyID)
	}
	pk, err := decodeHexLen(r.Pubkey, 32)
	if err != nil {
		return nil, c.badResponse(path, "pubkey: %v", err)
	}
	return pk, nil
}

// SignRequest is the body of POST /bip340/sign.
type SignRequest struct {
	RoomUUID       string `json:"room_uuid"`
	KeyID          string `json:"key_id"`
	Msg            string `json:"msg"`
	DerivationPath string `json:"derivation_path,omitempty"`
	Tweak          string `json:"tweak,omitempty"`
	RelayAddress   string `json:"relay_address,omitempty"`
}

// Sign runs one party's side of a signing ceremony and returns the 64-byte
// signature.
func (c *Client) Sign(ctx context.Context, r SignRequest) ([]byte, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	var out struct {
		Signature string `json:"signature"`
	}
	if err := c.do(ctx, http.MethodPost, "/bip340/sign", nil, body, &out); err != nil {
		return nil, err
	}
	sig, err := decodeHexLen(out.Signature, 64)
	if err != nil {
		return nil, c.badResponse("/bip340/sign", "signature: %v", err)
	}
	return sig, nil
}

// KeyRecord is the public record of GET /bip340/keys/:key_id.
type KeyRecord struct {
	KeyID        string   `json:"key_id"`
	State        string   `json:"state"`
	KeygenID     string   `json:"keygen_id"`
	T            int      `json:"t"`
	N            int      `json:"n"`
	OwnID        *int     `json:"own_id"`
	Pubkey       string   `json:"pubkey"`
	PubShares    []string `json:"pubshares"`
	Participants []string `json:"participants"`
	CreatedAt    string   `json:"created_at"`
}

// GetKey fetches a key's public record.
func (c *Client) GetKey(ctx context.Context, keyID string) (KeyRecord, error) {
	if !daemon.ValidKeyID(keyID) {
		return KeyRecord{}, usagef("key id %q is not a lowercase UUID", keyID)
	}
	var r KeyRecord
	path := "/bip340/keys/" + keyID
	if err := c.do(ctx, http.MethodGet, path, nil, nil, &r); err != nil {
		return KeyRecord{}, err
	}
	if r.KeyID != keyID {
		return KeyRecord{}, c.badResponse(path, "answered key_id %q", printable([]byte(r.KeyID), 64))
	}
	return r, nil
}

// DerivePubkey asks for the x-only key after a derivation path and/or
// tweak (POST /bip340/derive-tweak-pubkey).
func (c *Client) DerivePubkey(ctx context.Context, keyID, path, tweak string) ([]byte, error) {
	req := map[string]string{"key_id": keyID}
	if path != "" {
		req["derivation_path"] = path
	}
	if tweak != "" {
		req["tweak"] = tweak
	}
	body, _ := json.Marshal(req)
	var out struct {
		Pubkey string `json:"pubkey"`
	}
	if err := c.do(ctx, http.MethodPost, "/bip340/derive-tweak-pubkey", nil, body, &out); err != nil {
		return nil, err
	}
	pk, err := decodeHexLen(out.Pubkey, 32)
	if err != nil {
		return nil, c.badResponse("/bip340/derive-tweak-pubkey", "pubkey: %v", err)
	}
	return pk, nil
}

// NewUser is the answer of GET /admin/create-user.
type NewUser struct {
	APIKey string `json:"api_key"`
	UserID string `json:"user_id"`
}

// CreateUser creates a user (admin key needed).
func (c *Client) CreateUser(ctx context.Context, name string) (NewUser, error) {
	var u NewUser
	if err := c.do(ctx, http.MethodGet, "/admin/create-user", url.Values{"name": {name}}, nil, &u); err != nil {
		return NewUser{}, err
	}
	if u.APIKey == "" || u.UserID == "" {
		return NewUser{}, c.badResponse("/admin/create-user", "empty api_key or user_id")
	}
	return u, nil
}

// Probe GETs path (e.g. /readyz) and succeeds on 200.
func (c *Client) Probe(ctx context.Context, path string) error {
	return c.do(ctx, http.MethodGet, path, nil, nil, nil)
}

// --- response validation ---------------------------------------------------

// checkKeygenID checks a 33-byte compressed secp256k1 point in hex.
func checkKeygenID(s string) error {
	b, err := decodeHexLen(s, 33)
	if err != nil {
		return err
	}
	if _, err := btcec.ParsePubKey(b); err != nil || (b[0] != 2 && b[0] != 3) {
		return fmt.Errorf("not a compressed secp256k1 point")
	}
	return nil
}

// decodeHexLen decodes public hex data of exactly n bytes.
func decodeHexLen(s string, n int) ([]byte, error) {
	if len(s) != 2*n {
		return nil, fmt.Errorf("want %d hex characters, got %d", 2*n, len(s))
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not hex")
	}
	return b, nil
}
