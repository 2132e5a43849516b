package client

import (
	"context"
	"encoding/hex"
	"net/http"
)

// ExportBackup fetches a key's backup: its export_type ("encrypted": an
// age file to the operator's key; "plaintext" where the policy allows it)
// and the bytes, which the caller wipes.
func (c *Client) ExportBackup(ctx context.Context, keyID string) (string, []byte, error) {
	if err := checkID("key id", keyID); err != nil {
		return "", nil, err
	}
	path := "/bip340/backup/export-key-share/" + keyID
	var out struct {
		ExportType string `json:"export_type"`
		KeyShare   string `json:"key_share"`
	}
	// Not repeated: a plaintext backup is a secret better sent once.
	if err := c.do(ctx, call{method: http.MethodGet, path: path}, &out); err != nil {
		return "", nil, err
	}
	b, err := hex.DecodeString(out.KeyShare)
	if err != nil {
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
