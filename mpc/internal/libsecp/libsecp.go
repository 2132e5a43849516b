// Package libsecp calls libsecp256k1 (Bitcoin Core's library, Debian's
// libsecp256k1-dev) through cgo: BIP340 verification and point·scalar on
// public data (this file), and the constant-time secret·G and ECDH that
// mpc/secp runs on secret scalars (secret.go).
//
// Secret scalars reach C only through secret.go, from locked memory, with a
// randomized context and libsecp256k1's constant-time routines (ecmult_gen,
// ecmult_const); everything in this file sees public data only: public keys
// and points, public scalars (challenges, coefficients), messages and
// signatures. Verification is most of a ceremony's CPU, and libsecp256k1
// verifies about four times faster than btcec.
package libsecp

/*
#cgo LDFLAGS: -lsecp256k1
#cgo noescape quorumd_parse
#cgo nocallback quorumd_parse
#cgo noescape quorumd_mul
#cgo nocallback quorumd_mul
#cgo noescape quorumd_verify
#cgo nocallback quorumd_verify
#cgo noescape quorumd_xonly_parse
#cgo nocallback quorumd_xonly_parse
#cgo noescape quorumd_verify_parsed
#cgo nocallback quorumd_verify_parsed
#include <string.h>
#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

// A verification-only context: read-only after creation, so one context is
// shared by every goroutine (libsecp256k1 documents const contexts as
// thread-safe).
static secp256k1_context *verify_ctx;

static int quorumd_init(void) {
	verify_ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
	return verify_ctx != NULL;
}

// Returns -1 when pub32 is not the x coordinate of a curve point, 1 for a
// valid signature, 0 otherwise.
static int quorumd_verify(const unsigned char *pub32, const unsigned char *msg, size_t msglen, const unsigned char *sig64) {
	secp256k1_xonly_pubkey pk;
	if (!secp256k1_xonly_pubkey_parse(verify_ctx, &pk, pub32)) return -1;
	return secp256k1_schnorrsig_verify(verify_ctx, sig64, msg, msglen, &pk);
}

// out64 = the parsed form of the x-only key pub32 (secp256k1_xonly_pubkey:
// 64 bytes that may be copied and kept within this process). Returns 0
// when pub32 is not the x coordinate of a curve point.
static int quorumd_xonly_parse(const unsigned char *pub32, unsigned char *out64) {
	secp256k1_xonly_pubkey pk;
	if (!secp256k1_xonly_pubkey_parse(verify_ctx, &pk, pub32)) return 0;
	memcpy(out64, pk.data, 64);
	return 1;
}

// Returns 1 for a valid signature under the parsed key pk64, 0 otherwise.
static int quorumd_verify_parsed(const unsigned char *pk64, const unsigned char *msg, size_t msglen, const unsigned char *sig64) {
	secp256k1_xonly_pubkey pk;
	memcpy(pk.data, pk64, 64);
	return secp256k1_schnorrsig_verify(verify_ctx, sig64, msg, msglen, &pk);
}

// out65 = k32·pub65 (uncompressed encodings). Returns 0 when pub65 is not a
// curve point or k32 is zero or not below the group order.
static int quorumd_mul(const unsigned char *pub65, const unsigned char *k32, unsigned char *out65) {
	secp256k1_pubkey pk;
	size_t len = 65;
	if (!secp256k1_ec_pubkey_parse(verify_ctx, &pk, pub65, 65)) return 0;
	if (!secp256k1_ec_pubkey_tweak_mul(verify_ctx, &pk, k32)) return 0;
	return secp256k1_ec_pubkey_serialize(verify_ctx, out65, &len, &pk, SECP256K1_EC_UNCOMPRESSED);
}
// out65 = the uncompressed encoding of the point in (33 or 65 bytes).
// Returns 0 when in is not a curve point.
static int quorumd_parse(const unsigned char *in, size_t inlen, unsigned char *out65) {
	secp256k1_pubkey pk;
	size_t len = 65;
	if (!secp256k1_ec_pubkey_parse(verify_ctx, &pk, in, inlen)) return 0;
	return secp256k1_ec_pubkey_serialize(verify_ctx, out65, &len, &pk, SECP256K1_EC_UNCOMPRESSED);
}
*/
import "C"

import (
	"unsafe"

	"github.com/quorumd/quorumd/mpc/internal/bounded"
)

func init() {
	if C.quorumd_init() == 0 {
		panic("libsecp: secp256k1_context_create failed")
	}
}

// Result is the outcome of VerifySchnorr.
type Result int

