// Package importkey is the daemon's HPKE import key: the key a client
// encrypts key-importer's private key to (encrypted_private_key), so that
// the private key never crosses the network, a TLS terminator or a proxy in
// the clear. HPKE is RFC 9180 through Go's crypto/hpke: KEM ML-KEM-768 +
// X25519 (X-Wing, post-quantum hybrid) by default, DHKEM(P-256) for clients
// that need it, HKDF-SHA256 and AES-256-GCM, base mode.
//
// The private halves are kept HSM-sealed (under the wrapping key every
// replica of a party shares) in the key store, as one named blob
// (store.Blobs), and opened for each decryption only. So replicas sharing a
// PostgreSQL store publish and accept the same keys. Keys rotate: Rotate
// (and Maintain, once the active keys are older than Lifetime) makes new
// ones and keeps the previous generation for decryption, so a client that
// fetched the public key just before a rotation still succeeds. Every
// change is a compare-and-swap on the blob's version: replicas rotating at
// once make one generation, the others adopt it.
package importkey

import (
	"context"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/hsm"
)

// KEM names, as published in GET /bip340/import/import-key.
const (
	KEMXWing = "MLKEM768-X25519"
	KEMP256  = "DHKEM-P256"
	// DefaultKEM is published when the client names none.
	DefaultKEM = KEMXWing
)

// The fixed rest of the ciphersuite.
const (
	KDFName  = "HKDF-SHA256"
	AEADName = "AES-256-GCM"
)

// BlobName names the import keys' blob in the key store.
const BlobName = "import-keys"

// FileName is the file in the state directory that held the import keys
// before they moved into the store; Open migrates it and removes it.
const FileName = "import-keys.json"

// RefreshInterval is how often Maintain reloads the keys from the store
// (picking up another replica's rotation) and checks their age.
const RefreshInterval = time.Minute

// Lifetime is how long a generation of import keys stays active; the
// previous generation is still accepted for one more Lifetime.
const Lifetime = 30 * 24 * time.Hour

// Errors.
var (
	// ErrUnknownKey: the ciphertext names an import key this daemon does
	// not hold (never, or rotated out).
	ErrUnknownKey = errors.New("importkey: unknown import key")
	// ErrDecrypt: the ciphertext does not decrypt under the named key with
	// this request's binding (daemon slot, key_id, room), or its plaintext
	// is not a valid private key. It carries no detail on purpose.
	ErrDecrypt = errors.New("importkey: ciphertext does not decrypt to a private key for this request")
	// ErrUnknownKEM: a KEM name this daemon does not offer.
	ErrUnknownKEM = errors.New("importkey: unknown KEM")
)

// Sealer seals the private halves (hsm.HSM, under the wrapping key).
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(blob, aad []byte) ([]byte, error)
}

// Public is one published import key.
type Public struct {
	KEM       string
	PublicKey []byte
	Label     string // key_id_label: the client names it back with its ciphertext
}

func kemOf(name string) (hpke.KEM, error) {
	switch name {
	case KEMXWing:
		return hpke.MLKEM768X25519(), nil
	case KEMP256:
		return hpke.DHKEM(ecdh.P256()), nil
	}
	return nil, fmt.Errorf("%w %q (offered: %s, %s)", ErrUnknownKEM, name, KEMXWing, KEMP256)
}

func suite() (hpke.KDF, hpke.AEAD) { return hpke.HKDFSHA256(), hpke.AES256GCM() }

// Info is the HPKE info string: it binds a ciphertext to one import key,
// one daemon slot (its keygen_id, the daemon's identity for that key), one
// key_id and one room, so a ciphertext replayed to another daemon, slot or
// ceremony does not decrypt.
func Info(label string, keygenID []byte, keyID, roomUUID string) []byte {
	return fmt.Appendf(nil, "quorumd/import-key/v1\x00%s\x00%s\x00%s\x00%s", label, hex.EncodeToString(keygenID), keyID, roomUUID)
}

