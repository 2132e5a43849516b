package client

import "context"

// Probe GETs path (e.g. /readyz, /healthz; a relay's /healthz too) and
// succeeds on 200. It is not repeated: pollers loop themselves.
func (c *Client) Probe(ctx context.Context, path string) error {
	r := get(path)
	r.idempotent = false
	return c.do(ctx, r, nil)
}

// Healthz reports liveness (GET /healthz).
func (c *Client) Healthz(ctx context.Context) error { return c.Probe(ctx, "/healthz") }

// Readiness is the answer of GET /readyz: each dependency's check.
type Readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// Readyz reports readiness; a daemon not ready answers 503 (*APIError).
func (c *Client) Readyz(ctx context.Context) (Readiness, error) {
	r := get("/readyz")
	r.idempotent = false
	var out Readiness
	err := c.do(ctx, r, &out)
	return out, err
}

// Metrics fetches the Prometheus text exposition of GET /metrics.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	var raw []byte
	if err := c.do(ctx, get("/metrics"), &raw); err != nil {
		return "", err
	}
	return string(raw), nil
}
