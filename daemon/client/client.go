package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// maxResponseBytes bounds what is read from a daemon.
const maxResponseBytes = 1 << 20

// Retry defaults: a few attempts, never waiting longer than a daemon's
// overload answer suggests or maxRetryWait.
const (
	defaultRetries = 2
	maxRetryWait   = 10 * time.Second
	firstBackoff   = 100 * time.Millisecond
)

// Client calls one party's REST API with one API key: one daemon, or
// several replicas of the party (sharing its database and HSM key). It is
// safe for concurrent use.
type Client struct {
	bases   []string // normalized base URLs; the first is Base()
	key     string   // raw API key (Authorization header); secret, never printed
	hc      *http.Client
	ua      string
	retries int
	next    atomic.Uint32 // round-robin start among the replicas
}

// Option configures New.
type Option func(*Client) error

// WithHTTPClient makes the client send through hc (share one among many
// clients to share its connection pool; see NewHTTPClient). Of it and
// WithTLSConfig, the later option wins.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error { c.hc = hc; return nil }
}

// WithTLSConfig verifies https daemons with tc (its RootCAs; its
// Certificates for daemons requiring mutual TLS). See LoadTLSConfig.
func WithTLSConfig(tc *tls.Config) Option {
	return func(c *Client) error { c.hc = NewHTTPClient(tc, 1); return nil }
}

