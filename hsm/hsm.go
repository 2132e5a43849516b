// Package hsm seals secrets under an AES-256 key that never leaves a PKCS#11
// token, using AES-GCM computed by the token through crypto11.
//
// The daemon depends only on the Sealer interface. An *HSM owns one crypto11
// context (module, token, login, session pool) plus the wrapping keys found
// at Open; when the token reports that sessions, login or handles are gone it
// drops the context and rebuilds it on the next call, so a token restart
// costs failed requests, not a daemon restart. crypto11 panics on some token
// errors; every call into it is guarded and the panic becomes an error.
package hsm

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
)

// Sealer is what the daemon needs from the HSM: authenticated encryption of
// secrets bound to caller-chosen additional data.
type Sealer interface {
	// Seal encrypts plaintext under the active wrapping key; aad must be
	// non-empty and must be presented again to Open.
	Seal(plaintext, aad []byte) ([]byte, error)
	// Open authenticates and decrypts a blob produced by Seal or SealFor with
	// the same aad; the caller owns (and should zero) the returned plaintext.
	Open(blob, aad []byte) ([]byte, error)
	// CreateDataKey makes keyID's per-key data key on the token (a no-op if
	// it exists); SealFor seals under it and DestroyDataKey destroys it, so
	// that every blob sealed for keyID becomes unopenable (datakey.go).
	CreateDataKey(keyID string) error
	// CreateNewDataKey is CreateDataKey for a keyID just minted at random,
	// which cannot exist yet: it skips the search of the token.
	CreateNewDataKey(keyID string) error
	SealFor(keyID string, plaintext, aad []byte) ([]byte, error)
	DestroyDataKey(keyID string) error
}

var _ Sealer = (*HSM)(nil)

// reconnectBackoff spaces reconnection attempts so that a dead token does not
// turn every request into a C_Initialize/C_Login round.
const reconnectBackoff = time.Second

// HSM is a PKCS#11-backed Sealer. All methods are safe for concurrent use.
type HSM struct {
	cfg Config
	pin string

	// mu is held shared by every token operation and exclusively to swap or
	// close the crypto11 context, so a context is never closed under an
	// operation that is using it.
	mu          sync.RWMutex
	st          *tokenState // nil while disconnected
	closed      bool
	dkCreate    sync.Mutex // serialises CreateDataKey, DestroyDataKey and DataKeys
	lastAttempt time.Time
	lastErr     error
}

// tokenState is one crypto11 context and the AEADs of the wrapping keys it
// found; it is replaced wholesale on reconnection.
type tokenState struct {
	ctx  *crypto11.Context
	keys map[string]cipher.AEAD

	// dataKeys caches per-key data keys by label (datakeycache.go).
	dkMu     sync.Mutex
	dataKeys map[string]cachedDataKey
}

// Open loads the module, logs in to the token and finds (or, if allowed,
// creates) the wrapping keys. It fails with ErrConfig, ErrPINSource,
// ErrModule, ErrTokenNotFound, ErrLogin, ErrKeyNotFound, ErrKeyAmbiguous,
// ErrKeyPolicy or ErrUnavailable.
//
// SoftHSM lists its tokens when the module is initialized, i.e. at the first
// Open in the process (or after every HSM using the module was closed).
func Open(cfg Config) (*HSM, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	pin, err := cfg.resolvePIN()
	if err != nil {
		return nil, err
	}
	cfg.PIN = "" // keep the PIN only in h.pin
	h := &HSM{cfg: cfg, pin: pin}
	st, err := h.connect()
	if err != nil {
		return nil, err
	}
	h.st = st
	return h, nil
}

// ActiveKeyLabel is the label of the key that Seal uses.
func (h *HSM) ActiveKeyLabel() string { return h.cfg.KeyLabel }

