// Package importkey is the daemon's HPKE import key: the key a client
// encrypts key-importer's private key to (encrypted_private_key), so that
// the private key never crosses the network, a TLS terminator or a proxy in
// the clear. HPKE is RFC 9180 through Go's crypto/hpke: KEM ML-KEM-768 +
// X25519 (X-Wing, post-quantum hybrid) by default, DHKEM(P-256) for clients
// that need it, HKDF-SHA256 and AES-256-GCM, base mode.
//
// The private halves are kept HSM-sealed in a file of the state directory
// and opened for each decryption only. Keys rotate: Rotate (and Open, once
// the active keys are older than Lifetime) makes new ones and keeps the
// previous generation for decryption, so a client that fetched the public
// key just before a rotation still succeeds.
package importkey

import (
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
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

// FileName is the import keys' file in the state directory.
const FileName = "import-keys.json"

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

type fileState struct {
	V    int      `json:"v"`
	Keys []record `json:"keys"`
}

// Keys holds the import keys; safe for concurrent use.
type Keys struct {
	sealer Sealer
	path   string
	now    func() time.Time

	mu sync.RWMutex
	st fileState
}

func sealAAD(r *record) []byte {
	return []byte("quorumd/import-key-private/v1\x00" + r.Label + "\x00" + r.KEM)
}

// Open loads the import keys from stateDir, making the first generation if
// there is none and rotating if the active one is older than Lifetime.
func Open(stateDir string, s Sealer) (*Keys, error) {
	k := &Keys{sealer: s, path: filepath.Join(stateDir, FileName), now: time.Now}
	raw, err := os.ReadFile(k.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("importkey: %w", err)
	default:
		if err := json.Unmarshal(raw, &k.st); err != nil || k.st.V != 1 {
			return nil, fmt.Errorf("importkey: %s is not a version-1 import key file: %v", k.path, err)
		}
	}
	// Re-seal under the sealer's active wrapping key at every start, so a
	// wrapping-key rotation (docs/hsm.md) carries the import keys along.
	if rs, ok := s.(interface {
		Reseal(blob, aad []byte) ([]byte, error)
	}); ok && len(k.st.Keys) > 0 {
		for i := range k.st.Keys {
			r := &k.st.Keys[i]
			if r.SealedPrivate, err = rs.Reseal(r.SealedPrivate, sealAAD(r)); err != nil {
				return nil, fmt.Errorf("importkey: re-sealing %s: %w", r.Label, err)
			}
		}
		if err := writeFile(k.path, k.st); err != nil {
			return nil, err
		}
	}
	if a := k.active(KEMXWing); a == nil || k.now().Sub(a.CreatedAt) > Lifetime {
		if err := k.Rotate(); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// active returns the newest key of a KEM, or nil. Called with mu held.
func (k *Keys) active(kem string) *record {
	var best *record
	for i := range k.st.Keys {
		r := &k.st.Keys[i]
		if r.KEM == kem && (best == nil || r.Generation > best.Generation) {
			best = r
		}
	}
	return best
}

// Rotate makes a new generation (one key per KEM), keeps the previous one
// for decryption and drops older ones; the file is replaced atomically.
func (k *Keys) Rotate() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	gen := 1
	for _, r := range k.st.Keys {
		gen = max(gen, r.Generation+1)
	}
	next := fileState{V: 1}
	for _, r := range k.st.Keys {
		if r.Generation == gen-1 {
			next.Keys = append(next.Keys, r)
		}
	}
	for _, name := range []string{KEMXWing, KEMP256} {
		r, err := k.generate(name, gen)
		if err != nil {
			return err
		}
		next.Keys = append(next.Keys, r)
	}
	if err := writeFile(k.path, next); err != nil {
		return err
	}
	k.st = next
	return nil
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

func writeFile(path string, st fileState) error {
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("importkey: %w", err)
	}
	if _, err = f.Write(raw); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		var d *os.File
		if d, err = os.Open(filepath.Dir(path)); err == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("importkey: writing %s: %w", path, err)
	}
	return nil
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
	r := k.active(kem)
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
func (k *Keys) Decrypt(label string, info, ciphertext []byte, dst *btcec.ModNScalar) error {
	k.mu.RLock()
	var r record
	found := false
	for _, x := range k.st.Keys {
		if x.Label == label {
			r, found = x, true
		}
	}
	k.mu.RUnlock()
	if !found {
		return fmt.Errorf("%w %q", ErrUnknownKey, label)
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
func (k *Keys) DecryptFor(label string, keygenID []byte, keyID, roomUUID string, ciphertext []byte, dst *btcec.ModNScalar) error {
	return k.Decrypt(label, Info(label, keygenID, keyID, roomUUID), ciphertext, dst)
}
