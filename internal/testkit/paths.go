package testkit

import (
	"testing"

	"github.com/quorumd/quorumd/internal/testkit/paths"
)

// FindModuleRoot walks up from the working directory to the directory
// holding go.mod (a test's working directory is its package's).
func FindModuleRoot() (string, error) { return paths.FindModuleRoot() }

// ModuleRoot is FindModuleRoot for tests: it fails tb when there is none.
func ModuleRoot(tb testing.TB) string { tb.Helper(); return paths.ModuleRoot(tb) }

// VectorsDir is <module root>/../shared/vectors, where the test vectors are
// read in place.
func VectorsDir(tb testing.TB) string { tb.Helper(); return paths.VectorsDir(tb) }
