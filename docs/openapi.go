// Package docs makes the REST API's OpenAPI document available to Go code:
// docs/openapi.yaml stays the one source, embedded here because go:embed
// cannot reach a parent directory.
package docs

import _ "embed"

// OpenAPI is docs/openapi.yaml as shipped.
//
//go:embed openapi.yaml
var OpenAPI []byte
