package hsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
)

// Per-key data keys. Each key record's secrets are sealed under an AES-256
// token object of its own, labelled DataKeyPrefix+key_id, instead of the
// shared wrapping key. Deleting the key destroys that object, so the share
// and identity key become unopenable everywhere at once: in the live store,
// in a copy of the store taken before the delete, in backups and in freed
// disk pages, even with the token and PIN in hand. A blob names its data key
// by label like any other blob, so Open needs no configuration for it.
//
// The object's CKA_ID records when it was made (dataKeyID), so a sweep can
// tell an orphan left by a crash (a data key whose record was never written
// or already deleted) from one whose record is being written right now.

// DataKeyPrefix starts the label of every per-key data key. Two daemons
// with separate stores must not share a token: each would see the other's
// data keys as orphans.
const DataKeyPrefix = "quorumd-dk/"

// ErrNoDataKey: the blob's data key is not on the token: its key was
// deleted (or the data key was never made, or the token is not the one
// that sealed it).
var ErrNoDataKey = errors.New("hsm: data key not found (the key was deleted)")

// dataKeyIDMagic prefixes the CKA_ID of a data key; 8 bytes of big-endian
// Unix seconds follow.
const dataKeyIDMagic = "qdk1"

// DataKeyLabel is the token label of keyID's data key.
func DataKeyLabel(keyID string) string { return DataKeyPrefix + keyID }

// DataKey describes a per-key data key found on the token.
type DataKey struct {
	KeyID   string
	Created time.Time // zero if the object carries no creation stamp
}

func dataKeyID(now time.Time) []byte {
	return binary.BigEndian.AppendUint64([]byte(dataKeyIDMagic), uint64(now.Unix()))
}

// newDataKeyLabel is the label of a data key about to be made, which a
// blob header must be able to name.
func newDataKeyLabel(keyID string) (string, error) {
	label := DataKeyLabel(keyID)
	if len(label) > maxKeyLabelLen {
		return "", fmt.Errorf("%w: key_id of %d bytes is too long for a data-key label", ErrConfig, len(keyID))
	}
	return label, nil
}

// CreateDataKey makes keyID's data key on the token unless it exists. It
// must precede SealFor; the caller writes the record only after it.
func (h *HSM) CreateDataKey(keyID string) error {
	label, err := newDataKeyLabel(keyID)
	if err != nil {
		return err
	}
	// Most calls find the key made and cached (sealing a share under its
	// slot's key): they must not queue behind creations of other keys (the
	// data-key pool's refill), so look in the cache first.
	if ok, err := h.hasDataKey(label); ok || err != nil {
		return err
	}
	// One creator or destroyer at a time: two creating the same label would
	// leave two objects, which every later lookup refuses as ambiguous, and
	// SoftHSM fails a creation concurrent with a destruction.
	h.dkCreate.Lock()
	defer h.dkCreate.Unlock()
	st, release, err := h.acquire()
	if err != nil {
		return err
	}
	defer release()
	if _, err := h.key(st, label); err == nil {
		return nil
	} else if !errors.Is(err, ErrNoDataKey) {
		return err
	}
	if _, err := generateKey(st.ctx, dataKeyID(time.Now()), label); err != nil {
		return err
	}
	// Look it up rather than trust the new handle: replicas sealing an
	// existing slot's share (or migrating it) at once would each make one,
	// and the label must then fail as ambiguous before anything is sealed.
	_, err = h.key(st, label)
	return err
}

// CreateNewDataKey makes the data key of a key_id the caller has just
// minted at random (the pool, a new slot), so it cannot exist yet: no
// search of the token precedes the creation (on SoftHSM's file store a
// search costs a pass over every object file), and the handle the creation
// returns is cached for the slot's first seal.
func (h *HSM) CreateNewDataKey(keyID string) error {
	label, err := newDataKeyLabel(keyID)
	if err != nil {
		return err
	}
	h.dkCreate.Lock() // one creator or destroyer at a time, as in CreateDataKey
	defer h.dkCreate.Unlock()
	st, release, err := h.acquire()
	if err != nil {
		return err
	}
	defer release()
	k, err := generateKey(st.ctx, dataKeyID(time.Now()), label)
	if err != nil {
		return err
	}
	aead, err := keyGCM(st.ctx, k, label)
	if err != nil {
		return err
	}
	st.remember(label, cachedDataKey{aead: aead, obj: k, minted: true})
	return nil
}

