package apispec

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
)

// Transport is an http.RoundTripper that validates every exchange it
// carries and hands each violation to Report (which must be safe for
// concurrent use). The answer reaches the caller unchanged either way.
type Transport struct {
	Base   http.RoundTripper // nil = http.DefaultTransport
	Report func(error)
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	s, err := Get()
	if err != nil {
		return nil, err
	}
	var reqBody []byte
	if req.Body != nil {
		if reqBody, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(reqBody)), nil }
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if verr := s.Check(context.Background(), &Exchange{Request: req, ReqBody: reqBody,
		Status: resp.StatusCode, Header: resp.Header, Body: body}); verr != nil && t.Report != nil {
		t.Report(verr)
	}
	return resp, nil
}

// NewTransport wraps base (nil = http.DefaultTransport) so that every
// violation fails t at its end.
func NewTransport(t testing.TB, base http.RoundTripper) *Transport {
	return &Transport{Base: base, Report: NewRecorder(t).Report}
}
