package hsm

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/miekg/pkcs11"
)

// Sentinel errors. Every error returned by this package wraps exactly one of
// the first-level sentinels below so callers can map it with errors.Is; none
// carries a PIN or plaintext.
var (
	// ErrConfig: the Config is incomplete or contradictory.
	ErrConfig = errors.New("hsm: invalid configuration")
	// ErrPINSource: the PIN file or environment variable is missing, empty,
	// unreadable or too permissive.
	ErrPINSource = fmt.Errorf("%w: PIN source", ErrConfig)
	// ErrModule: the PKCS#11 module cannot be loaded or initialized.
	ErrModule = errors.New("hsm: PKCS#11 module unusable")
	// ErrTokenNotFound: no token with the configured label or slot.
	ErrTokenNotFound = errors.New("hsm: token not found")
	// ErrLogin: the token rejected the user PIN.
	ErrLogin = errors.New("hsm: token login failed")
	// ErrPINLocked: the token locked the user PIN (too many failures).
	ErrPINLocked = fmt.Errorf("%w: PIN locked", ErrLogin)
	// ErrKeyNotFound: no wrapping key with the label (and creation is off,
	// or the label is only configured for reading).
	ErrKeyNotFound = errors.New("hsm: wrapping key not found")
	// ErrKeyAmbiguous: several secret keys carry the wrapping-key label, so
	// which one seals is undefined; the operator must remove the extras.
	ErrKeyAmbiguous = errors.New("hsm: several keys carry the wrapping-key label")
	// ErrKeyPolicy: a key with the label exists but is not an AES-256,
	// sensitive, non-extractable token key allowed to encrypt and decrypt.
	ErrKeyPolicy = errors.New("hsm: wrapping key attributes rejected")
	// ErrAuth: a blob did not authenticate — tampered, wrong AAD, or sealed
	// under a different key than the one its label names.
	ErrAuth = errors.New("hsm: sealed blob failed authentication")
	// ErrMalformed: a blob is structurally invalid (truncated, unknown
	// version). It wraps ErrAuth: a malformed blob is a failed open.
	ErrMalformed = fmt.Errorf("%w: malformed blob", ErrAuth)
	// ErrEmptyAAD: Seal or Open was called without additional data.
	ErrEmptyAAD = errors.New("hsm: additional authenticated data must not be empty")
	// ErrPlaintextSize: the plaintext is empty or larger than MaxPlaintext.
	ErrPlaintextSize = errors.New("hsm: plaintext size out of range")
	// ErrUnavailable: the token, its sessions or the module failed or went
	// away; the operation may succeed after the HSM reconnects.
	ErrUnavailable = errors.New("hsm: token unavailable")
	// ErrClosed: the HSM was closed. It wraps ErrUnavailable.
	ErrClosed = fmt.Errorf("%w: closed", ErrUnavailable)
)

// crypto11 formats some PKCS#11 errors with %v (losing the pkcs11.Error
// value), so the return code is recovered from miekg/pkcs11's fixed message
// format "pkcs11: 0x%X: %s" as a fallback.
var ckrPattern = regexp.MustCompile(`pkcs11: 0x([0-9A-Fa-f]+):`)

// ckrOf extracts the PKCS#11 return value carried by err, if any.
func ckrOf(err error) (pkcs11.Error, bool) {
	if err == nil {
		return 0, false
	}
	var pe pkcs11.Error
	if errors.As(err, &pe) {
		return pe, true
	}
	m := ckrPattern.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, false
	}
	v, perr := strconv.ParseUint(m[1], 16, 64)
	if perr != nil {
		return 0, false
	}
	return pkcs11.Error(v), true
}

// connectionLost reports whether err means the sessions, the login state or
// the object handles are gone, so the crypto11 context must be rebuilt
// before the token can be used again.
func connectionLost(err error) bool {
	if err == nil {
		return false
	}
	if code, ok := ckrOf(err); ok {
		switch code {
		case pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED,
			pkcs11.CKR_USER_NOT_LOGGED_IN, pkcs11.CKR_DEVICE_REMOVED,
			pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_TOKEN_NOT_PRESENT,
			pkcs11.CKR_TOKEN_NOT_RECOGNIZED, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED,
			pkcs11.CKR_OBJECT_HANDLE_INVALID, pkcs11.CKR_KEY_HANDLE_INVALID,
			pkcs11.CKR_SLOT_ID_INVALID:
			return true
		}
		return false
	}
	// crypto11's pool reports its own closure with plain strings.
	msg := err.Error()
	return strings.Contains(msg, "context is closed") || strings.Contains(msg, "resource pool is closed")
}

// authFailure reports whether a C_Decrypt error means the GCM tag did not
// verify. SoftHSM 2.6 returns CKR_GENERAL_ERROR for a bad tag (it cannot be
// told apart from other internal failures); tokens following PKCS#11 v3
// return CKR_ENCRYPTED_DATA_INVALID or CKR_AEAD_DECRYPT_FAILED.
func authFailure(err error) bool {
	code, ok := ckrOf(err)
	if !ok {
		return false
	}
	switch code {
	case pkcs11.CKR_GENERAL_ERROR, pkcs11.CKR_ENCRYPTED_DATA_INVALID,
		pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE, ckrAEADDecryptFailed:
		return true
	}
	return false
}

// ambiguousAuthFailure reports whether err is CKR_GENERAL_ERROR, which
// SoftHSM returns both for a GCM tag mismatch and for failing to use a key it
// can no longer decrypt (after a lost login), or CKR_FUNCTION_FAILED.
func ambiguousAuthFailure(err error) bool {
	code, ok := ckrOf(err)
	return ok && (code == pkcs11.CKR_GENERAL_ERROR || code == pkcs11.CKR_FUNCTION_FAILED)
}

// ckrAEADDecryptFailed is PKCS#11 v3.0's CKR_AEAD_DECRYPT_FAILED, absent from
// miekg/pkcs11 v1.1.2's constant table.
const ckrAEADDecryptFailed pkcs11.Error = 0x35

// loginError maps a failed C_Login to ErrLogin / ErrPINLocked.
func loginError(err error) (error, bool) {
	code, ok := ckrOf(err)
	if !ok {
		return nil, false
	}
	switch code {
	case pkcs11.CKR_PIN_LOCKED:
		return fmt.Errorf("%w (%s)", ErrPINLocked, code.Error()), true
	case pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_INVALID, pkcs11.CKR_PIN_LEN_RANGE,
		pkcs11.CKR_PIN_EXPIRED, pkcs11.CKR_USER_PIN_NOT_INITIALIZED, pkcs11.CKR_USER_TYPE_INVALID:
		return fmt.Errorf("%w (%s)", ErrLogin, code.Error()), true
	}
	return nil, false
}

// panicError turns a recovered panic value into an error. crypto11's AEAD
// Seal panics with the PKCS#11 error it got; that error names only a return
// code, never data, so it is safe to keep for classification and logs.
func panicError(r any) error {
	if e, ok := r.(error); ok {
		return fmt.Errorf("PKCS#11 call panicked: %w", e)
	}
	return fmt.Errorf("PKCS#11 call panicked: %v", r)
}

// guard runs f and converts a panic inside it into an error, so that a token
// failure never takes the daemon down.
func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicError(r)
		}
	}()
	return f()
}
