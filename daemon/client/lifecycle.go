package client

import "context"

// RefreshRequest is the body of POST /bip340/refresh.
type RefreshRequest struct {
	RoomUUID     string `json:"room_uuid"`
	KeyID        string `json:"key_id"`
	RelayAddress string `json:"relay_address,omitempty"`
	DeleteOld    bool   `json:"delete_old,omitempty"`
}

// ReshareExistingRequest is the body of POST /bip340/reshare/existing-party
// (a holder of the old key).
type ReshareExistingRequest struct {
	RoomUUID     string   `json:"room_uuid"`
	KeyID        string   `json:"key_id"`
	NewThreshold int      `json:"new_threshold"`
	NewKeygenIDs []string `json:"new_keygen_ids"` // the new key's other parties
	RelayAddress string   `json:"relay_address,omitempty"`
	DeleteOld    bool     `json:"delete_old,omitempty"`
}

// ReshareNewRequest is the body of POST /bip340/reshare/new-party (a
// newcomer, with a fresh slot).
type ReshareNewRequest struct {
	RoomUUID        string   `json:"room_uuid"`
	KeyID           string   `json:"key_id"`
	Threshold       int      `json:"threshold"`
	OthersKeygenIDs []string `json:"others_keygen_ids"`
	Pubkey          string   `json:"pubkey,omitempty"` // the key expected (hex); refused otherwise
	RelayAddress    string   `json:"relay_address,omitempty"`
}

// Refresh runs one party's side of a refresh and returns the new key_id
// and the (unchanged) pubkey.
func (c *Client) Refresh(ctx context.Context, r RefreshRequest) (string, []byte, error) {
	return c.lifecycleCall(ctx, "/bip340/refresh", r)
}

// ReshareExisting runs a holder's side of a reshare.
func (c *Client) ReshareExisting(ctx context.Context, r ReshareExistingRequest) (string, []byte, error) {
	return c.lifecycleCall(ctx, "/bip340/reshare/existing-party", r)
}

// ReshareNew runs a newcomer's side of a reshare.
func (c *Client) ReshareNew(ctx context.Context, r ReshareNewRequest) (string, []byte, error) {
	return c.lifecycleCall(ctx, "/bip340/reshare/new-party", r)
}

func (c *Client) lifecycleCall(ctx context.Context, path string, body any) (string, []byte, error) {
	r, err := postJSON(path, body)
	if err != nil {
		return "", nil, err
	}
	var out struct {
		KeyID  string `json:"key_id"`
		Pubkey string `json:"pubkey"`
	}
	if err := c.do(ctx, r, &out); err != nil {
		return "", nil, err
	}
	if err := checkID("key_id", out.KeyID); err != nil {
		return "", nil, c.badResponse(path, "%v", err)
	}
	pk, err := DecodeHex(out.Pubkey, 32)
	if err != nil {
		return "", nil, c.badResponse(path, "pubkey: %v", err)
	}
	return out.KeyID, pk, nil
}