// Seal encrypts plaintext with AES-256-GCM inside the token under the active
// key, with a fresh random 96-bit nonce, and returns the versioned blob.
// plaintext must be 1..MaxPlaintext bytes, aad non-empty. Seal does not keep
// or modify plaintext; crypto11 and the module copy it into C memory that
// this package cannot wipe. Timing depends only on lengths.
func (h *HSM) Seal(plaintext, aad []byte) ([]byte, error) {
	return h.seal(h.cfg.KeyLabel, plaintext, aad)
}

// seal is Seal under the key labelled label (a wrapping key or a data key).
func (h *HSM) seal(label string, plaintext, aad []byte) ([]byte, error) {
	if len(aad) == 0 {
		return nil, ErrEmptyAAD
	}
	if len(plaintext) == 0 || len(plaintext) > MaxPlaintext {
		return nil, fmt.Errorf("%w: %d bytes", ErrPlaintextSize, len(plaintext))
	}
	blob := make([]byte, 0, Overhead(label)+len(plaintext))
	blob = appendHeader(blob, label)
	hdrLen := len(blob)
	blob = blob[:hdrLen+NonceSize]
	nonce := blob[hdrLen:]
	// Go's CSPRNG (getrandom); at the NIST bound of 2^32 random nonces per
	// key the key must be rotated, far beyond this daemon's volume.
	_, _ = rand.Read(nonce)
	ad := gcmAAD(blob[:hdrLen], aad)
	out, err := h.sealOnce(label, blob, nonce, plaintext, ad, true)
	if err == errStaleDataKey {
		out, err = h.sealOnce(label, blob, nonce, plaintext, ad, false)
	}
	if err != nil {
		return nil, err
	}
	if len(out) != hdrLen+NonceSize+len(plaintext)+TagSize {
		return nil, fmt.Errorf("%w: seal: token returned %d bytes of ciphertext for %d of plaintext",
			ErrUnavailable, len(out)-hdrLen-NonceSize, len(plaintext))
	}
	return out, nil
}

// sealOnce appends the sealed plaintext to blob (header and nonce). With
// mayRetry it answers errStaleDataKey when a cached data key turns out
// stale (datakeycache.go), for the caller to try once more.
func (h *HSM) sealOnce(label string, blob, nonce, plaintext, ad []byte, mayRetry bool) ([]byte, error) {
	st, release, err := h.acquire()
	if err != nil {
		return nil, err
	}
	ref, err := h.key(st, label)
	if err == nil {
		err = checkCachedLabel(st, ref, label)
	}
	if err != nil {
		release()
		if err == errStaleDataKey && !mayRetry {
			err = fmt.Errorf("%w: data key %q: handle stale right after a lookup", ErrUnavailable, label)
		}
		return nil, err
	}
	var out []byte
	err = guard(func() error {
		out = ref.aead.Seal(blob, nonce, plaintext, ad)
		return nil
	})
	release()
	if err != nil {
		if mayRetry && ref.obj != nil && staleHandle(err) {
			st.forget(label, ref.obj)
			return nil, errStaleDataKey
		}
		return nil, h.fail(st, "seal", err)
	}
	return out, nil
}

// Open authenticates and decrypts a blob sealed under the active key or one
// of ReadKeyLabels. A blob naming an unconfigured key fails with
// ErrKeyNotFound; tampering, a wrong aad or a label pointing at the wrong key
// fail with ErrAuth. The tag is checked inside the token; this code branches
// only on public lengths and the label. crypto11 returns the plaintext in a
// fresh slice after copying it out of C memory it does not wipe.
func (h *HSM) Open(blob, aad []byte) ([]byte, error) {
	if len(aad) == 0 {
		return nil, ErrEmptyAAD
	}
	p, err := parseBlob(blob)
	if err != nil {
		return nil, err
	}
	ad := gcmAAD(p.header, aad)
	pt, err := h.openOnce(p, ad, true)
	if err == errStaleDataKey {
		pt, err = h.openOnce(p, ad, false)
	}
	return pt, err
}