// Encrypt seals a 32-byte private key (big-endian) to pub with info (the
// client's side; quorumctl import --encrypt). It returns enc || ciphertext.
func Encrypt(pub Public, info, x []byte) ([]byte, error) {
	if len(x) != 32 {
		return nil, fmt.Errorf("importkey: a private key is 32 bytes, not %d", len(x))
	}
	kem, err := kemOf(pub.KEM)
	if err != nil {
		return nil, err
	}
	pk, err := kem.NewPublicKey(pub.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("importkey: public key: %w", err)
	}
	kdf, aead := suite()
	return hpke.Seal(pk, kdf, aead, info, x)
}

// record is one stored import key.
type record struct {
	Label         string    `json:"label"`
	KEM           string    `json:"kem"`
	PublicKey     []byte    `json:"public_key"`
	SealedPrivate []byte    `json:"sealed_private_key"`
	CreatedAt     time.Time `json:"created_at"`
	Generation    int       `json:"generation"`
}

// keySet is the stored form (the blob, and the legacy file).
type keySet struct {
	V    int      `json:"v"`
	Keys []record `json:"keys"`
}

func (st *keySet) generation() int {
	g := 0
	for _, r := range st.Keys {
		g = max(g, r.Generation)
	}
	return g
}

// active returns the newest key of a KEM, or nil.
func (st *keySet) active(kem string) *record {
	var best *record
	for i := range st.Keys {
		r := &st.Keys[i]
		if r.KEM == kem && (best == nil || r.Generation > best.Generation) {
			best = r
		}
	}
	return best
}

func (st *keySet) find(label string) (record, bool) {
	for _, r := range st.Keys {
		if r.Label == label {
			return r, true
		}
	}
	return record{}, false
}

func decodeSet(raw []byte) (keySet, error) {
	var st keySet
	if err := json.Unmarshal(raw, &st); err != nil || st.V != 1 {
		return keySet{}, fmt.Errorf("importkey: not a version-1 import key set: %v", err)
	}
	return st, nil
}

