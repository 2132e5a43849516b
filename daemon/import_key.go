package daemon

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/daemon/importkey"
)

// ImportKeys is the daemon's HPKE import key (daemon/importkey.Keys):
// key-importer's encrypted_private_key is encrypted to it.
type ImportKeys interface {
	// Public returns the active key of a KEM ("" for the default).
	Public(kem string) (importkey.Public, error)
	// DecryptFor decrypts a ciphertext bound (HPKE info) to this daemon's
	// slot keygenID, keyID and roomUUID into dst (locked memory). A label
	// of a newer generation (another replica's rotation) makes it reload
	// the keys from the store, so ctx bounds that read.
	DecryptFor(ctx context.Context, label string, keygenID []byte, keyID, roomUUID string, ciphertext []byte, dst *btcec.ModNScalar) error
}

// importKey answers GET /bip340/import/import-key: the public key clients
// encrypt private_key to. It is public data and needs no API key.
func (s *Server) getImportKey(rc *reqCtx) error {
	if err := noBody(rc); err != nil {
		return err
	}
	if s.b.ImportKeys == nil {
		return Errorf(ErrTypeNotFound, "this daemon has no import key: send private_key")
	}
	kem := string(rc.fc.QueryArgs().Peek("kem"))
	pub, err := s.b.ImportKeys.Public(kem)
	if err != nil {
		return err
	}
	return rc.writeJSON(map[string]string{
		"kem":          pub.KEM,
		"kdf":          importkey.KDFName,
		"aead":         importkey.AEADName,
		"public_key":   base64.StdEncoding.EncodeToString(pub.PublicKey),
		"key_id_label": pub.Label,
	})
}

// encryptedKey is key-importer's encrypted_private_key.
type encryptedKey struct {
	Label      string `json:"key_id_label"`
	Ciphertext []byte `json:"ciphertext"` // base64: HPKE enc || ciphertext
}

// maxEncryptedKey bounds the ciphertext (X-Wing: 1120 + 32 + 16 bytes).
const maxEncryptedKey = 4096

func encryptedKeyField(dst **encryptedKey) field {
	return field{name: "encrypted_private_key", decode: func(raw []byte) error {
		var e encryptedKey
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if raw[0] != '{' || dec.Decode(&e) != nil || e.Label == "" || len(e.Label) > 128 ||
			len(e.Ciphertext) == 0 || len(e.Ciphertext) > maxEncryptedKey {
			return badRequest(`field "encrypted_private_key" must be {"key_id_label": "<from GET /bip340/import/import-key>", "ciphertext": "<base64, at most %d bytes>"}`, maxEncryptedKey)
		}
		*dst = &e
		return nil
	}}
}

// decryptPrivateKey decrypts req's encrypted_private_key into
// req.PrivateKey, bound to this daemon's slot (keygenID), key and room.
// Nothing of the ciphertext is logged; failures are bad_request_params
// (mapped in Backends.Errors).
func (s *Server) decryptPrivateKey(req *importRequest, keygenID []byte) error {
	if s.b.ImportKeys == nil {
		return badRequest("this daemon has no import key: send private_key")
	}
	e := req.Encrypted
	ctx, cancel := context.WithTimeout(s.base, s.cfg.Server.RequestTimeout)
	defer cancel()
	if err := s.b.ImportKeys.DecryptFor(ctx, e.Label, keygenID, req.KeyID, req.RoomUUID, e.Ciphertext, req.PrivateKey); err != nil {
		return fmt.Errorf("encrypted_private_key: %w", err)
	}
	return nil
}
