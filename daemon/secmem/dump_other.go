//go:build unix && !linux

package secmem

// excludeFromDumps does nothing: MADV_DONTDUMP is Linux-only (FreeBSD's
// MADV_NOCORE is not wired up); RLIMIT_CORE=0 still applies.
func excludeFromDumps(mem []byte) error { return nil }