// Options tune Open.
type Options struct {
	// StateDir, if set, is searched for the legacy FileName to migrate.
	StateDir string
	// Lifetime of a generation; 0 means Lifetime.
	Lifetime time.Duration
	// Log receives migration and rotation notes; nil discards them.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Keys holds the import keys; safe for concurrent use.
type Keys struct {
	sealer   Sealer
	store    store.Blobs
	now      func() time.Time
	lifetime time.Duration
	log      *slog.Logger

	// wmu serialises this replica's writes and reloads (other replicas are
	// kept apart by the blob's compare-and-swap).
	wmu sync.Mutex

	mu      sync.RWMutex
	st      keySet
	version int64
}

func sealAAD(r *record) []byte {
	return []byte("quorumd/import-key-private/v1\x00" + r.Label + "\x00" + r.KEM)
}

// Open loads the import keys from the store, migrating a legacy file of
// o.StateDir into it, re-sealing them under the sealer's active wrapping
// key, and making a generation if there is none or the active one is older
// than the lifetime.
func Open(ctx context.Context, st store.Blobs, s Sealer, o Options) (*Keys, error) {
	k := &Keys{sealer: s, store: st, now: o.Now, lifetime: o.Lifetime, log: o.Log}
	if k.now == nil {
		k.now = time.Now
	}
	if k.lifetime <= 0 {
		k.lifetime = Lifetime
	}
	if k.log == nil {
		k.log = slog.New(slog.DiscardHandler)
	}
	if o.StateDir != "" {
		if err := k.migrateFile(ctx, filepath.Join(o.StateDir, FileName)); err != nil {
			return nil, err
		}
	}
	if err := k.resealAll(ctx); err != nil {
		return nil, err
	}
	if err := k.rotateIf(ctx, -1, k.expired); err != nil {
		return nil, err
	}
	return k, nil
}

// migrateFile moves the keys of a legacy file (one replica's own, before
// they lived in the store) into the store if it holds none yet, then
// removes the file. If the store has keys already (another replica's file
// won), this file's keys are dropped: clients holding one of them fetch the
// import key again.
func (k *Keys) migrateFile(ctx context.Context, path string) error {
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("importkey: %w", err)
	}
	if _, err := decodeSet(raw); err != nil {
		return fmt.Errorf("importkey: %s: %w", path, err)
	}
	_, err = k.store.SwapBlob(ctx, BlobName, 0, raw)
	switch {
	case err == nil:
		k.log.Info("import keys moved from the state directory into the key store", "file", path)
	case errors.Is(err, store.ErrConflict):
		k.log.Warn("the key store holds import keys already; this replica's own import key file is dropped", "file", path)
	default:
		return fmt.Errorf("importkey: migrating %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("importkey: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err == nil {
		err = d.Sync()
		d.Close()
	}
	if err != nil {
		return fmt.Errorf("importkey: syncing %s: %w", dir, err)
	}
	return nil
}

// fetch reads the stored set and its version.
func (k *Keys) fetch(ctx context.Context) (keySet, int64, error) {
	raw, ver, err := k.store.GetBlob(ctx, BlobName)
	if err != nil {
		return keySet{}, 0, fmt.Errorf("importkey: reading the import keys: %w", err)
	}
	if ver == 0 {
		return keySet{V: 1}, 0, nil
	}
	st, err := decodeSet(raw)
	return st, ver, err
}

// adopt makes st (at version ver) the keys this replica serves, unless it
// already serves a newer version.
func (k *Keys) adopt(st keySet, ver int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if ver >= k.version {
		k.st, k.version = st, ver
	}
}

// update applies change to the stored set by compare-and-swap until it
// sticks or change declines (returns nil): on a conflict it reads again
// and asks change again, so a change another replica made meanwhile is
// seen before deciding. The result is adopted either way.
func (k *Keys) update(ctx context.Context, change func(cur keySet) (*keySet, error)) error {
	k.wmu.Lock()
	defer k.wmu.Unlock()
	for attempt := 0; ; attempt++ {
		cur, ver, err := k.fetch(ctx)
		if err != nil {
			return err
		}
		next, err := change(cur)
		if err != nil {
			return err
		}
		if next == nil {
			k.adopt(cur, ver)
			return nil
		}
		raw, err := json.Marshal(next)
		if err != nil {
			return fmt.Errorf("importkey: %w", err)
		}
		nv, err := k.store.SwapBlob(ctx, BlobName, ver, raw)
		if nv > 0 {
			// Stored (an error then says the old value was not reclaimed).
			k.adopt(*next, nv)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrConflict) || attempt >= 16 {
			return fmt.Errorf("importkey: storing the import keys: %w", err)
		}
	}
}

// Refresh reloads the keys from the store (another replica's rotation).
func (k *Keys) Refresh(ctx context.Context) error {
	return k.update(ctx, func(keySet) (*keySet, error) { return nil, nil })
}

// expired reports whether a KEM's active key is missing or too old.
func (k *Keys) expired(cur keySet) bool {
	for _, name := range []string{KEMXWing, KEMP256} {
		if a := cur.active(name); a == nil || k.now().Sub(a.CreatedAt) > k.lifetime {
			return true
		}
	}
	return false
}

// Rotate replaces the generation this replica serves by a new one (one key
// per KEM), keeps the replaced one for decryption and drops older ones. If
// another replica replaced it already (a rotation at the same moment, or
// one this replica has not loaded yet), no further generation is made:
// this replica adopts that one.
func (k *Keys) Rotate(ctx context.Context) error {
	return k.rotateIf(ctx, k.Generation(), func(keySet) bool { return true })
}

// rotateIf rotates if need says so of the stored set, unless the stored
// generation is newer than judged (-1: none): then another replica rotated
// since the decision, and its generation is adopted. need is asked again
// after every conflict, so replicas that decided at once make one
// generation.
func (k *Keys) rotateIf(ctx context.Context, judged int, need func(keySet) bool) error {
	adopted := false
	err := k.update(ctx, func(cur keySet) (*keySet, error) {
		gen := cur.generation()
		if judged >= 0 && gen > judged {
			adopted = true
			return nil, nil
		}
		if !need(cur) {
			return nil, nil
		}
		judged = gen
		return k.next(cur)
	})
	switch {
	case err != nil:
	case adopted:
		k.log.Info("import key rotated by another replica at the same time; serving its generation", "generation", k.Generation())
	case judged >= 0:
		k.log.Info("import key rotated", "generation", judged+1)
	}
	return err
}

// Generation is the newest generation this replica serves.
func (k *Keys) Generation() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.st.generation()
}

// next is cur rotated: its newest generation plus a new one.
func (k *Keys) next(cur keySet) (*keySet, error) {
	gen := cur.generation() + 1
	next := &keySet{V: 1}
	for _, r := range cur.Keys {
		if r.Generation == gen-1 {
			next.Keys = append(next.Keys, r)
		}
	}
	for _, name := range []string{KEMXWing, KEMP256} {
		r, err := k.generate(name, gen)
		if err != nil {
			return nil, err
		}
		next.Keys = append(next.Keys, r)
	}
	return next, nil
}

// resealAll re-seals, under the sealer's active wrapping key, the private
// halves sealed under another (a wrapping-key rotation, docs/hsm.md).
func (k *Keys) resealAll(ctx context.Context) error {
	rs, ok := k.sealer.(interface {
		Reseal(blob, aad []byte) ([]byte, error)
		ActiveKeyLabel() string
	})
	if !ok {
		return nil
	}
	active := rs.ActiveKeyLabel()
	return k.update(ctx, func(cur keySet) (*keySet, error) {
		next := &keySet{V: 1, Keys: append([]record(nil), cur.Keys...)}
		changed := false
		for i := range next.Keys {
			r := &next.Keys[i]
			if l, err := hsm.BlobKeyLabel(r.SealedPrivate); err == nil && l == active {
				continue
			}
			sealed, err := rs.Reseal(r.SealedPrivate, sealAAD(r))
			if err != nil {
				return nil, fmt.Errorf("importkey: re-sealing %s: %w", r.Label, err)
			}
			r.SealedPrivate, changed = sealed, true
		}
		if !changed {
			return nil, nil
		}
		return next, nil
	})
}

// Maintain reloads the keys every interval (RefreshInterval if 0) and
// rotates them once the active generation is older than the lifetime,
// until ctx ends. Failures are logged and retried at the next tick.
func (k *Keys) Maintain(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = RefreshInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := k.rotateIf(ctx, -1, k.expired); err != nil && ctx.Err() == nil {
			k.log.Warn("import key refresh failed; retried at the next tick", "error", err.Error())
		}
	}
}