const (
	// Invalid: the signature does not verify.
	Invalid Result = iota
	// Valid: the signature verifies.
	Valid
	// BadPublicKey: pub is not the x coordinate of a curve point.
	BadPublicKey
)

// VerifySchnorr is libsecp256k1's secp256k1_schnorrsig_verify of sig over
// msg (any length) under the x-only key pub. Variable time; all inputs are
// public. It parses pub each time, so its time does not depend on which
// keys were seen before: a signer's self-check uses it (the timing tests
// of signing compare a fixed key with random ones); verifiers use
// VerifySchnorrKnownKey.
func VerifySchnorr(pub *[32]byte, msg []byte, sig *[64]byte) Result {
	var m *C.uchar
	if len(msg) > 0 {
		m = (*C.uchar)(unsafe.Pointer(&msg[0]))
	}
	switch C.quorumd_verify((*C.uchar)(unsafe.Pointer(&pub[0])), m, C.size_t(len(msg)), (*C.uchar)(unsafe.Pointer(&sig[0]))) {
	case 1:
		return Valid
	case -1:
		return BadPublicKey
	default:
		return Invalid
	}
}

// VerifySchnorrKnownKey is VerifySchnorr with pub's parse remembered
// (xonlyKeys): same answers, one square root fewer for a key seen before.
func VerifySchnorrKnownKey(pub *[32]byte, msg []byte, sig *[64]byte) Result {
	pk, ok := parseXOnly(pub)
	if !ok {
		return BadPublicKey
	}
	var m *C.uchar
	if len(msg) > 0 {
		m = (*C.uchar)(unsafe.Pointer(&msg[0]))
	}
	if C.quorumd_verify_parsed((*C.uchar)(unsafe.Pointer(&pk[0])), m, C.size_t(len(msg)), (*C.uchar)(unsafe.Pointer(&sig[0]))) == 1 {
		return Valid
	}
	return Invalid
}

// xonlyKeys remembers parsed x-only keys: the parse is a square root
// (≈5 µs, an eighth of a verification), and a ceremony verifies several
// signatures under each of a few keys (its members' identity keys, the
// output key). Public data only; the parsed form is a pure function of the
// 32 bytes it is keyed by, so a hit is exactly what parsing again gives.
var xonlyKeys = bounded.New[[32]byte, [64]byte](maxXOnlyKeys)

const maxXOnlyKeys = 4096

// parseXOnly returns pub's parsed form, or false if pub is not the x
// coordinate of a curve point (never remembered).
func parseXOnly(pub *[32]byte) ([64]byte, bool) {
	if pk, ok := xonlyKeys.Get(*pub); ok {
		return pk, true
	}
	var pk [64]byte
	if C.quorumd_xonly_parse((*C.uchar)(unsafe.Pointer(&pub[0])), (*C.uchar)(unsafe.Pointer(&pk[0]))) != 1 {
		return pk, false
	}
	xonlyKeys.Put(*pub, pk)
	return pk, true
}

// MulPoint returns k·p for a curve point p in uncompressed SEC1 encoding
// (0x04 ‖ x ‖ y) and a scalar 0 < k < n (big-endian), in the same encoding,
// and false when p is not a curve point or k is out of range. k·p is never
// the point at infinity for such inputs (the group has prime order).
// libsecp256k1 multiplies in constant time, but callers must still pass
// public data only.
func MulPoint(p *[65]byte, k *[32]byte) ([65]byte, bool) {
	var out [65]byte
	ok := C.quorumd_mul((*C.uchar)(unsafe.Pointer(&p[0])), (*C.uchar)(unsafe.Pointer(&k[0])), (*C.uchar)(unsafe.Pointer(&out[0])))
	return out, ok == 1
}

// ParseCompressed decodes a 33-byte compressed SEC1 point into its affine
// coordinates (32-byte big-endian x ‖ y in out), and reports false for any
// other length or tag, x ≥ p, or an x off the curve. libsecp256k1's square
// root costs about half of btcec.ParsePubKey's (BenchmarkParseCompressed).
// Public data only.
func ParseCompressed(in []byte, out *[64]byte) bool {
	if len(in) != 33 || (in[0] != 2 && in[0] != 3) {
		return false
	}
	var full [65]byte
	if C.quorumd_parse((*C.uchar)(unsafe.Pointer(&in[0])), 33, (*C.uchar)(unsafe.Pointer(&full[0]))) != 1 {
		return false
	}
	copy(out[:], full[1:])
	return true
}
