//go:build !linux

package main

import "syscall"

// hardenProcess sets the core size limit to zero (prctl is Linux-only).
func hardenProcess() error {
	return syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{Cur: 0, Max: 0})
}
