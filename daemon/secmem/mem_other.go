//go:build !unix

package secmem

import (
	"errors"
	"fmt"
)

func lockedMap(size int) ([]byte, error) {
	return nil, fmt.Errorf("secmem: locked memory on this platform: %w", errors.ErrUnsupported)
}

func unmap(mem []byte) error { return nil }