// openOnce is Open of a parsed blob. With mayRetry it answers
// errStaleDataKey when a data key's handle is stale, or a cached one fails
// to authenticate (it may name another object now: datakeycache.go), for
// the caller to try once more after a fresh lookup.
func (h *HSM) openOnce(p parsedBlob, ad []byte, mayRetry bool) ([]byte, error) {
	st, release, err := h.acquire()
	if err != nil {
		return nil, err
	}
	ref, err := h.key(st, p.label)
	if err != nil {
		release()
		return nil, err
	}
	var pt []byte
	err = guard(func() error {
		var e error
		pt, e = ref.aead.Open(nil, p.nonce, p.sealed, ad)
		return e
	})
	var probeErr error
	if err != nil && ambiguousAuthFailure(err) {
		// SoftHSM answers CKR_GENERAL_ERROR both for a bad tag and when it
		// cannot use the key (e.g. the login was lost); a known-good round
		// trip with the same key tells the two apart.
		probeErr = probe(ref.aead)
	}
	release()
	if err != nil {
		clear(pt)
		if mayRetry && ref.obj != nil && (staleHandle(err) || ref.cached && probeErr == nil && authFailure(err)) {
			st.forget(p.label, ref.obj)
			return nil, errStaleDataKey
		}
		switch {
		case probeErr != nil:
			h.drop(st)
			return nil, fmt.Errorf("%w: open: %w; probe with the same key: %w", ErrUnavailable, err, probeErr)
		case authFailure(err):
			return nil, fmt.Errorf("%w (key %q)", ErrAuth, p.label)
		}
		return nil, h.fail(st, "open", err)
	}
	if len(pt) != len(p.sealed)-TagSize {
		clear(pt)
		return nil, fmt.Errorf("%w: open: token returned a plaintext of unexpected length", ErrUnavailable)
	}
	return pt, nil
}

// Reseal opens blob and seals its plaintext again under the active key, for
// rotating the wrapping key. The intermediate plaintext is zeroed.
func (h *HSM) Reseal(blob, aad []byte) ([]byte, error) {
	pt, err := h.Open(blob, aad)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	return h.Seal(pt, aad)
}

// ResealFor opens blob (under whatever key sealed it) and seals its
// plaintext under keyID's data key: the migration of blobs sealed under a
// wrapping key before per-key data keys existed. The plaintext is zeroed.
func (h *HSM) ResealFor(keyID string, blob, aad []byte) ([]byte, error) {
	pt, err := h.Open(blob, aad)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	return h.SealFor(keyID, pt, aad)
}

var (
	pingPlaintext = []byte("quorumd hsm ping")
	pingAAD       = []byte("quorumd/hsm/ping/v1")
)

// Ping seals and opens a probe through the token (reconnecting first if the
// context was lost), for readiness checks. It returns when ctx ends even if
// the token does not answer; the probe then finishes in the background.
func (h *HSM) Ping(ctx context.Context) error {
	done := make(chan error, 1)
	go func() {
		blob, err := h.Seal(pingPlaintext, pingAAD)
		if err == nil {
			var pt []byte
			pt, err = h.Open(blob, pingAAD)
			if err == nil && !bytes.Equal(pt, pingPlaintext) {
				err = fmt.Errorf("%w: ping: probe round trip mismatch", ErrUnavailable)
			}
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: ping: %w", ErrUnavailable, ctx.Err())
	}
}

// Close waits for operations in flight, then closes the sessions and
// releases the module. Later calls fail with ErrClosed. Close is idempotent.
func (h *HSM) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	h.pin = ""
	var err error
	if h.st != nil {
		err = closeContext(h.st.ctx)
		h.st = nil
	}
	return err
}

