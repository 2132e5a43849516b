// Package apispec validates requests and responses of a quorumd against
// docs/openapi.yaml with kin-openapi, so that every end-to-end test proves
// the daemon and the document agree: as an http.RoundTripper (Transport)
// for Go clients, and as a validating reverse proxy (Proxy, Factory) for
// binaries, scripts and raw requests.
//
// Every answer must be one the document describes for its operation:
// status, headers (X-Request-Id, Retry-After, Content-Type) and body.
// Requests the document does not describe (the probes of strict-routing
// and error tests: wrong types, unknown members, percent-encoded or dot
// segments, two Authorization headers, unknown paths) are not exempt by
// test name; the one rule for them, in Spec.Check, is that the daemon must
// refuse them with a documented error envelope, never answer 200.
package apispec

import (
	"context"
	"fmt"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/quorumd/quorumd/docs"
)

// Load parses the embedded document and validates it as OpenAPI 3.x.
func Load() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(docs.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("apispec: parse docs/openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("apispec: docs/openapi.yaml is not valid OpenAPI 3: %w", err)
	}
	return doc, nil
}

// Spec is the loaded document with its router: built once per process,
// then shared (read-only) by every validator.
type Spec struct {
	Doc    *openapi3.T
	router routers.Router
}

var (
	specOnce sync.Once
	spec     *Spec
	specErr  error
)

// Get returns the process-wide Spec.
func Get() (*Spec, error) {
	specOnce.Do(func() {
		doc, err := Load()
		if err != nil {
			specErr = err
			return
		}
		// The router matches a request's host against servers; the tests
		// reach daemons on loopback ports, so route on the path alone
		// (a copy, Doc itself keeps its servers).
		routed := *doc
		routed.Servers = nil
		r, err := gorillamux.NewRouter(&routed)
		if err != nil {
			specErr = fmt.Errorf("apispec: router: %w", err)
			return
		}
		spec = &Spec{Doc: doc, router: r}
	})
	return spec, specErr
}
