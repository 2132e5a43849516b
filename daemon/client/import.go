package client

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/quorumd/quorumd/daemon/importkey"
)

// ImportRequest is the body of the import endpoints (without the private
// key) and of keygen: one party's view of the ceremony.
type ImportRequest struct {
	RoomUUID        string   `json:"room_uuid"`
	KeyID           string   `json:"key_id"`
	Threshold       int      `json:"threshold"`
	OthersKeygenIDs []string `json:"others_keygen_ids"`
	NumParties      int      `json:"num_parties,omitempty"` // optional N, checked by the daemon
	RelayAddress    string   `json:"relay_address,omitempty"`
	// DealerID names an external dealer (see LocalDealer); recipients only.
	DealerID string `json:"dealer_id,omitempty"`
}

// ImportRecipient runs the recipient side of an import (the seed endpoint,
// POST /bip340/import/import-key-share-recipient) and returns the x-only
// pubkey (32 bytes).
func (c *Client) ImportRecipient(ctx context.Context, r ImportRequest) ([]byte, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return c.keyCall(ctx, "/bip340/import/import-key-share-recipient", r.KeyID, body)
}

// ImportKey runs the importer side with the 32-byte private key. The
// request body holding its hex (encoded in constant time) is zeroed once
// the call returns; privateKey itself stays the caller's to wipe.
func (c *Client) ImportKey(ctx context.Context, r ImportRequest, privateKey []byte) ([]byte, error) {
	if len(privateKey) != 32 {
		return nil, usagef("the private key must be 32 bytes")
	}
	pub, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	const field = `,"private_key":"`
	body := make([]byte, 0, len(pub)+len(field)+64+2)
	body = append(body, pub[:len(pub)-1]...) // drop the closing brace
	body = append(body, field...)
	body = appendHexCT(body, privateKey)
	body = append(body, '"', '}')
	defer clear(body)
	return c.keyCall(ctx, "/bip340/import/key-importer", r.KeyID, body)
}

// ImportKeyInfo is the daemon's HPKE import key (GET
// /bip340/import/import-key), public.
type ImportKeyInfo struct {
	KEM       string `json:"kem"`
	KDF       string `json:"kdf"`
	AEAD      string `json:"aead"`
	PublicKey []byte `json:"public_key"` // base64 in JSON
	Label     string `json:"key_id_label"`
}

// GetImportKey fetches the daemon's import key; kem "" is its default
// (MLKEM768-X25519), else DHKEM-P256.
func (c *Client) GetImportKey(ctx context.Context, kem string) (ImportKeyInfo, error) {
	r := get("/bip340/import/import-key")
	if kem != "" {
		r.query = url.Values{"kem": {kem}}
	}
	var ik ImportKeyInfo
	if err := c.do(ctx, r, &ik); err != nil {
		return ImportKeyInfo{}, err
	}
	return ik, nil
}

// ImportKeyEncrypted runs the importer side with the private key encrypted
// client-side: it fetches the daemon's HPKE import key (kem "" = the
// daemon's default), encrypts the key to it bound to the importer's slot
// (keygenID, hex), key and room, and sends encrypted_private_key, so the
// key never crosses the network in the clear. HPKE's copy of the
// plaintext is its own; privateKey stays the caller's to wipe.
func (c *Client) ImportKeyEncrypted(ctx context.Context, r ImportRequest, keygenID, kem string, privateKey []byte) ([]byte, error) {
	if len(privateKey) != 32 {
		return nil, usagef("the private key must be 32 bytes")
	}
	ik, err := c.GetImportKey(ctx, kem)
	if err != nil {
		return nil, err
	}
	kg, err := hex.DecodeString(keygenID)
	if err != nil {
		return nil, fmt.Errorf("keygen_id %q: %w", keygenID, err)
	}
	pub := importkey.Public{KEM: ik.KEM, PublicKey: ik.PublicKey, Label: ik.Label}
	ct, err := importkey.Encrypt(pub, importkey.Info(pub.Label, kg, r.KeyID, r.RoomUUID), privateKey)
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
	return c.keyCall(ctx, "/bip340/import/key-importer", r.KeyID, body)
}

// keyCall posts a ceremony body answered by {key_id, pubkey} for keyID.
func (c *Client) keyCall(ctx context.Context, path, keyID string, body []byte) ([]byte, error) {
	var out struct {
		KeyID  string `json:"key_id"`
		Pubkey string `json:"pubkey"`
	}
	if err := c.do(ctx, call{method: http.MethodPost, path: path, body: body}, &out); err != nil {
		return nil, err
	}
	if out.KeyID != keyID {
		return nil, c.badResponse(path, "answered key_id %q for %s", printable([]byte(out.KeyID), 64), keyID)
	}
	pk, err := DecodeHex(out.Pubkey, 32)
	if err != nil {
		return nil, c.badResponse(path, "pubkey: %v", err)
	}
	return pk, nil
}