// acquire returns the live token state with the read lock held (released by
// the returned func), reconnecting first if the context was dropped.
func (h *HSM) acquire() (*tokenState, func(), error) {
	for attempt := 0; ; attempt++ {
		h.mu.RLock()
		if h.closed {
			h.mu.RUnlock()
			return nil, nil, ErrClosed
		}
		if st := h.st; st != nil {
			return st, h.mu.RUnlock, nil
		}
		h.mu.RUnlock()
		if attempt == 2 {
			return nil, nil, fmt.Errorf("%w: token context lost again right after reconnecting", ErrUnavailable)
		}
		if err := h.reconnect(); err != nil {
			return nil, nil, err
		}
	}
}

// fail wraps a token error and, when it means the sessions or login may be
// gone, drops the context so the next call reconnects. Must be called
// without the lock held.
func (h *HSM) fail(st *tokenState, op string, err error) error {
	if connectionLost(err) || ambiguousAuthFailure(err) {
		h.drop(st)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

// drop closes st's context if it is still the current one, so the next
// operation reconnects. Must be called without the lock held.
func (h *HSM) drop(st *tokenState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.st == st {
		h.st = nil
		_ = closeContext(st.ctx)
	}
}

// probe seals and opens a fixed message with aead, to check that the token
// can still use the key.
func probe(aead cipher.AEAD) error {
	nonce := make([]byte, NonceSize)
	_, _ = rand.Read(nonce)
	return guard(func() error {
		ct := aead.Seal(nil, nonce, pingPlaintext, pingAAD)
		pt, err := aead.Open(nil, nonce, ct, pingAAD)
		if err != nil {
			return err
		}
		if !bytes.Equal(pt, pingPlaintext) {
			return errors.New("probe round trip returned a different plaintext")
		}
		return nil
	})
}

// reconnect rebuilds the context unless another goroutine already did or a
// recent attempt failed (then that failure is returned).
func (h *HSM) reconnect() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	if h.st != nil {
		return nil
	}
	if h.lastErr != nil && time.Since(h.lastAttempt) < reconnectBackoff {
		return h.lastErr
	}
	h.lastAttempt = time.Now()
	st, err := h.connect()
	if err != nil {
		h.lastErr = fmt.Errorf("%w: reconnecting: %w", ErrUnavailable, err)
		return h.lastErr
	}
	h.st, h.lastErr = st, nil
	return nil
}

// connect configures crypto11 and loads the wrapping keys.
func (h *HSM) connect() (*tokenState, error) {
	if _, err := os.Stat(h.cfg.ModulePath); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrModule, err)
	}
	c11 := &crypto11.Config{
		Path:            h.cfg.ModulePath,
		TokenLabel:      h.cfg.TokenLabel,
		SlotNumber:      h.cfg.SlotNumber,
		Pin:             h.pin,
		MaxSessions:     h.cfg.MaxSessions,
		PoolWaitTimeout: h.cfg.PoolWaitTimeout,
		// crypto11 defaults to 16-byte IVs; GCM's native (and only
		// counter-free) nonce length is 12.
		GCMIVLength: NonceSize,
	}
	var ctx *crypto11.Context
	err := guard(func() error {
		var e error
		ctx, e = crypto11.Configure(c11)
		return e
	})
	if err != nil {
		return nil, h.configureError(err)
	}
	keys := make(map[string]cipher.AEAD, 1+len(h.cfg.ReadKeyLabels))
	labels := append([]string{h.cfg.KeyLabel}, h.cfg.ReadKeyLabels...)
	for i, label := range labels {
		aead, err := loadKey(ctx, label, i == 0 && h.cfg.CreateKey)
		if err != nil {
			_ = closeContext(ctx)
			return nil, err
		}
		keys[label] = aead
	}
	return &tokenState{ctx: ctx, keys: keys, dataKeys: map[string]cachedDataKey{}}, nil
}

