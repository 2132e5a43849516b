//go:build unix

package secmem

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// lockedMap maps size bytes (rounded up to pages) of anonymous private
// memory, locks it and keeps it out of core dumps; on any failure nothing
// stays mapped.
func lockedMap(size int) ([]byte, error) {
	page := os.Getpagesize()
	size = (size + page - 1) / page * page
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("secmem: mapping %d bytes: %w", size, err)
	}
	if err := unix.Mlock(mem); err != nil {
		_ = unix.Munmap(mem)
		lim := Unlimited
		var rl unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_MEMLOCK, &rl) == nil && rl.Cur != unix.RLIM_INFINITY {
			lim = uint64(rl.Cur)
		}
		return nil, &LockError{Need: uint64(size), Limit: lim, Err: err}
	}
	if err := excludeFromDumps(mem); err != nil {
		_ = unix.Munlock(mem)
		_ = unix.Munmap(mem)
		return nil, fmt.Errorf("secmem: excluding the arena from core dumps: %w", err)
	}
	return mem, nil
}

func unmap(mem []byte) error {
	if err := unix.Munlock(mem); err != nil {
		return fmt.Errorf("secmem: munlock: %w", err)
	}
	if err := unix.Munmap(mem); err != nil {
		return fmt.Errorf("secmem: munmap: %w", err)
	}
	return nil
}
