package chilldkg

import "github.com/quorumd/quorumd/mpc/bip340"

// EqInput returns the public transcript this participant signed in step 2
// (CertEq's input): what every signature of the success certificate covers.
func (s *ParticipantState2) EqInput() []byte { return append([]byte(nil), s.eqInput...) }

// CertEqVerify reports whether sig is the CertEq signature of participant id
// (host key hostpubkey) over eqInput: one signature of a certificate, checked
// as it arrives rather than once all n are in.
func CertEqVerify(hostpubkey []byte, id int, eqInput, sig []byte) bool {
	if len(hostpubkey) != HostPubkeySize || len(sig) != ParticipantMsg2Len {
		return false
	}
	return bip340.Verify(hostpubkey[1:], prefixedMsg("certeq message", id, eqInput), sig) == nil
}