// configureError maps crypto11.Configure failures; crypto11 does not export
// its token-not-found and module errors, so their fixed messages are matched.
func (h *HSM) configureError(err error) error {
	if le, ok := loginError(err); ok {
		return le
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "could not find PKCS#11 token"):
		if h.cfg.SlotNumber != nil {
			return fmt.Errorf("%w: no token in slot %d", ErrTokenNotFound, *h.cfg.SlotNumber)
		}
		return fmt.Errorf("%w: no token labelled %q", ErrTokenNotFound, h.cfg.TokenLabel)
	case strings.Contains(msg, "failed to create module context"):
		return fmt.Errorf("%w: %s: %w", ErrModule, h.cfg.ModulePath, err)
	}
	return fmt.Errorf("%w: configuring token: %w", ErrUnavailable, err)
}

// loadKey finds the AES key labelled label (creating it if create is set and
// it is absent), checks its attributes and returns its token-side GCM.
func loadKey(ctx *crypto11.Context, label string, create bool) (cipher.AEAD, error) {
	key, err := findKey(ctx, label)
	if err == ErrKeyNotFound && create {
		if _, err = generateKey(ctx, []byte(label), label); err != nil {
			return nil, err
		}
		// Find again rather than trusting the handle: two daemons creating
		// the key at once must end in ErrKeyAmbiguous, not split brains.
		key, err = findKey(ctx, label)
	}
	if err != nil {
		if err == ErrKeyNotFound {
			return nil, fmt.Errorf("%w: no AES key labelled %q on the token", ErrKeyNotFound, label)
		}
		return nil, err
	}
	return keyGCM(ctx, key, label)
}

// keyGCM checks a key's policy and returns its token-side GCM.
func keyGCM(ctx *crypto11.Context, key *crypto11.SecretKey, label string) (cipher.AEAD, error) {
	if err := checkKeyPolicy(ctx, key, label); err != nil {
		return nil, err
	}
	var aead cipher.AEAD
	err := guard(func() error {
		var e error
		aead, e = key.NewGCM()
		return e
	})
	if err != nil {
		return nil, fmt.Errorf("%w: key %q: %w", ErrKeyPolicy, label, err)
	}
	if aead.NonceSize() != NonceSize || aead.Overhead() != TagSize {
		return nil, fmt.Errorf("%w: key %q: GCM nonce %d / tag %d bytes", ErrKeyPolicy, label, aead.NonceSize(), aead.Overhead())
	}
	return aead, nil
}

// findKey returns the single secret key labelled label, or ErrKeyNotFound
// (unwrapped, for the caller to test by identity) or ErrKeyAmbiguous.
func findKey(ctx *crypto11.Context, label string) (*crypto11.SecretKey, error) {
	var keys []*crypto11.SecretKey
	err := guard(func() error {
		var e error
		keys, e = ctx.FindKeys(nil, []byte(label))
		return e
	})
	if err != nil {
		if strings.Contains(err.Error(), "unsupported key type") {
			return nil, fmt.Errorf("%w: key %q: %w", ErrKeyPolicy, label, err)
		}
		return nil, fmt.Errorf("%w: finding key %q: %w", ErrUnavailable, label, err)
	}
	switch len(keys) {
	case 0:
		return nil, ErrKeyNotFound
	case 1:
		return keys[0], nil
	}
	return nil, fmt.Errorf("%w: %d secret keys labelled %q", ErrKeyAmbiguous, len(keys), label)
}

