package chilldkg

import (
	"bytes"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/bip340"
)

// recovery is decoded recovery data.
type recovery struct {
	t            int
	sumComs      commitment
	hostpubkeys  [][]byte
	pubnonces    [][]byte
	encSecshares []btcec.ModNScalar
	eqInput      []byte
	cert         []byte
}

// perParticipant is the recovery data's size per participant: host key,
// public nonce, encrypted share and certificate signature.
const perParticipant = 33 + 33 + 32 + 64

func decodeRecoveryData(b []byte) (*recovery, error) {
	if len(b) < 4 {
		return nil, invalidInput("recovery data shorter than 4 bytes")
	}
	t64 := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
	rest := b[4:]
	if uint64(len(rest)) < 33*t64 {
		return nil, invalidInput("recovery data too short for t=%d", t64)
	}
	t := int(t64)
	sc, err := parseCommitment(rest[:33*t], t)
	if err != nil {
		return nil, err
	}
	rest = rest[33*t:]
	if len(rest)%perParticipant != 0 {
		return nil, invalidInput("recovery data has a partial participant record")
	}
	n := len(rest) / perParticipant
	r := &recovery{t: t, sumComs: sc}
	r.hostpubkeys = splitFixed(rest[:33*n], 33, n)
	rest = rest[33*n:]
	r.pubnonces = splitFixed(rest[:33*n], 33, n)
	rest = rest[33*n:]
	var ok bool
	if r.encSecshares, ok = parseScalars(rest[:32*n], n); !ok {
		return nil, invalidInput("encrypted share not below the group order")
	}
	r.cert = rest[32*n:]
	r.eqInput = b[:len(b)-len(r.cert)]
	return r, nil
}

// recoverOutput is the spec's recover: hostseckey nil recovers the
// coordinator's (public) output.
func recoverOutput(hostseckey []byte, rd RecoveryData) (*DKGOutput, SessionParams, error) {
	r, err := decodeRecoveryData(rd)
	if err != nil {
		return nil, SessionParams{}, &RecoveryDataError{Msg: "Failed to deserialize recovery data", Err: err}
	}
	params := SessionParams{HostPubkeys: r.hostpubkeys, T: r.t}
	if err := params.validate(); err != nil {
		return nil, SessionParams{}, &RecoveryDataError{Msg: "Invalid session parameters in recovery data", Err: err}
	}
	if verifyCert(r.hostpubkeys, r.eqInput, r.cert) >= 0 {
		return nil, SessionParams{}, &RecoveryDataError{Msg: "Invalid certificate in recovery data"}
	}
	n := len(r.hostpubkeys)
	tweaked, tweak, _, err := r.sumComs.tweaked()
	if err != nil {
		return nil, SessionParams{}, &RecoveryDataError{Msg: "Invalid threshold public key in recovery data", Err: err}
	}
	out, err := publicOutput(tweaked, n, -1, nil)
	if err != nil {
		return nil, SessionParams{}, &RecoveryDataError{Msg: "Invalid public shares in recovery data", Err: err}
	}
	params = cloneParams(params)
	if hostseckey == nil {
		return out, params, nil
	}

	hk, err := parseHostSeckey(hostseckey)
	if err != nil {
		return nil, SessionParams{}, err
	}
	defer hk.Zero()
	hostpubkey := pubkeyOf(hk)
	id := params.index(hostpubkey[:])
	if id < 0 {
		return nil, SessionParams{}, &HostSeckeyError{Msg: "Host secret key does not match any host public key in the recovery data"}
	}
	pads, err := decryptPads(hk, (*[32]byte)(hostseckey), params.HostPubkeys[id], r.pubnonces, encContext(r.t, params.HostPubkeys), id)
	if err != nil {
		return nil, SessionParams{}, &RecoveryDataError{Msg: "Invalid public nonce in recovery data", Err: err}
	}
	var sec btcec.ModNScalar
	defer sec.Zero()
	padSum := sumScalars(pads)
	zeroScalars(pads)
	sec.NegateVal(&padSum).Add(&r.encSecshares[id]).Add(&tweak)
	padSum.Zero()
	// Our own signature in the certificate says we checked this share during
	// the session; failing here means the data was not made by us.
	ps, _ := parsePoint(out.Pubshares[id])
	if !verifySecshare(&sec, &ps) {
		return nil, SessionParams{}, &RecoveryDataError{Msg: "Recovered secret share does not match its public share"}
	}
	sb := sec.Bytes()
	out.Secshare = sb[:]
	return out, params, nil
}

