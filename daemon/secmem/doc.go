// Package secmem keeps the secret scalars of calls in flight in locked
// memory: one anonymous mapping outside the Go heap, locked with mlock(2)
// so it is never written to swap, and marked MADV_DONTDUMP (Linux) so it
// never reaches a core dump. The mapping is cut into fixed slots of
// SlotSize bytes, enough for a btcec.ModNScalar and its 32-byte encoding.
//
// The arena's size is fixed when it is made, so after a successful New the
// process never asks for more locked memory and RLIMIT_MEMLOCK cannot be
// exceeded later: a caller that finds every slot taken waits (Acquire,
// AcquireN) until one is released or its context ends. This is the
// concurrency bound of secret-holding work.
//
// Limits, stated plainly: only memory the process controls can be locked.
// Plaintext returned by the HSM (crypto11 answers in fresh Go-heap slices),
// copies made inside PKCS#11 modules, temporaries of the Go runtime and of
// the arithmetic (stack frames, registers, intermediates of dcrd and of
// package secp), and values a library copies by value into its own
// structures live outside the arena. Callers copy such plaintext into a
// slot at once and clear the original; that shortens its life, it does not
// lock it. Swap-off for the whole service (systemd MemorySwapMax=0) covers
// the rest.
package secmem
