package client

import (
	"context"
	"net/http"

	"github.com/quorumd/quorumd/internal/uuid"
)

// KeySlot is the answer of GET /bip340/create: a new key slot and this
// party's identity (keygen_id) for the ceremony that fills it.
type KeySlot struct {
	KeyID    string `json:"key_id"`
	KeygenID string `json:"keygen_id"`
}

// CreateKey makes a new key slot (GET /bip340/create). Not idempotent:
// it is never repeated after a transport failure.
func (c *Client) CreateKey(ctx context.Context) (KeySlot, error) {
	const path = "/bip340/create"
	var s KeySlot
	if err := c.do(ctx, call{method: http.MethodGet, path: path}, &s); err != nil {
		return KeySlot{}, err
	}
	if !uuid.Valid(s.KeyID) {
		return KeySlot{}, c.badResponse(path, "key_id %q is not a UUID", printable([]byte(s.KeyID), 64))
	}
	if err := checkKeygenID(s.KeygenID); err != nil {
		return KeySlot{}, c.badResponse(path, "keygen_id: %v", err)
	}
	return s, nil
}

// KeyRecord is the public record of GET /bip340/keys/:key_id (and the
// items of list-all-system-keys, the answer of recover).
type KeyRecord struct {
	KeyID        string   `json:"key_id"`
	KeyType      string   `json:"key_type,omitempty"` // BIP340, or NotInititalizedYet (Vertex's spelling)
	State        string   `json:"state"`              // created, pending, ready
	KeygenID     string   `json:"keygen_id"`
	T            int      `json:"t"`
	N            int      `json:"n"`
	OwnID        *int     `json:"own_id"`
	Pubkey       string   `json:"pubkey"`
	PubShares    []string `json:"pubshares"`
	Participants []string `json:"participants"`
	WaitingFor   string   `json:"waiting_for,omitempty"`
	CreatedAt    string   `json:"created_at"`
}

// GetKey fetches a key's public record.
func (c *Client) GetKey(ctx context.Context, keyID string) (KeyRecord, error) {
	if err := checkID("key id", keyID); err != nil {
		return KeyRecord{}, err
	}
	path := "/bip340/keys/" + keyID
	var r KeyRecord
	if err := c.do(ctx, get(path), &r); err != nil {
		return KeyRecord{}, err
	}
	if r.KeyID != keyID {
		return KeyRecord{}, c.badResponse(path, "answered key_id %q", printable([]byte(r.KeyID), 64))
	}
	return r, nil
}

// ExportID returns the key's keygen_id (this party's identity).
func (c *Client) ExportID(ctx context.Context, keyID string) (string, error) {
	if err := checkID("key id", keyID); err != nil {
		return "", err
	}
	path := "/bip340/export-id/" + keyID
	var out struct {
		KeygenID string `json:"keygen_id"`
	}
	if err := c.do(ctx, get(path), &out); err != nil {
		return "", err
	}
	if err := checkKeygenID(out.KeygenID); err != nil {
		return "", c.badResponse(path, "keygen_id: %v", err)
	}
	return out.KeygenID, nil
}

// DerivePubkey returns the x-only key after a derivation path ("m/0/1"
// or "", see Path) and/or an x-only tweak (64 hex or "").
func (c *Client) DerivePubkey(ctx context.Context, keyID, derivationPath, tweak string) ([]byte, error) {
	const path = "/bip340/derive-tweak-pubkey"
	req := map[string]string{"key_id": keyID}
	if derivationPath != "" {
		req["derivation_path"] = derivationPath
	}
	if tweak != "" {
		req["tweak"] = tweak
	}
	r, err := postJSON(path, req)
	if err != nil {
		return nil, err
	}
	r.idempotent = true // a pure computation on public data
	var out struct {
		Pubkey string `json:"pubkey"`
	}
	if err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	pk, err := DecodeHex(out.Pubkey, 32)
	if err != nil {
		return nil, c.badResponse(path, "pubkey: %v", err)
	}
	return pk, nil
}

// DeleteKey deletes a key share, irreversibly (its HSM-sealed material is
// destroyed).
func (c *Client) DeleteKey(ctx context.Context, keyID string) error {
	if err := checkID("key id", keyID); err != nil {
		return err
	}
	return c.do(ctx, call{method: http.MethodDelete, path: "/bip340/delete-key-share/" + keyID}, nil)
}

// RecoveryData is a party's copy of a key's recovery data (DESIGN §3a):
// public and self-authenticating.
type RecoveryData struct {
	KeyID        string `json:"key_id"`
	RecoveryData string `json:"recovery_data"` // hex
	Certified    bool   `json:"certified"`     // carries the success certificate
}

// GetRecoveryData fetches this party's recovery data of a key.
func (c *Client) GetRecoveryData(ctx context.Context, keyID string) (RecoveryData, error) {
	if err := checkID("key id", keyID); err != nil {
		return RecoveryData{}, err
	}
	path := "/bip340/recovery-data/" + keyID
	var out RecoveryData
	if err := c.do(ctx, get(path), &out); err != nil {
		return RecoveryData{}, err
	}
	if out.KeyID != keyID || out.RecoveryData == "" {
		return RecoveryData{}, c.badResponse(path, "answered key_id %q with %d hex digits", printable([]byte(out.KeyID), 64), len(out.RecoveryData))
	}
	return out, nil
}

// Recover makes a pending (or lost) share of keyID ready from any party's
// certified recovery data (hex) and returns the key's record.
func (c *Client) Recover(ctx context.Context, keyID, recoveryData string) (KeyRecord, error) {
	const path = "/bip340/recover"
	r, err := postJSON(path, map[string]string{"key_id": keyID, "recovery_data": recoveryData})
	if err != nil {
		return KeyRecord{}, err
	}
	var out KeyRecord
	if err := c.do(ctx, r, &out); err != nil {
		return KeyRecord{}, err
	}
	if out.KeyID != keyID {
		return KeyRecord{}, c.badResponse(path, "answered key_id %q", printable([]byte(out.KeyID), 64))
	}
	return out, nil
}