// generateKey creates a wrapping or data key as a private, sensitive,
// non-extractable AES-256 token object usable only to encrypt and decrypt.
func generateKey(ctx *crypto11.Context, id []byte, label string) (*crypto11.SecretKey, error) {
	attrs, err := crypto11.NewAttributeSetWithIDAndLabel(id, []byte(label))
	if err != nil {
		return nil, fmt.Errorf("%w: key template: %w", ErrConfig, err)
	}
	for _, a := range []struct {
		t crypto11.AttributeType
		v bool
	}{
		{pkcs11.CKA_TOKEN, true},
		{pkcs11.CKA_PRIVATE, true},
		{pkcs11.CKA_SENSITIVE, true},
		{pkcs11.CKA_EXTRACTABLE, false},
		{pkcs11.CKA_ENCRYPT, true},
		{pkcs11.CKA_DECRYPT, true},
		{pkcs11.CKA_WRAP, false},
		{pkcs11.CKA_UNWRAP, false},
		{pkcs11.CKA_DERIVE, false},
		{pkcs11.CKA_SIGN, false},
		{pkcs11.CKA_VERIFY, false},
		{pkcs11.CKA_MODIFIABLE, false},
	} {
		if err := attrs.Set(a.t, a.v); err != nil {
			return nil, fmt.Errorf("%w: key template: %w", ErrConfig, err)
		}
	}
	var k *crypto11.SecretKey
	err = guard(func() error {
		var e error
		k, e = ctx.GenerateSecretKeyWithAttributes(attrs, 256, crypto11.CipherAES)
		return e
	})
	if err != nil {
		return nil, fmt.Errorf("%w: generating key %q: %w", ErrUnavailable, label, err)
	}
	return k, nil
}

// checkKeyPolicy refuses keys that could leave the token or are not AES-256.
func checkKeyPolicy(ctx *crypto11.Context, key *crypto11.SecretKey, label string) error {
	want := []crypto11.AttributeType{
		pkcs11.CKA_KEY_TYPE, pkcs11.CKA_VALUE_LEN, pkcs11.CKA_TOKEN, pkcs11.CKA_SENSITIVE,
		pkcs11.CKA_EXTRACTABLE, pkcs11.CKA_ENCRYPT, pkcs11.CKA_DECRYPT,
	}
	var attrs crypto11.AttributeSet
	err := guard(func() error {
		var e error
		attrs, e = ctx.GetAttributes(key, want)
		return e
	})
	if err != nil {
		return fmt.Errorf("%w: reading attributes of key %q: %w", ErrUnavailable, label, err)
	}
	get := func(t crypto11.AttributeType) []byte {
		if a, ok := attrs[t]; ok {
			return a.Value
		}
		return nil
	}
	var problems []string
	if kt, ok := ulongAttr(get(pkcs11.CKA_KEY_TYPE)); !ok || kt != pkcs11.CKK_AES {
		problems = append(problems, "not an AES key")
	}
	if n, ok := ulongAttr(get(pkcs11.CKA_VALUE_LEN)); !ok || n != 32 {
		problems = append(problems, "not 256 bits")
	}
	for _, c := range []struct {
		t    crypto11.AttributeType
		want bool
		msg  string
	}{
		{pkcs11.CKA_TOKEN, true, "not a token object"},
		{pkcs11.CKA_SENSITIVE, true, "not sensitive"},
		{pkcs11.CKA_EXTRACTABLE, false, "extractable"},
		{pkcs11.CKA_ENCRYPT, true, "encryption not allowed"},
		{pkcs11.CKA_DECRYPT, true, "decryption not allowed"},
	} {
		v := get(c.t)
		if len(v) != 1 || (v[0] != 0) != c.want {
			problems = append(problems, c.msg)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: key %q: %s", ErrKeyPolicy, label, strings.Join(problems, ", "))
	}
	return nil
}

// ulongAttr decodes a CK_ULONG attribute (native byte order, as the module
// wrote it).
func ulongAttr(v []byte) (uint, bool) {
	switch len(v) {
	case 8:
		return uint(binary.NativeEndian.Uint64(v)), true
	case 4:
		return uint(binary.NativeEndian.Uint32(v)), true
	}
	return 0, false
}

// closeContext closes a crypto11 context, turning its panics (e.g. on a
// module reference-count mismatch) into errors.
func closeContext(ctx *crypto11.Context) error {
	return guard(ctx.Close)
}