// WithReplicas adds further base URLs serving the same party (replicas
// sharing its store and HSM key): calls start round-robin and move to the
// next replica when one cannot be dialled. A request that was never sent is
// safe to repeat; one cut mid-answer is not, and fails.
func WithReplicas(bases ...string) Option {
	return func(c *Client) error {
		for _, b := range bases {
			n, err := ParseBase(b)
			if err != nil {
				return err
			}
			c.bases = append(c.bases, n)
		}
		return nil
	}
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option {
	return func(c *Client) error { c.ua = ua; return nil }
}

// WithRetries bounds the repetitions of a call (default 2; 0 disables
// them). Only what cannot do harm twice is repeated: reads after a
// transport failure or an overload answer, and any call answered 503 with
// Retry-After (the daemon refused it before doing any work).
func WithRetries(n int) Option {
	return func(c *Client) error {
		if n < 0 {
			return usagef("retries %d: want >= 0", n)
		}
		c.retries = n
		return nil
	}
}

// New returns a client of the daemon at base ("http(s)://host:port[/prefix]"
// or a bare "host:port", taken as http) using apiKey ("" for the public
// probes and the import key).
func New(base, apiKey string, opts ...Option) (*Client, error) {
	b, err := ParseBase(base)
	if err != nil {
		return nil, err
	}
	c := &Client{bases: []string{b}, key: apiKey, retries: defaultRetries}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	seen := map[string]bool{}
	for _, b := range c.bases {
		if seen[b] {
			return nil, usagef("daemon %s listed twice", b)
		}
		seen[b] = true
	}
	if c.hc == nil {
		c.hc = NewHTTPClient(nil, 1)
	}
	return c, nil
}

// Base is the (first) base URL of the party.
func (c *Client) Base() string { return c.bases[0] }

// Bases lists every replica's base URL, Base first.
func (c *Client) Bases() []string { return append([]string(nil), c.bases...) }

// ParseBase accepts "http(s)://host:port[/prefix]" or a bare "host:port"
// (taken as http) and returns it without a trailing slash; credentials, a
// query or a fragment are refused.
func ParseBase(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usagef("daemon URL %q: want http(s)://host:port", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", usagef("daemon URL %q: no credentials, query or fragment allowed", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// NewHTTPClient returns an HTTP client for daemons: tc (nil: system roots)
// verifies https, and the idle pool is sized for conns concurrent calls.
func NewHTTPClient(tc *tls.Config, conns int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = max(100, 4*conns)
	tr.MaxIdleConnsPerHost = max(16, 2*conns)
	tr.IdleConnTimeout = 30 * time.Second
	if tc != nil {
		tr.TLSClientConfig = tc
	}
	return &http.Client{Transport: tr}
}

// LoadTLSConfig builds the TLS configuration of https daemons from PEM
// files: caFile ("" = system roots) and an optional client certificate
// (certFile and keyFile go together). It returns nil when all are "".
func LoadTLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate", caFile)
		}
		tc.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, usagef("-client-cert and -client-key go together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// call is one request of the API.
type call struct {
	method, path string
	query        url.Values
	body         []byte // JSON; if it held a secret, the caller wipes it after do
	// idempotent calls (reads) may be repeated after a transport failure.
	idempotent bool
}

func get(path string) call { return call{method: http.MethodGet, path: path, idempotent: true} }

func post(path string, body []byte) call {
	return call{method: http.MethodPost, path: path, body: body}
}

// postJSON marshals v (which must hold no secret: the encoding is not
// wiped) as the body of a POST.
func postJSON(path string, v any) (call, error) {
	b, err := json.Marshal(v)
	return post(path, b), err
}

// do sends r and decodes a 200 answer into out (nil: ignore the body;
// *[]byte: the raw body). It fails over between replicas on dial errors
// and repeats what WithRetries allows, waiting as the daemon asks.
func (c *Client) do(ctx context.Context, r call, out any) error {
	var err error
	for attempt := 0; ; attempt++ {
		err = c.once(ctx, r, out)
		if err == nil || attempt >= c.retries || ctx.Err() != nil {
			return err
		}
		wait, ok := retryable(r, err, attempt)
		if !ok {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// retryable decides whether err may be repeated and after how long: an
// overload answer (503 with Retry-After: refused before any work) for
// every call, a transport failure or a 503 only for reads.
func retryable(r call, err error, attempt int) (time.Duration, bool) {
	var ae *APIError
	if errors.As(err, &ae) {
		switch {
		case ae.Status != http.StatusServiceUnavailable:
			return 0, false
		case ae.overload:
			return min(ae.RetryAfter, maxRetryWait), true
		case r.idempotent:
			return min(firstBackoff<<attempt, maxRetryWait), true
		}
		return 0, false
	}
	if r.idempotent && ErrType(err) == "transport" {
		return min(firstBackoff<<attempt, maxRetryWait), true
	}
	return 0, false
}

// once sends r to a replica that accepts the connection.
func (c *Client) once(ctx context.Context, r call, out any) error {
	n := len(c.bases)
	start := int(c.next.Add(1)-1) % n
	var err error
	for i := range n {
		err = c.at(ctx, c.bases[(start+i)%n], r, out)
		if !dialFailed(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func (c *Client) at(ctx context.Context, base string, r call, out any) error {
	u := base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var rd io.Reader
	if r.body != nil {
		rd = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set("Authorization", c.key)
	}
	if c.ua != "" {
		req.Header.Set("User-Agent", c.ua)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// url.Error's text holds the URL only (no header, no body).
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("%s %s%s: reading the answer: %w", r.method, base, r.path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return decodeError(base, r, resp, b)
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*o = b
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s%s: %w: %v", r.method, base, r.path, ErrBadResponse, err)
	}
	return nil
}

// decodeError turns a non-200 answer into an *APIError.
func decodeError(base string, r call, resp *http.Response, b []byte) *APIError {
	ae := &APIError{Daemon: base, Method: r.method, Path: r.path, Status: resp.StatusCode}
	var env struct {
		ErrType string `json:"err_type"`
		ErrMsg  string `json:"err_msg"`
	}
	if json.Unmarshal(b, &env) == nil && env.ErrType != "" {
		ae.ErrType, ae.ErrMsg = printable([]byte(env.ErrType), 64), env.ErrMsg
	} else {
		ae.ErrMsg = printable(b, 200)
	}
	if s := resp.Header.Get("Retry-After"); s != "" && resp.StatusCode == http.StatusServiceUnavailable {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			ae.RetryAfter, ae.overload = time.Duration(n)*time.Second, true
		}
	}
	return ae
}

func (c *Client) badResponse(path, format string, args ...any) error {
	return fmt.Errorf("%s%s: %w: %s", c.Base(), path, ErrBadResponse, fmt.Sprintf(format, args...))
}