// hasDataKey reports whether the data key labelled label is configured or
// cached from an earlier use in this process. It takes only the token lock,
// never dkCreate, and asks the token nothing: a lookup on the token may run
// only under dkCreate (SoftHSM fails object searches and creations that
// overlap), so an uncached key is looked up on CreateDataKey's slow path.
func (h *HSM) hasDataKey(label string) (bool, error) {
	st, release, err := h.acquire()
	if err != nil {
		return false, err
	}
	defer release()
	if _, ok := st.keys[label]; ok {
		return true, nil
	}
	st.dkMu.Lock()
	_, ok := st.dataKeys[label]
	st.dkMu.Unlock()
	return ok, nil
}

// SealFor is Seal under keyID's data key (made by CreateDataKey).
func (h *HSM) SealFor(keyID string, plaintext, aad []byte) ([]byte, error) {
	return h.seal(DataKeyLabel(keyID), plaintext, aad)
}

// DestroyDataKey destroys keyID's data key on the token; every blob sealed
// under it is unopenable afterwards. Destroying an absent key is not an
// error, so a retry after a crash is safe.
func (h *HSM) DestroyDataKey(keyID string) error {
	label := DataKeyLabel(keyID)
	// Serialised with CreateDataKey, and taken before acquire as there, so
	// the two locks are always taken in one order: SoftHSM fails an object
	// creation concurrent with an object destruction (CKR_GENERAL_ERROR).
	h.dkCreate.Lock()
	defer h.dkCreate.Unlock()
	st, release, err := h.acquire()
	if err != nil {
		return err
	}
	defer release()
	st.forget(label, nil)
	var keys []*crypto11.SecretKey
	err = guard(func() error {
		var e error
		keys, e = st.ctx.FindKeys(nil, []byte(label))
		return e
	})
	if err != nil {
		return fmt.Errorf("%w: finding data key of %s: %w", ErrUnavailable, keyID, err)
	}
	for _, k := range keys {
		if err := guard(k.Delete); err != nil {
			return fmt.Errorf("%w: destroying data key of %s: %w", ErrUnavailable, keyID, err)
		}
	}
	return nil
}

// DataKeys lists the data keys on the token, for the orphan sweep.
func (h *HSM) DataKeys() ([]DataKey, error) {
	// Serialised with creation and destruction like every other search of
	// data keys on the token (SoftHSM invalidates the handles of a listing
	// that overlaps a creation: CKR_OBJECT_HANDLE_INVALID), and taken
	// before acquire, in the one lock order.
	h.dkCreate.Lock()
	defer h.dkCreate.Unlock()
	st, release, err := h.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	var keys []*crypto11.SecretKey
	err = guard(func() error {
		var e error
		keys, e = st.ctx.FindAllKeys()
		return e
	})
	if err != nil {
		return nil, fmt.Errorf("%w: listing keys: %w", ErrUnavailable, err)
	}
	var out []DataKey
	for _, k := range keys {
		var attrs crypto11.AttributeSet
		err := guard(func() error {
			var e error
			attrs, e = st.ctx.GetAttributes(k, []crypto11.AttributeType{pkcs11.CKA_LABEL, pkcs11.CKA_ID})
			return e
		})
		if err != nil {
			return nil, fmt.Errorf("%w: reading key attributes: %w", ErrUnavailable, err)
		}
		var label, id []byte
		if a, ok := attrs[pkcs11.CKA_LABEL]; ok {
			label = a.Value
		}
		if a, ok := attrs[pkcs11.CKA_ID]; ok {
			id = a.Value
		}
		keyID, ok := strings.CutPrefix(string(label), DataKeyPrefix)
		if !ok {
			continue
		}
		d := DataKey{KeyID: keyID}
		if len(id) == len(dataKeyIDMagic)+8 && string(id[:len(dataKeyIDMagic)]) == dataKeyIDMagic {
			d.Created = time.Unix(int64(binary.BigEndian.Uint64(id[len(dataKeyIDMagic):])), 0)
		}
		out = append(out, d)
	}
	return out, nil
}
