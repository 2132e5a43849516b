package hsm

import (
	"bytes"
	"crypto/cipher"
	"errors"
	"fmt"
	"strings"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
)

// The data-key cache. A token object's handle is valid in every session of
// the process (PKCS#11 §2: a session that can use a handle keeps that use
// while the object exists), so one map per crypto11 context holds each data
// key's GCM: filled by the creation itself (CreateNewDataKey) or by the
// first lookup, and dropped when the context is rebuilt.
//
// An entry can go stale: a replica sharing the token destroys the key, or
// re-creates one under the same label. SoftHSM then answers
// CKR_OBJECT_HANDLE_INVALID on the next use of the old handle (it re-reads
// the object file on every use, and never hands out a handle twice in a
// process). PKCS#11 does not forbid a module to reuse a destroyed object's
// handle for another object, so a cached handle is never trusted to still
// name its key: a seal first reads the object's label (sealing under
// another key would tie the secret to that key's life), and an open is
// safe as it is, since the blob's header names the label and GCM does not
// authenticate under any other key. Either way a stale entry is dropped and
// the operation runs once more after a fresh lookup, which answers
// ErrNoDataKey if the key is gone.

// maxCachedDataKeys bounds the data-key cache; past it an arbitrary entry
// goes (a later use finds it on the token again).
const maxCachedDataKeys = 4096

// cachedDataKey is a data key's token-side GCM and the object behind it.
type cachedDataKey struct {
	aead   cipher.AEAD
	obj    *crypto11.SecretKey
	minted bool // made by this process (CreateNewDataKey), not found
}

// keyRef is the key a blob operation uses.
type keyRef struct {
	aead   cipher.AEAD
	obj    *crypto11.SecretKey // nil for a configured wrapping key
	cached bool                // a data key taken from the cache: it may be stale
	minted bool                // ... and one this process made (see checkCachedLabel)
}

// errStaleDataKey: a cached data-key handle no longer names its key; the
// entry was dropped and the operation should run again (never returned
// to callers).
var errStaleDataKey = errors.New("hsm: cached data-key handle is stale")

// key returns the key labelled label: a configured wrapping key, or a data
// key from the cache or found on the token (and cached, its policy checked
// once). Called with the read lock of st held.
func (h *HSM) key(st *tokenState, label string) (keyRef, error) {
	if aead, ok := st.keys[label]; ok {
		return keyRef{aead: aead}, nil
	}
	if !strings.HasPrefix(label, DataKeyPrefix) {
		return keyRef{}, fmt.Errorf("%w: blob is sealed under key %q, which is not configured", ErrKeyNotFound, label)
	}
	st.dkMu.Lock()
	c, ok := st.dataKeys[label]
	st.dkMu.Unlock()
	if ok {
		return keyRef{aead: c.aead, obj: c.obj, cached: true, minted: c.minted}, nil
	}
	k, err := findKey(st.ctx, label)
	if err == ErrKeyNotFound {
		return keyRef{}, fmt.Errorf("%w: %q", ErrNoDataKey, label)
	}
	if err != nil {
		return keyRef{}, err
	}
	aead, err := keyGCM(st.ctx, k, label)
	if err != nil {
		return keyRef{}, err
	}
	st.remember(label, cachedDataKey{aead: aead, obj: k})
	return keyRef{aead: aead, obj: k}, nil
}

// remember caches a data key.
func (st *tokenState) remember(label string, c cachedDataKey) {
	st.dkMu.Lock()
	defer st.dkMu.Unlock()
	if len(st.dataKeys) >= maxCachedDataKeys {
		for l := range st.dataKeys {
			delete(st.dataKeys, l)
			break
		}
	}
	st.dataKeys[label] = c
}

// forget drops label's entry: any entry if obj is nil, else only one for
// that object (another caller may have cached a fresh one meanwhile).
func (st *tokenState) forget(label string, obj *crypto11.SecretKey) {
	st.dkMu.Lock()
	defer st.dkMu.Unlock()
	if c, ok := st.dataKeys[label]; ok && (obj == nil || c.obj == obj) {
		delete(st.dataKeys, label)
	}
}

// checkCachedLabel makes sure a cached data key's handle still names the
// object labelled label before anything is sealed under it; if not, it
// drops the entry and returns errStaleDataKey. Called with the read lock
// of st held.
//
// A key this process minted skips the check (a label read costs SoftHSM a
// file open and lock, ≈0.2 ms, on the import's durable prepare). Its key_id
// is fresh and random, so until its record is written nobody else can name
// it, and the orphan sweep spares it for longer than the pool keeps it;
// afterwards only deleting the record destroys it, and the record's
// tombstone then refuses every write of what was sealed (Prepare, Commit,
// Reseal read the live record), so a reused handle cannot tie a stored
// secret to another key. A key found on the token may be older than any
// of that and is checked.
func checkCachedLabel(st *tokenState, ref keyRef, label string) error {
	if !ref.cached || ref.minted {
		return nil
	}
	var attrs crypto11.AttributeSet
	err := guard(func() error {
		var e error
		attrs, e = st.ctx.GetAttributes(ref.obj, []crypto11.AttributeType{pkcs11.CKA_LABEL})
		return e
	})
	switch {
	case err == nil:
		if a, ok := attrs[pkcs11.CKA_LABEL]; ok && bytes.Equal(a.Value, []byte(label)) {
			return nil
		}
	case !staleHandle(err):
		return fmt.Errorf("%w: reading the label of data key %q: %w", ErrUnavailable, label, err)
	}
	st.forget(label, ref.obj)
	return errStaleDataKey
}

// staleHandle reports whether err says an object handle names no object.
func staleHandle(err error) bool {
	code, ok := ckrOf(err)
	return ok && (code == pkcs11.CKR_OBJECT_HANDLE_INVALID || code == pkcs11.CKR_KEY_HANDLE_INVALID)
}
