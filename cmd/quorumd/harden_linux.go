package main

import "syscall"

// hardenProcess keeps secrets out of core dumps: the process becomes
// non-dumpable (which also blocks ptrace attach by other users' processes)
// and its core size limit is zero.
func hardenProcess() error {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_DUMPABLE, 0, 0); errno != 0 {
		return errno
	}
	return syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{Cur: 0, Max: 0})
}
