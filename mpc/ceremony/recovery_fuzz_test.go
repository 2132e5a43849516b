package ceremony

import (
	"bytes"
	"testing"

	"github.com/quorumd/quorumd/mpc/envelope"
)

// FuzzParseRecoveryData: the decoder of POST /bip340/recover's untrusted
// input never panics, and what it accepts re-encodes to the same bytes.
// Recover on it never panics either.
func FuzzParseRecoveryData(f *testing.F) {
	id, err := envelope.GenerateIdentity()
	if err != nil {
		f.Fatal(err)
	}
	rd := &RecoveryData{Kind: envelope.KindImport, Room: "room", T: 1, Parties: []envelope.Party{id.Public()}, Deal: []byte("deal")}
	f.Add(rd.Marshal())
	rd.Cert = Certificate{{1}}
	f.Add(rd.Marshal())
	f.Add([]byte("QRD2"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ParseRecoveryData(b)
		if err != nil {
			return
		}
		if !bytes.Equal(got.Marshal(), b) {
			t.Fatalf("accepted %x, re-encodes to %x", b, got.Marshal())
		}
		if ks, _, err := Recover(id, b); err == nil {
			ks.Share.Zero()
		}
	})
}