func (k *Keys) generate(name string, gen int) (record, error) {
	kem, err := kemOf(name)
	if err != nil {
		return record{}, err
	}
	sk, err := kem.GenerateKey()
	if err != nil {
		return record{}, fmt.Errorf("importkey: generating: %w", err)
	}
	priv, err := sk.Bytes()
	if err != nil {
		return record{}, fmt.Errorf("importkey: serializing: %w", err)
	}
	defer clear(priv)
	var tag [4]byte
	_, _ = rand.Read(tag[:])
	r := record{Label: fmt.Sprintf("qd-import-%d-%s-%x", gen, map[string]string{KEMXWing: "xwing", KEMP256: "p256"}[name], tag),
		KEM: name, PublicKey: sk.PublicKey().Bytes(), CreatedAt: k.now().UTC(), Generation: gen}
	if r.SealedPrivate, err = k.sealer.Seal(priv, sealAAD(&r)); err != nil {
		return record{}, fmt.Errorf("importkey: sealing: %w", err)
	}
	return r, nil
}

// labelGeneration is the generation a label names (qd-import-<gen>-…), or
// -1 if it names none.
func labelGeneration(label string) int {
	rest, ok := strings.CutPrefix(label, "qd-import-")
	if !ok {
		return -1
	}
	g, _, ok := strings.Cut(rest, "-")
	n, err := strconv.Atoi(g)
	if !ok || err != nil || n < 1 {
		return -1
	}
	return n
}

