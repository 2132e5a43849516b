// Package paths locates the module root and the shared test vectors. It
// imports nothing of quorumd, so the lowest packages' tests (mpc/bip340,
// which the relay itself imports) can use it without an import cycle.
package paths

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FindModuleRoot walks up from the working directory to the directory
// holding go.mod (a test's working directory is its package's).
func FindModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// ModuleRoot is FindModuleRoot for tests: it fails tb when there is none.
func ModuleRoot(tb testing.TB) string {
	tb.Helper()
	root, err := FindModuleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

// VectorsDir is <module root>/../shared/vectors, where the BIP340, BIP445
// and ChillDKG test vectors are read in place.
func VectorsDir(tb testing.TB) string {
	tb.Helper()
	return filepath.Join(ModuleRoot(tb), "..", "shared", "vectors")
}
