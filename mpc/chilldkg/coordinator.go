package chilldkg

import (
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"
)

// The coordinator's functions are pure: they see only public messages, so
// any party can run them on the broadcast first messages and compare the
// result with what the coordinator sent (no trusted coordinator needed).
// Variable time; no secret is involved.

// CoordinatorState is the coordinator's state between CoordinatorStep1 and
// CoordinatorFinalize.
type CoordinatorState struct {
	params  SessionParams
	eqInput []byte
	output  *DKGOutput
}

// parsePmsgs1 parses every first message, blaming the sender of an
// undecodable one.
func parsePmsgs1(pmsgs1 [][]byte, t, n int) ([]*pmsg1, error) {
	ms := make([]*pmsg1, len(pmsgs1))
	for i, b := range pmsgs1 {
		m, err := parsePmsg1(b, t, n)
		var pe *parseError
		if errors.As(err, &pe) {
			return nil, &FaultyParticipantError{ParticipantID: i, Msg: pe.msg}
		}
		if err != nil {
			return nil, err
		}
		ms[i] = m
	}
	return ms, nil
}

// CoordinatorStep1 aggregates the participants' first messages (in id
// order) into the message every participant receives (CoordinatorMsg1Len(t,
// n) bytes): the commitments to the secrets and pops as they are, the other
// commitment terms summed, the public nonces, and for each participant the
// sum of the shares encrypted to it.
//
// Errors: the session-parameter errors, ErrInvalidInput (wrong count or
// length), *FaultyParticipantError (an undecodable message).
func CoordinatorStep1(pmsgs1 [][]byte, params SessionParams) (*CoordinatorState, []byte, error) {
	if err := params.validate(); err != nil {
		return nil, nil, err
	}
	t, n := params.T, len(params.HostPubkeys)
	if len(pmsgs1) != n {
		return nil, nil, invalidInput("%d first messages for %d participants", len(pmsgs1), n)
	}
	ms, err := parsePmsgs1(pmsgs1, t, n)
	if err != nil {
		return nil, nil, err
	}
	c := &cmsg1{
		comsToSecrets: make([]point, n),
		sumNonconst:   make([]point, t-1),
		pops:          make([][]byte, n),
		pubnonces:     make([][]byte, n),
		encSecshares:  make([]btcec.ModNScalar, n),
	}
	for i, m := range ms {
		c.comsToSecrets[i] = m.com[0]
		for k := 1; k < t; k++ {
			c.sumNonconst[k-1].add(&c.sumNonconst[k-1], &m.com[k])
		}
		c.pops[i] = m.pop
		c.pubnonces[i] = m.pubnonce
		for j := range n {
			c.encSecshares[j].Add(&m.encShares[j])
		}
	}
	sumComs := assembleSumComs(c.comsToSecrets, c.sumNonconst)
	tweaked, _, _, err := sumComs.tweaked()
	if err != nil {
		// Σ com_i[0] = ∞ needs a participant that cancelled the others' keys;
		// the pops (checked by the participants) make that infeasible.
		return nil, nil, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	out, err := publicOutput(tweaked, n, -1, nil)
	if err != nil {
		return nil, nil, err
	}
	params = cloneParams(params)
	st := &CoordinatorState{
		params:  params,
		eqInput: eqInput(t, sumComs, params.HostPubkeys, c.pubnonces, c.encSecshares),
		output:  out,
	}
	return st, c.bytes(), nil
}

// CoordinatorFinalize collects the participants' second messages (CertEq
// signatures, in id order), checks them and returns the success certificate
// to broadcast (64·n bytes), the public DKG output (no secret share) and the
// recovery data.
//
// Errors: ErrInvalidInput (wrong count or length), *FaultyParticipantError
// naming the first participant whose signature is invalid.
func CoordinatorFinalize(st *CoordinatorState, pmsgs2 [][]byte) ([]byte, *DKGOutput, RecoveryData, error) {
	if st == nil {
		return nil, nil, nil, invalidInput("nil state")
	}
	n := len(st.params.HostPubkeys)
	if len(pmsgs2) != n {
		return nil, nil, nil, invalidInput("%d second messages for %d participants", len(pmsgs2), n)
	}
	cert := make([]byte, 0, CoordinatorMsg2Len(n))
	for i, m := range pmsgs2 {
		if len(m) != ParticipantMsg2Len {
			return nil, nil, nil, invalidInput("second message of participant %d is %d bytes, want 64", i, len(m))
		}
		cert = append(cert, m...)
	}
	if bad := verifyCert(st.params.HostPubkeys, st.eqInput, cert); bad >= 0 {
		return nil, nil, nil, &FaultyParticipantError{ParticipantID: bad, Msg: "Participant has provided an invalid signature for the certificate"}
	}
	rd := make(RecoveryData, 0, len(st.eqInput)+len(cert))
	rd = append(append(rd, st.eqInput...), cert...)
	return cert, st.output.clone(), rd, nil
}

// CoordinatorInvestigate returns the investigation message for every
// participant (65·n bytes each, public: it may be broadcast): the shares
// each sender encrypted to that participant and the matching partial public
// shares from each sender's commitment.
//
// Errors: ErrInvalidInput (length), *FaultyParticipantError (an undecodable
// message).
func CoordinatorInvestigate(pmsgs1 [][]byte, params SessionParams) ([][]byte, error) {
	n, t := len(pmsgs1), params.T
	if t < 1 {
		return nil, invalidInput("threshold %d", t)
	}
	ms, err := parsePmsgs1(pmsgs1, t, n)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, n)
	for i := range n {
		c := &cinv{encPartial: make([]btcec.ModNScalar, n), partialPubshares: make([]point, n)}
		for j, m := range ms {
			c.encPartial[j] = m.encShares[i]
			c.partialPubshares[j] = m.com.pubshare(i)
		}
		out[i] = c.bytes()
	}
	return out, nil
}
