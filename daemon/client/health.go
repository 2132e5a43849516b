package client

import (
	"context"
	"fmt"
	"time"
)

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

// WaitReady polls path (e.g. /readyz; /healthz for a relay) on every
// client until each answers 200, or ctx ends. log (nil: silent) gets one
// line per client that became ready.
func WaitReady(ctx context.Context, path string, log func(format string, args ...any), clients ...*Client) error {
	errs := parallel(ctx, len(clients), func(ctx context.Context, i int) error {
		c := clients[i]
		for {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := c.Probe(pctx, path)
			cancel()
			if err == nil {
				if log != nil {
					log("%s%s: ready", c.Base(), path)
				}
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s%s not ready: %w (last answer: %v)", c.Base(), path, ctx.Err(), err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	_, err := firstError(errs)
	return err
}
