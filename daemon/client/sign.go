package client

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// SignRequest is the body of POST /bip340/sign (and an item of
// batch-sign). Msg is hex.
type SignRequest struct {
	RoomUUID string `json:"room_uuid"`
	KeyID    string `json:"key_id"`
	Msg      string `json:"msg"`
	// DerivationPath is a BIP32 unhardened path, "m/0/1" (see Path).
	DerivationPath string `json:"derivation_path,omitempty"`
	Tweak          string `json:"tweak,omitempty"` // x-only tweak, 64 hex
	RelayAddress   string `json:"relay_address,omitempty"`
	ExtraData      string `json:"extra_data,omitempty"` // hex, shown to rule servers; not signed
	HashAlgo       string `json:"hash_algo,omitempty"`  // Vertex's field: only "none"
}

// Path formats unhardened BIP32 indexes as a derivation_path ("m/0/1").
func Path(indexes ...uint32) string {
	var b strings.Builder
	b.WriteString("m")
	for _, i := range indexes {
		fmt.Fprintf(&b, "/%d", i)
	}
	return b.String()
}

// Sign runs one party's side of a signing ceremony and returns the 64-byte
// signature.
func (c *Client) Sign(ctx context.Context, r SignRequest) ([]byte, error) {
	const path = "/bip340/sign"
	req, err := postJSON(path, r)
	if err != nil {
		return nil, err
	}
	var out struct {
		Signature string `json:"signature"`
	}
	if err := c.do(ctx, req, &out); err != nil {
		return nil, err
	}
	sig, err := DecodeHex(out.Signature, 64)
	if err != nil {
		return nil, c.badResponse(path, "signature: %v", err)
	}
	return sig, nil
}

// BatchItemResult is one entry of /bip340/batch-sign's answer: a signature
// or an error envelope.
type BatchItemResult struct {
	Signature string `json:"signature,omitempty"`
	ErrType   string `json:"err_type,omitempty"`
	ErrMsg    string `json:"err_msg,omitempty"`
}

// BatchSign runs one party's side of a batch signing ceremony and returns
// one result per request, in order.
func (c *Client) BatchSign(ctx context.Context, reqs []SignRequest) ([]BatchItemResult, error) {
	const path = "/bip340/batch-sign"
	body, err := json.Marshal(map[string]any{"sign_requests": reqs})
	if err != nil {
		return nil, err
	}
	var out []BatchItemResult
	if err := c.do(ctx, post(path, body), &out); err != nil {
		return nil, err
	}
	if len(out) != len(reqs) {
		return nil, c.badResponse(path, "%d results for %d sign requests", len(out), len(reqs))
	}
	return out, nil
}
