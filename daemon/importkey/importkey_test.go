package importkey_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/daemon/importkey"
	"github.com/quorumd/quorumd/hsm"
	"github.com/quorumd/quorumd/internal/testkit"
)

func openHSM(t testing.TB) *hsm.HSM {
	t.Helper()
	tok := testkit.SoftHSM(t, "importkey")
	h, err := hsm.Open(hsm.Config{ModulePath: tok.Module, TokenLabel: tok.Label, PIN: tok.PIN, KeyLabel: "wrap", CreateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestEncryptDecrypt: a key encrypted to the published import key (each
// KEM) decrypts into the caller's scalar; a wrong binding, a tampered
// ciphertext, an unknown label and a plaintext that is no private key are
// refused with ErrDecrypt / ErrUnknownKey and leave dst zero; the private
// halves are stored sealed, and the previous generation still decrypts
// after a rotation, the one before it not.
func TestEncryptDecrypt(t *testing.T) {
	h := openHSM(t)
	dir := t.TempDir()
	k, err := importkey.Open(dir, h)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := btcec.NewPrivateKey()
	x := priv.Key.Bytes()
	keygen := priv.PubKey().SerializeCompressed()
	otherSlot := bytes.Clone(keygen)
	otherSlot[32] ^= 1
	for _, kem := range []string{"", importkey.KEMXWing, importkey.KEMP256} {
		pub, err := k.Public(kem)
		if err != nil {
			t.Fatal(err)
		}
		info := importkey.Info(pub.Label, keygen, "key-1", "room-1")
		ct, err := importkey.Encrypt(pub, info, x[:])
		if err != nil {
			t.Fatal(err)
		}
		var dst btcec.ModNScalar
		if err := k.Decrypt(pub.Label, info, ct, &dst); err != nil || !dst.Equals(&priv.Key) {
			t.Fatalf("%s: decrypt: %v", pub.KEM, err)
		}
		for name, c := range map[string]struct {
			label string
			info  []byte
			ct    []byte
			want  error
		}{
			"other key_id":  {pub.Label, importkey.Info(pub.Label, keygen, "key-2", "room-1"), ct, importkey.ErrDecrypt},
			"other room":    {pub.Label, importkey.Info(pub.Label, keygen, "key-1", "room-2"), ct, importkey.ErrDecrypt},
			"other slot":    {pub.Label, importkey.Info(pub.Label, otherSlot, "key-1", "room-1"), ct, importkey.ErrDecrypt},
			"tampered":      {pub.Label, info, append(ct[:len(ct)-1:len(ct)-1], ct[len(ct)-1]^1), importkey.ErrDecrypt},
			"truncated":     {pub.Label, info, ct[:10], importkey.ErrDecrypt},
			"unknown label": {"nope", info, ct, importkey.ErrUnknownKey},
		} {
			var d btcec.ModNScalar
			if err := k.Decrypt(c.label, c.info, c.ct, &d); !errors.Is(err, c.want) || !d.IsZero() {
				t.Errorf("%s %s: %v (dst zero %t), want %v", pub.KEM, name, err, d.IsZero(), c.want)
			}
		}
		var n [32]byte // zero is no private key
		ct0, _ := importkey.Encrypt(pub, info, n[:])
		var d btcec.ModNScalar
		if err := k.Decrypt(pub.Label, info, ct0, &d); !errors.Is(err, importkey.ErrDecrypt) {
			t.Errorf("%s: zero key: %v", pub.KEM, err)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, importkey.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("sealed_private_key")) {
		t.Fatal("no sealed private key in the file")
	}

	old, _ := k.Public("")
	oldInfo := importkey.Info(old.Label, keygen, "k", "r")
	oldCT, _ := importkey.Encrypt(old, oldInfo, x[:])
	if err := k.Rotate(); err != nil {
		t.Fatal(err)
	}
	// Reopened from the file: the same keys.
	k, err = importkey.Open(dir, h)
	if err != nil {
		t.Fatal(err)
	}
	if cur, _ := k.Public(""); cur.Label == old.Label || bytes.Equal(cur.PublicKey, old.PublicKey) {
		t.Fatal("rotation did not change the published key")
	}
	var d btcec.ModNScalar
	if err := k.Decrypt(old.Label, oldInfo, oldCT, &d); err != nil || !d.Equals(&priv.Key) {
		t.Fatalf("previous generation after one rotation: %v", err)
	}
	if err := k.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := k.Decrypt(old.Label, oldInfo, oldCT, &d); !errors.Is(err, importkey.ErrUnknownKey) {
		t.Fatalf("two generations back: %v, want ErrUnknownKey", err)
	}
}

// BenchmarkDecrypt is the daemon's cost per encrypted import: unsealing the
// import key through the HSM, HPKE decapsulation and decryption.
func BenchmarkDecrypt(b *testing.B) {
	h := openHSM(b)
	k, err := importkey.Open(b.TempDir(), h)
	if err != nil {
		b.Fatal(err)
	}
	priv, _ := btcec.NewPrivateKey()
	x := priv.Key.Bytes()
	for _, kem := range []string{importkey.KEMXWing, importkey.KEMP256} {
		pub, _ := k.Public(kem)
		info := importkey.Info(pub.Label, []byte{2}, "k", "r")
		ct, _ := importkey.Encrypt(pub, info, x[:])
		b.Run(kem, func(b *testing.B) {
			var d btcec.ModNScalar
			for b.Loop() {
				if err := k.Decrypt(pub.Label, info, ct, &d); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(kem+"/client-encrypt", func(b *testing.B) {
			for b.Loop() {
				if _, err := importkey.Encrypt(pub, info, x[:]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