// ParticipantRecover rebuilds a participant's DKG output and the session
// parameters from its host secret key and the session's recovery data: after
// a failed ParticipantFinalize, or on a new device from a backup.
//
// Errors: ErrInvalidInput (key length), *HostSeckeyError (invalid key or not
// in the session), *RecoveryDataError. Constant time in hostseckey and the
// recovered share.
func ParticipantRecover(hostseckey []byte, rd RecoveryData) (*DKGOutput, SessionParams, error) {
	if hostseckey == nil {
		return nil, SessionParams{}, invalidInput("nil host secret key")
	}
	return recoverOutput(hostseckey, rd)
}

// CoordinatorRecover rebuilds the coordinator's (public) DKG output and the
// session parameters from recovery data. Errors: *RecoveryDataError.
func CoordinatorRecover(rd RecoveryData) (*DKGOutput, SessionParams, error) {
	return recoverOutput(nil, rd)
}

// checkRecoveryParams decodes rd and checks it belongs to params.
func checkRecoveryParams(rd RecoveryData, params *SessionParams) error {
	r, err := decodeRecoveryData(rd)
	if err != nil {
		return &RecoveryDataError{Msg: "Failed to deserialize recovery data", Err: err}
	}
	if r.t != params.T || len(r.hostpubkeys) != len(params.HostPubkeys) {
		return &RecoveryDataError{Msg: "Recovery data does not match the provided session parameters"}
	}
	for i := range r.hostpubkeys {
		if !bytes.Equal(r.hostpubkeys[i], params.HostPubkeys[i]) {
			return &RecoveryDataError{Msg: "Recovery data does not match the provided session parameters"}
		}
	}
	return nil
}

// ParticipantRecoveryAckSign signs the recovery data with the host key (64
// bytes): the participant's acknowledgment that it holds the recovery data,
// to be collected before the threshold key is used. Constant time in
// hostseckey.
func ParticipantRecoveryAckSign(hostseckey []byte, rd RecoveryData, params SessionParams, auxRand []byte) ([]byte, error) {
	hk, err := parseHostSeckey(hostseckey)
	if err != nil {
		return nil, err
	}
	defer hk.Zero()
	hostpubkey := pubkeyOf(hk)
	if err := params.validate(); err != nil {
		return nil, err
	}
	id := params.index(hostpubkey[:])
	if id < 0 {
		return nil, &HostSeckeyError{Msg: "Host secret key does not match any host public key"}
	}
	if len(auxRand) != RandomSize {
		return nil, invalidInput("aux randomness is %d bytes, want 32", len(auxRand))
	}
	if err := checkRecoveryParams(rd, &params); err != nil {
		return nil, err
	}
	return signPrefixed(hk, hostpubkey[:], "recovery acknowledgment", id, rd, auxRand)
}

// ParticipantRecoveryAcksVerify checks every participant's recovery
// acknowledgment (in id order). *InvalidRecoveryAckError names the first
// participant whose acknowledgment is invalid; the session itself still
// succeeded. Public data, variable time.
func ParticipantRecoveryAcksVerify(rd RecoveryData, params SessionParams, acks [][]byte) error {
	if err := params.validate(); err != nil {
		return err
	}
	if len(acks) != len(params.HostPubkeys) {
		return invalidInput("%d acknowledgments for %d participants", len(acks), len(params.HostPubkeys))
	}
	if err := checkRecoveryParams(rd, &params); err != nil {
		return err
	}
	for i, sig := range acks {
		if len(sig) != 64 {
			return invalidInput("acknowledgment %d is %d bytes, want 64", i, len(sig))
		}
		if bip340.Verify(params.HostPubkeys[i][1:], prefixedMsg("recovery acknowledgment", i, rd), sig) != nil {
			return &InvalidRecoveryAckError{ParticipantID: i}
		}
	}
	return nil
}
