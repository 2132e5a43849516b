package apispec

import "testing"

// TestSpecIsValidOpenAPI3: docs/openapi.yaml parses and validates as
// OpenAPI 3.x, and the router builds from it.
func TestSpecIsValidOpenAPI3(t *testing.T) {
	s, err := Get()
	if err != nil {
		t.Fatal(err)
	}
	if v := s.Doc.OpenAPI; len(v) < 2 || v[:2] != "3." {
		t.Fatalf("openapi version %q", v)
	}
}
