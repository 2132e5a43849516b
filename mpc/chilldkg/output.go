package chilldkg

import (
	"github.com/btcsuite/btcd/btcec/v2"
)

// DKGOutput is what a successful session yields: this participant's secret
// share (nil for the coordinator), the threshold public key and every
// participant's public share (33-byte compressed each). The secret share
// satisfies the BIP445 convention: participant id holds f(id+1).
type DKGOutput struct {
	Secshare  []byte // 32 bytes, secret; nil for the coordinator
	ThreshPK  []byte
	Pubshares [][]byte
}

// Zero erases the secret share.
func (o *DKGOutput) Zero() {
	if o != nil {
		clear(o.Secshare)
	}
}

func (o *DKGOutput) clone() *DKGOutput {
	c := &DKGOutput{ThreshPK: append([]byte(nil), o.ThreshPK...), Pubshares: make([][]byte, len(o.Pubshares))}
	if o.Secshare != nil {
		c.Secshare = append([]byte(nil), o.Secshare...)
	}
	for i, p := range o.Pubshares {
		c.Pubshares[i] = append([]byte(nil), p...)
	}
	return c
}

// RecoveryData is the session's transcript followed by its success
// certificate; the same for every participant and the coordinator, public
// (secrets appear only encrypted), and enough with a host secret key to
// rebuild that participant's DKGOutput (ParticipantRecover).
type RecoveryData []byte

// assembleSumComs is (Σ comsToSecrets, sumNonconst...), the commitment to
// the sum of all participants' polynomials.
func assembleSumComs(comsToSecrets, sumNonconst []point) commitment {
	c := make(commitment, 1+len(sumNonconst))
	c[0] = sumPoints(comsToSecrets)
	copy(c[1:], sumNonconst)
	return c
}

// publicOutput computes the threshold key and all n public shares from the
// tweaked summed commitment; known, if non-nil, is pubshare[knownID]
// computed already. Public data, variable time.
func publicOutput(tweaked commitment, n int, knownID int, known *point) (*DKGOutput, error) {
	o := &DKGOutput{Pubshares: make([][]byte, n)}
	tpk, ok := tweaked[0].bytesCompressed()
	if !ok {
		return nil, &FaultyCoordinatorError{Msg: "threshold public key is the point at infinity"}
	}
	o.ThreshPK = tpk[:]
	for i := range n {
		var ps point
		if i == knownID && known != nil {
			ps = *known
		} else {
			ps = tweaked.pubshare(i)
		}
		b, ok := ps.bytesCompressed()
		if !ok {
			// Only a faulty party can make a public share infinity; the spec
			// cannot serialise it either.
			return nil, &FaultyCoordinatorError{Msg: "public share is the point at infinity"}
		}
		o.Pubshares[i] = b[:]
	}
	return o, nil
}

// eqInput is the CertEq transcript: t ‖ sum_coms ‖ hostpubkeys ‖ pubnonces ‖
// enc_secshares.
func eqInput(t int, sumComs commitment, hostpubkeys, pubnonces [][]byte, encSecshares []btcec.ModNScalar) []byte {
	n := len(hostpubkeys)
	b := make([]byte, 0, 4+33*t+98*n)
	b = append(b, be32(t)...)
	b = sumComs.appendBytes(b)
	for _, pk := range hostpubkeys {
		b = append(b, pk...)
	}
	for _, pn := range pubnonces {
		b = append(b, pn...)
	}
	return appendScalars(b, encSecshares)
}
