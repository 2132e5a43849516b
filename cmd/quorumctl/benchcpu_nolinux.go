//go:build !linux

package main

import (
	"errors"
	"time"
)

// procCPUSupported: without /proc/PID/stat the bench accounts no CPU.
const procCPUSupported = false

func pidCPU(int) (time.Duration, uint64, error) {
	return 0, 0, errors.New("process CPU time is read from /proc (Linux only)")
}