// Public returns the active import key of a KEM ("" for DefaultKEM).
func (k *Keys) Public(kem string) (Public, error) {
	if kem == "" {
		kem = DefaultKEM
	}
	if _, err := kemOf(kem); err != nil {
		return Public{}, err
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	r := k.st.active(kem)
	if r == nil {
		return Public{}, fmt.Errorf("%w: no %s key", ErrUnknownKey, kem)
	}
	return Public{KEM: r.KEM, PublicKey: r.PublicKey, Label: r.Label}, nil
}

// Decrypt opens ciphertext (enc || ct, as Encrypt makes it) under the
// import key labelled label with info and decodes the 32-byte private key
// into dst (locked memory) in constant time. The HPKE plaintext is a heap
// slice (crypto/hpke has no destination parameter), cleared at once, as is
// the unsealed KEM private key. dst is zeroed on failure.
func (k *Keys) Decrypt(ctx context.Context, label string, info, ciphertext []byte, dst *btcec.ModNScalar) error {
	r, err := k.lookup(ctx, label)
	if err != nil {
		dst.Zero()
		return err
	}
	kem, err := kemOf(r.KEM)
	if err != nil {
		return err
	}
	priv, err := k.sealer.Open(r.SealedPrivate, sealAAD(&r))
	if err != nil {
		return fmt.Errorf("importkey: opening the import key: %w", err)
	}
	sk, err := kem.NewPrivateKey(priv)
	clear(priv)
	if err != nil {
		return fmt.Errorf("importkey: import key %q: %w", label, err)
	}
	kdf, aead := suite()
	pt, err := hpke.Open(sk, kdf, aead, info, ciphertext)
	defer clear(pt)
	if err != nil || len(pt) != 32 {
		return ErrDecrypt
	}
	// One branch, on the combined validity bit (as for private_key).
	bad := dst.SetBytes((*[32]byte)(pt))
	bad |= dst.IsZeroBit()
	if bad != 0 {
		dst.Zero()
		return ErrDecrypt
	}
	return nil
}

// DecryptFor is Decrypt with the Info of a daemon slot, key and room.
func (k *Keys) DecryptFor(ctx context.Context, label string, keygenID []byte, keyID, roomUUID string, ciphertext []byte, dst *btcec.ModNScalar) error {
	return k.Decrypt(ctx, label, Info(label, keygenID, keyID, roomUUID), ciphertext, dst)
}

// lookup finds the key labelled label. A label of a newer generation than
// this replica serves was made by another replica's rotation: the keys are
// reloaded from the store once before answering ErrUnknownKey. Labels of
// no generation, or of an older one, never cause a reload.
func (k *Keys) lookup(ctx context.Context, label string) (record, error) {
	k.mu.RLock()
	r, found := k.st.find(label)
	newer := labelGeneration(label) > k.st.generation()
	k.mu.RUnlock()
	if found {
		return r, nil
	}
	if newer {
		if err := k.Refresh(ctx); err != nil {
			return record{}, err
		}
		k.mu.RLock()
		r, found = k.st.find(label)
		k.mu.RUnlock()
		if found {
			return r, nil
		}
	}
	return record{}, fmt.Errorf("%w %q", ErrUnknownKey, label)
}
