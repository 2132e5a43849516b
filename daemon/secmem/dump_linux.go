package secmem

import "golang.org/x/sys/unix"

// excludeFromDumps marks mem MADV_DONTDUMP: a core dump (should one happen
// despite PR_SET_DUMPABLE=0 and RLIMIT_CORE=0) leaves it out.
func excludeFromDumps(mem []byte) error {
	return unix.Madvise(mem, unix.MADV_DONTDUMP)
}
