package client

import (
	"context"
	"encoding/json"
)

// Keygen runs one party's side of a distributed key generation (POST
// /bip340/keygen, ChillDKG) and returns the x-only pubkey.
func (c *Client) Keygen(ctx context.Context, r ImportRequest) ([]byte, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return c.keyCall(ctx, "/bip340/keygen", r.KeyID, body)
}
