// Package agekey converts between age X25519 recipients ("age1…", bech32)
// and the raw 32-byte public keys policies carry (allow_backup_export's
// recipient_pubkey, hex): age exports no constructor from raw bytes.
package agekey

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"
)

const charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

// Recipient parses an age X25519 recipient given as "age1…" or as the hex
// of its 32-byte public key.
func Recipient(s string) (*age.X25519Recipient, error) {
	if strings.HasPrefix(s, "age1") {
		return age.ParseX25519Recipient(s)
	}
	raw, err := hex.DecodeString(s)
	if err != nil || len(raw) != 32 {
		return nil, errors.New("want an age X25519 recipient (age1…) or the hex of a 32-byte X25519 public key")
	}
	return age.ParseX25519Recipient(encode("age", raw))
}

// Hex returns the hex of r's 32-byte public key.
func Hex(r *age.X25519Recipient) (string, error) {
	s := r.String()
	data, err := decode("age", s)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(data), nil
}

// BIP173 bech32 (not bech32m), as age uses it.

func polymod(values []byte) uint32 {
	gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := range 5 {
			if (top>>i)&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	return chk
}

func hrpExpand(hrp string) []byte {
	out := make([]byte, 0, 2*len(hrp)+1)
	for i := range len(hrp) {
		out = append(out, hrp[i]>>5)
	}
	out = append(out, 0)
	for i := range len(hrp) {
		out = append(out, hrp[i]&31)
	}
	return out
}

func convertBits(data []byte, from, to uint, pad bool) ([]byte, error) {
	var acc, bits uint
	var out []byte
	maxv := uint(1)<<to - 1
	for _, b := range data {
		if uint(b)>>from != 0 {
			return nil, errors.New("bech32: invalid data")
		}
		acc = acc<<from | uint(b)
		bits += from
		for bits >= to {
			bits -= to
			out = append(out, byte(acc>>bits&maxv))
		}
	}
	if pad {
		if bits > 0 {
			out = append(out, byte(acc<<(to-bits)&maxv))
		}
	} else if bits >= from || acc<<(to-bits)&maxv != 0 {
		return nil, errors.New("bech32: invalid padding")
	}
	return out, nil
}

func encode(hrp string, data []byte) string {
	values, _ := convertBits(data, 8, 5, true)
	poly := polymod(append(append(hrpExpand(hrp), values...), 0, 0, 0, 0, 0, 0)) ^ 1
	var b strings.Builder
	b.WriteString(hrp + "1")
	for _, v := range values {
		b.WriteByte(charset[v])
	}
	for i := range 6 {
		b.WriteByte(charset[(poly>>(5*(5-i)))&31])
	}
	return b.String()
}

func decode(hrp, s string) ([]byte, error) {
	s = strings.ToLower(s)
	if !strings.HasPrefix(s, hrp+"1") || len(s) < len(hrp)+7 {
		return nil, fmt.Errorf("bech32: not a %q string", hrp)
	}
	var values []byte
	for _, c := range s[len(hrp)+1:] {
		i := strings.IndexRune(charset, c)
		if i < 0 {
			return nil, errors.New("bech32: invalid character")
		}
		values = append(values, byte(i))
	}
	if polymod(append(hrpExpand(hrp), values...)) != 1 {
		return nil, errors.New("bech32: bad checksum")
	}
	return convertBits(values[:len(values)-6], 5, 8, false)
}
