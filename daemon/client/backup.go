package client

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/quorumd/quorumd/mpc/secp"
)

// ExportBackup fetches a key's backup: its export_type ("encrypted": an
// age file to the operator's key; "plaintext" where the policy allows it)
// and the bytes, which the caller wipes.
func (c *Client) ExportBackup(ctx context.Context, keyID string) (string, []byte, error) {
	if err := checkID("key id", keyID); err != nil {
		return "", nil, err
	}
	path := "/bip340/backup/export-key-share/" + keyID
	// Not repeated: a plaintext backup is a secret better sent once. The
	// body is kept raw so that every copy of the share held here can be
	// zeroed (a decoded Go string could not be), and its hex is decoded in
	// constant time.
	var raw []byte
	if err := c.do(ctx, call{method: http.MethodGet, path: path}, &raw); err != nil {
		return "", nil, err
	}
	defer clear(raw)
	var out struct {
		ExportType string          `json:"export_type"`
		KeyShare   json.RawMessage `json:"key_share"`
	}
	err := json.Unmarshal(raw, &out)
	defer clear(out.KeyShare)
	ks := out.KeyShare
	if err != nil || len(ks) < 2 || ks[0] != '"' || ks[len(ks)-1] != '"' || len(ks)%2 != 0 {
		return "", nil, c.badResponse(path, "key_share is not a hex string")
	}
	b := make([]byte, (len(ks)-2)/2)
	if secp.DecodeHex(b, ks[1:len(ks)-1]) != 0 {
		clear(b)
		return "", nil, c.badResponse(path, "key_share is not hex")
	}
	return out.ExportType, b, nil
}

// ImportBackup restores a plaintext backup as a new key and returns its
// key_id and x-only pubkey. The request body (hex encoded in constant
// time) is zeroed once sent; plain stays the caller's to wipe.
func (c *Client) ImportBackup(ctx context.Context, plain []byte) (string, []byte, error) {
	const path = "/bip340/backup/import-key-share"
	body := make([]byte, 0, 64+2*len(plain))
	body = append(body, `{"export_type":"plaintext","key_share":"`...)
	body = appendHexCT(body, plain)
	body = append(body, '"', '}')
	defer clear(body)
	var out struct {
		KeyID  string `json:"key_id"`
		Pubkey string `json:"pubkey"`
	}
	if err := c.do(ctx, post(path, body), &out); err != nil {
		return "", nil, err
	}
	pk, err := DecodeHex(out.Pubkey, 32)
	if err != nil {
		return "", nil, c.badResponse(path, "pubkey: %v", err)
	}
	return out.KeyID, pk, nil
}
