package libsecp

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

var (
	// ErrBadPoint: a public point that is not on the curve.
	ErrBadPoint = errors.New("libsecp: not a curve point")
	errContext  = errors.New("libsecp: creating or randomizing the secret context failed")
)

// lockedPage maps one page of anonymous memory, locks it (never swapped) and
// keeps it out of core dumps. It lives for the process, like the contexts.
func lockedPage() ([]byte, error) {
	mem, err := unix.Mmap(-1, 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("libsecp: mapping the secret slots: %w", err)
	}
	if err := unix.Mlock(mem); err != nil {
		_ = unix.Munmap(mem)
		return nil, fmt.Errorf("libsecp: locking the secret slots: %w", err)
	}
	if err := unix.Madvise(mem, unix.MADV_DONTDUMP); err != nil {
		_ = unix.Munlock(mem)
		_ = unix.Munmap(mem)
		return nil, fmt.Errorf("libsecp: excluding the secret slots from core dumps: %w", err)
	}
	return mem, nil
}
