package libsecp

/*
#cgo LDFLAGS: -lsecp256k1
#cgo noescape quorumd_base_mult
#cgo nocallback quorumd_base_mult
#cgo noescape quorumd_mul_secret
#cgo nocallback quorumd_mul_secret
#include <string.h>
#include <secp256k1.h>
#include <secp256k1_ecdh.h>

// The context for secret scalars: randomized once at start (blinding of
// ecmult_gen against side channels), then only read, so it is shared by every
// goroutine like the verification context.
static secp256k1_context *secret_ctx;

static int quorumd_secret_init(const unsigned char *seed32) {
	secret_ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
	if (secret_ctx == NULL) return 0;
	return secp256k1_context_randomize(secret_ctx, seed32);
}

// Overwrites the stack below the caller's frame, where libsecp256k1 (0.2.0
// clears its scalars but not every intermediate point) left its locals.
// explicit_bzero is glibc's clear that the compiler may not elide; 8 KiB
// covers ecmult_const's tables with room to spare.
static __attribute__((noinline)) void quorumd_scrub_stack(void) {
	unsigned char buf[8192];
	explicit_bzero(buf, sizeof buf);
	__asm__ __volatile__("" : : "r"(buf) : "memory");
}

// out65 = k32·G, uncompressed. k32 must be in [1, n). ecmult_gen is constant
// time in k32; serialization reads only the public result.
static int quorumd_base_mult(const unsigned char *k32, unsigned char *out65) {
	secp256k1_pubkey pk;
	size_t len = 65;
	int ok = secp256k1_ec_pubkey_create(secret_ctx, &pk, k32);
	if (ok) ok = secp256k1_ec_pubkey_serialize(secret_ctx, out65, &len, &pk, SECP256K1_EC_UNCOMPRESSED);
	quorumd_scrub_stack();
	return ok;
}

static int quorumd_ecdh_xy(unsigned char *out, const unsigned char *x32, const unsigned char *y32, void *data) {
	(void)data;
	memcpy(out, x32, 32);
	memcpy(out + 32, y32, 32);
	return 1;
}

// out64 = x ‖ y of k32·pub65 with ecmult_const (secp256k1_ecdh with a hash
// function that keeps the point). Returns -1 when pub65 is not a curve point
// (public), 0 when k32 is zero (the product computed in constant time with
// k = 1 and discarded), 1 otherwise.
static int quorumd_mul_secret(const unsigned char *pub65, const unsigned char *k32, unsigned char *out64) {
	secp256k1_pubkey pk;
	int ok;
	if (!secp256k1_ec_pubkey_parse(secret_ctx, &pk, pub65, 65)) return -1;
	ok = secp256k1_ecdh(secret_ctx, out64, &pk, k32, quorumd_ecdh_xy, NULL);
	quorumd_scrub_stack();
	return ok;
}
*/
import "C"

import (
	"crypto/rand"
	"sync"
	"unsafe"

	"github.com/btcsuite/btcd/btcec/v2"
)

// Secret scalars cross into C only from locked memory: each call takes a
// slot of a small mlocked, dump-excluded mapping (lockedSlots), writes the
// scalar there, lets libsecp256k1 read it in place and clears it before
// giving the slot back. Go's own copies never hold the scalar's bytes, and
// the C side leaves none on its stack (quorumd_scrub_stack).

// slotSize holds a 32-byte secret and up to 65 bytes of output.
const slotSize = 128

type slot struct{ mem []byte }

func (s *slot) in() *C.uchar  { return (*C.uchar)(unsafe.Pointer(&s.mem[0])) }
func (s *slot) out() *C.uchar { return (*C.uchar)(unsafe.Pointer(&s.mem[32])) }

var secret = sync.OnceValue(initSecret)

type secretBackend struct {
	free chan *slot
	err  error
}

// initSecret creates and randomizes the secret context and maps the locked
// slots; on failure (no mlock allowed) the backend stays off and callers use
// their pure-Go path.
func initSecret() *secretBackend {
	mem, err := lockedPage()
	if err != nil {
		return &secretBackend{err: err}
	}
	var seed [32]byte
	rand.Read(seed[:])
	ok := C.quorumd_secret_init((*C.uchar)(unsafe.Pointer(&seed[0])))
	clear(seed[:])
	if ok != 1 {
		return &secretBackend{err: errContext}
	}
	b := &secretBackend{free: make(chan *slot, len(mem)/slotSize)}
	for off := 0; off+slotSize <= len(mem); off += slotSize {
		b.free <- &slot{mem: mem[off : off+slotSize : off+slotSize]}
	}
	return b
}

// SecretAvailable reports whether secret scalars can go to libsecp256k1 (a
// randomized context and locked memory were set up), and why not.
func SecretAvailable() error { return secret().err }

func (b *secretBackend) take() *slot { return <-b.free }

func (b *secretBackend) put(s *slot) {
	clear(s.mem)
	b.free <- s
}

// BaseMult writes k·G (uncompressed SEC1) to out and returns 1 if k is zero,
// in which case out holds G and the caller must map the result to infinity.
// Constant time in k: a zero k is replaced by one arithmetically, and
// libsecp256k1's ecmult_gen runs under the randomized context. Requires
// SecretAvailable() == nil.
func BaseMult(k *btcec.ModNScalar, out *[65]byte) (isZero uint32) {
	b := secret()
	s := b.take()
	k.PutBytesUnchecked(s.mem[:32])
	isZero = k.IsZeroBit()
	s.mem[31] |= byte(isZero)
	ok := C.quorumd_base_mult(s.in(), s.out())
	copy(out[:], s.mem[32:32+65])
	b.put(s)
	if ok != 1 {
		// Unreachable for a reduced, nonzero k; never continue with garbage.
		panic("libsecp: secp256k1_ec_pubkey_create failed on a valid scalar")
	}
	return isZero
}

// ECDH returns the x coordinate of k·pub for an uncompressed public point
// pub, with libsecp256k1's constant-time ecmult_const. ok is false when k is
// zero (the product is then computed with k = 1 and discarded) and
// errBadPoint when pub is not a curve point. Requires SecretAvailable() == nil.
func ECDH(k *btcec.ModNScalar, pub *[65]byte) (x [32]byte, ok bool, err error) {
	b := secret()
	s := b.take()
	k.PutBytesUnchecked(s.mem[:32])
	// x ‖ y into the slot; only x leaves it, y is cleared with the slot.
	r := C.quorumd_mul_secret((*C.uchar)(unsafe.Pointer(&pub[0])), s.in(), s.out())
	copy(x[:], s.mem[32:64])
	b.put(s)
	switch r {
	case -1:
		return [32]byte{}, false, ErrBadPoint
	case 1:
		return x, true, nil
	default:
		clear(x[:])
		return x, false, nil
	}
}

// Mul writes x ‖ y of k·pub to out for an uncompressed public point pub, with
// ecmult_const, and returns 1 if k is zero (out then holds pub's multiple by
// one, to be mapped to infinity by the caller without a branch). err is
// ErrBadPoint when pub is not a curve point. Requires SecretAvailable() == nil.
func Mul(k *btcec.ModNScalar, pub *[65]byte, out *[64]byte) (isZero uint32, err error) {
	b := secret()
	s := b.take()
	k.PutBytesUnchecked(s.mem[:32])
	isZero = k.IsZeroBit()
	r := C.quorumd_mul_secret((*C.uchar)(unsafe.Pointer(&pub[0])), s.in(), s.out())
	copy(out[:], s.mem[32:96])
	b.put(s)
	if r == -1 {
		clear(out[:])
		return 0, ErrBadPoint
	}
	return isZero, nil
}
