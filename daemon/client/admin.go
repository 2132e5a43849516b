package client

import (
	"context"
	"net/http"
	"net/url"
)

// NewUser is the answer of GET /admin/create-user.
type NewUser struct {
	APIKey string `json:"api_key"`
	UserID string `json:"user_id"`
}

// CreateUser creates a user and its first API key (admin; name may be "").
func (c *Client) CreateUser(ctx context.Context, name string) (NewUser, error) {
	const path = "/admin/create-user"
	r := call{method: http.MethodGet, path: path}
	if name != "" {
		r.query = url.Values{"name": {name}}
	}
	var u NewUser
	if err := c.do(ctx, r, &u); err != nil {
		return NewUser{}, err
	}
	if u.APIKey == "" || u.UserID == "" {
		return NewUser{}, c.badResponse(path, "empty api_key or user_id")
	}
	return u, nil
}

// GenerateAPIKey makes a further API key for userID (admin).
func (c *Client) GenerateAPIKey(ctx context.Context, userID string) (string, error) {
	const path = "/admin/generate-api-key"
	var out struct {
		APIKey string `json:"api_key"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, path: path, query: url.Values{"user_id": {userID}}}, &out); err != nil {
		return "", err
	}
	if out.APIKey == "" {
		return "", c.badResponse(path, "empty api_key")
	}
	return out.APIKey, nil
}

// RevokeAPIKey revokes one key of userID (admin): the full key or its
// public lookup id (the part before the dot).
func (c *Client) RevokeAPIKey(ctx context.Context, userID, apiKey string) error {
	r, err := postJSON("/admin/revoke-api-key", map[string]string{"user_id": userID, "api_key": apiKey})
	if err != nil {
		return err
	}
	r.method = http.MethodDelete
	defer clear(r.body)
	return c.do(ctx, r, nil)
}

// DeleteUser deletes a user that owns no keys on this daemon (admin).
func (c *Client) DeleteUser(ctx context.Context, userID string) error {
	return c.do(ctx, call{method: http.MethodDelete, path: "/admin/delete-user", query: url.Values{"user_id": {userID}}}, nil)
}

// ListAllSystemKeys lists every key on the daemon by owner (admin).
func (c *Client) ListAllSystemKeys(ctx context.Context) (map[string][]KeyRecord, error) {
	var out struct {
		KeysByUser map[string][]KeyRecord `json:"keys_by_user"`
	}
	if err := c.do(ctx, get("/admin/list-all-system-keys"), &out); err != nil {
		return nil, err
	}
	return out.KeysByUser, nil
}
