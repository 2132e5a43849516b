package chilldkg

import (
	"bytes"
	"errors"

	"github.com/btcsuite/btcd/btcec/v2"
)

// ParticipantState1 is a participant's state between ParticipantStep1 and
// ParticipantStep2. It holds no secret; it must be used for one step 2 only.
type ParticipantState1 struct {
	params   SessionParams
	id       int
	com0     point // own commitment to the secret, to detect substitution
	pubnonce []byte
}

// ID returns this participant's identifier (its index in the host keys).
func (s *ParticipantState1) ID() int { return s.id }

// ParticipantState2 is a participant's state between ParticipantStep2 and
// ParticipantFinalize. It holds the (not yet certified) secret share: pass
// it to one ParticipantFinalize, then Zero it.
type ParticipantState2 struct {
	params  SessionParams
	eqInput []byte
	output  *DKGOutput
}

// Zero erases the secret share held in the state.
func (s *ParticipantState2) Zero() { s.output.Zero() }

// Pending returns a copy of the output this participant will return from
// ParticipantFinalize once the success certificate arrives. It is NOT yet
// deemed successful: callers may store it prepared (sealed, unusable) so a
// certificate can later activate it, never use it before that. The copy
// holds the secret share: Zero it when done.
func (s *ParticipantState2) Pending() *DKGOutput { return s.output.clone() }

// investigationData is what ParticipantInvestigate needs after a bad share:
// the received (untweaked) secret share, its expected public share, the
// encrypted share and the pads of every sender. Secret except pubshare.
type investigationData struct {
	n, id       int
	secshare    btcec.ModNScalar
	pubshare    point
	encSecshare btcec.ModNScalar
	pads        []btcec.ModNScalar
}

func (d *investigationData) zero() {
	d.secshare.Zero()
	d.encSecshare.Zero()
	zeroScalars(d.pads)
}

func cloneParams(p SessionParams) SessionParams {
	c := SessionParams{T: p.T, HostPubkeys: make([][]byte, len(p.HostPubkeys))}
	for i, pk := range p.HostPubkeys {
		c.HostPubkeys[i] = append([]byte(nil), pk...)
	}
	return c
}

// ParticipantStep1 is the participant's first step: it derives this
// session's polynomial, encryption nonce and pop from hostseckey and the
// fresh 32-byte random, and returns the state and the first message for the
// coordinator (ParticipantMsg1Len(t, n) bytes).
//
// Errors: ErrInvalidInput (lengths), *HostSeckeyError (invalid key, or not
// one of the host keys), the session-parameter errors, *RandomnessError.
// Constant time in hostseckey, the seed and everything derived from it.
func ParticipantStep1(hostseckey []byte, params SessionParams, random []byte) (*ParticipantState1, []byte, error) {
	hk, err := parseHostSeckey(hostseckey)
	if err != nil {
		return nil, nil, err
	}
	defer hk.Zero()
	hostpubkey := pubkeyOf(hk)
	if err := params.validate(); err != nil {
		return nil, nil, err
	}
	id := params.index(hostpubkey[:])
	if id < 0 {
		return nil, nil, &HostSeckeyError{Msg: "Host secret key does not match any host public key"}
	}
	if len(random) != RandomSize {
		return nil, nil, invalidInput("randomness is %d bytes, want 32", len(random))
	}
	if isZeros(random) {
		return nil, nil, &RandomnessError{}
	}
	params = cloneParams(params)
	t, n := params.T, len(params.HostPubkeys)

	// EncPedPop: the SimplPedPop seed and the encryption nonce both come from
	// seed ‖ random ‖ context, so fresh randomness or a new context never
	// reuses pads with different shares. ChillDKG's seed is the host key.
	ctx := encContext(t, params.HostPubkeys)
	simplSeed := taggedHash("encpedpop seed", hostseckey, random, ctx)
	defer clear(simplSeed[:])
	auxRand := taggedHash("simplpedpop aux", simplSeed[:])
	defer clear(auxRand[:])
	nonceBytes := taggedHash("encpedpop secnonce", simplSeed[:])
	defer clear(nonceBytes[:])
	var secnonce btcec.ModNScalar
	defer secnonce.Zero()
	if secnonce.SetBytes(&nonceBytes) != 0 || secnonce.IsZero() {
		return nil, nil, errDerivation
	}
	pubnonce := pubkeyOf(&secnonce)

	// SimplPedPop: the dealing and its proof of possession.
	f, err := vssGenerate(&simplSeed, t)
	if err != nil {
		return nil, nil, err
	}
	defer f.zero()
	shares := f.shares(n)
	defer zeroScalars(shares)
	pop, err := popSign(&f[0], id, &auxRand)
	if err != nil {
		return nil, nil, err
	}
	com := f.commit()

	enc, err := encryptShares(&secnonce, pubnonce[:], (*[32]byte)(hostseckey), params.HostPubkeys, ctx, id, shares)
	if err != nil {
		return nil, nil, err
	}
	msg := (&pmsg1{com: com, pop: pop[:], pubnonce: pubnonce[:], encShares: enc}).bytes()
	st := &ParticipantState1{params: params, id: id, com0: com[0], pubnonce: pubnonce[:]}
	return st, msg, nil
}

// ParticipantStep2 is the participant's second step: it decrypts its share
// from the coordinator's first message cmsg1, checks every pop and its share
// against the summed commitment, and signs the transcript. It returns the
// state for ParticipantFinalize and the 64-byte second message.
//
// After sending that message the caller must keep hostseckey: another
// participant may finish and later present recovery data.
//
// Errors: ErrInvalidInput (lengths), *HostSeckeyError (not the key of step
// 1), *FaultyCoordinatorError, *FaultyParticipantOrCoordinatorError (with
// the suspected id), *UnknownFaultyParticipantOrCoordinatorError (a bad
// share: run ParticipantInvestigate). Constant time in hostseckey, the pads
// and the share.
func ParticipantStep2(hostseckey []byte, st *ParticipantState1, cmsg1Bytes []byte, auxRand []byte) (*ParticipantState2, []byte, error) {
	hk, err := parseHostSeckey(hostseckey)
	if err != nil {
		return nil, nil, err
	}
	defer hk.Zero()
	if len(auxRand) != RandomSize {
		return nil, nil, invalidInput("aux randomness is %d bytes, want 32", len(auxRand))
	}
	if st == nil {
		return nil, nil, invalidInput("nil state")
	}
	hostpubkey := pubkeyOf(hk)
	params, id := st.params, st.id
	if !bytes.Equal(hostpubkey[:], params.HostPubkeys[id]) {
		return nil, nil, &HostSeckeyError{Msg: "Host secret key does not match the one used in participant_step1"}
	}
	t, n := params.T, len(params.HostPubkeys)
	m, err := parseCmsg1(cmsg1Bytes, t, n)
	if err != nil {
		return nil, nil, coordinatorParseBlame(err)
	}

	// EncPedPop: decrypt the aggregated share.
	if !bytes.Equal(m.pubnonces[id], st.pubnonce) {
		return nil, nil, &FaultyCoordinatorError{Msg: "Coordinator replied with wrong pubnonce"}
	}
	ctx := encContext(t, params.HostPubkeys)
	pads, err := decryptPads(hk, (*[32]byte)(hostseckey), params.HostPubkeys[id], m.pubnonces, ctx, id)
	if err != nil {
		return nil, nil, err
	}
	var secshare btcec.ModNScalar
	defer secshare.Zero()
	padSum := sumScalars(pads)
	secshare.NegateVal(&padSum).Add(&m.encSecshares[id])
	padSum.Zero()

	// SimplPedPop: check the coordinator's aggregate and every pop.
	if !m.comsToSecrets[id].equal(&st.com0) {
		zeroScalars(pads)
		return nil, nil, &FaultyCoordinatorError{Msg: "Coordinator sent unexpected first group element for local participant id"}
	}
	for i := range n {
		if i == id {
			continue
		}
		if m.comsToSecrets[i].isInfinity() {
			zeroScalars(pads)
			return nil, nil, &FaultyParticipantOrCoordinatorError{ParticipantID: i, Msg: "Participant sent invalid commitment"}
		}
		if !popVerify(m.pops[i], &m.comsToSecrets[i], i) {
			zeroScalars(pads)
			return nil, nil, &FaultyParticipantOrCoordinatorError{ParticipantID: i, Msg: "Participant sent invalid proof-of-knowledge"}
		}
	}
	sumComs := assembleSumComs(m.comsToSecrets, m.sumNonconst)
	tweaked, tweak, tweakPt, err := sumComs.tweaked()
	if err != nil {
		zeroScalars(pads)
		return nil, nil, &FaultyCoordinatorError{Msg: err.Error()}
	}
	// Checking the tweaked share against the tweaked pubshare is equivalent
	// and saves computing the untweaked pubshare on the happy path.
	myPubshare := tweaked.pubshare(id)
	var secTweaked btcec.ModNScalar
	defer secTweaked.Zero()
	secTweaked.Set(&secshare).Add(&tweak)
	if !verifySecshare(&secTweaked, &myPubshare) {
		var neg, untweaked point
		neg.j = tweakPt.j
		neg.j.ToAffine()
		neg.j.Y.Negate(1).Normalize()
		untweaked.add(&myPubshare, &neg)
		inv := &investigationData{n: n, id: id, pubshare: untweaked, pads: pads}
		inv.secshare.Set(&secshare)
		inv.encSecshare.Set(&m.encSecshares[id])
		return nil, nil, &UnknownFaultyParticipantOrCoordinatorError{
			Msg: "Received invalid secshare; consider using participant_investigate() to determine a faulty party",
			inv: inv,
		}
	}
	zeroScalars(pads)

	out, err := publicOutput(tweaked, n, id, &myPubshare)
	if err != nil {
		return nil, nil, err
	}
	sb := secTweaked.Bytes()
	out.Secshare = sb[:]

	eq := eqInput(t, sumComs, params.HostPubkeys, m.pubnonces, m.encSecshares)
	sig, err := signPrefixed(hk, hostpubkey[:], "certeq message", id, eq, auxRand)
	if err != nil {
		out.Zero()
		return nil, nil, err
	}
	return &ParticipantState2{params: params, eqInput: eq, output: out}, sig, nil
}

// coordinatorParseBlame turns a parse error in a coordinator message into
// blame of the coordinator; length errors stay ErrInvalidInput.
func coordinatorParseBlame(err error) error {
	var pe *parseError
	if errors.As(err, &pe) {
		return &FaultyCoordinatorError{Msg: pe.msg}
	}
	return err
}

// ParticipantFinalize is the participant's last step: it verifies the
// success certificate cmsg2 (64·n bytes) over its own transcript and, if
// every signature is valid, returns the DKG output and the recovery data.
// From then on this participant deems the session successful.
//
// Errors: ErrInvalidInput (length), *FaultyCoordinatorError (the coordinator
// checked the signatures, so a bad one is its fault). An error does not mean
// the session failed for others: keep hostseckey, recovery data may come.
func ParticipantFinalize(st *ParticipantState2, cmsg2 []byte) (*DKGOutput, RecoveryData, error) {
	if st == nil {
		return nil, nil, invalidInput("nil state")
	}
	n := len(st.params.HostPubkeys)
	if len(cmsg2) != CoordinatorMsg2Len(n) {
		return nil, nil, invalidInput("coordinator message 2 is %d bytes, want %d", len(cmsg2), CoordinatorMsg2Len(n))
	}
	if verifyCert(st.params.HostPubkeys, st.eqInput, cmsg2) >= 0 {
		return nil, nil, &FaultyCoordinatorError{Msg: "Coordinator has provided a certificate with an invalid signature"}
	}
	rd := make(RecoveryData, 0, len(st.eqInput)+len(cmsg2))
	rd = append(append(rd, st.eqInput...), cmsg2...)
	return st.output.clone(), rd, nil
}

// ParticipantInvestigate finds whom to blame after ParticipantStep2 returned
// *UnknownFaultyParticipantOrCoordinatorError, from the coordinator's
// investigation message for this participant (65·n bytes). It always returns
// an error: *FaultyParticipantOrCoordinatorError naming the participant that
// sent a bad share, or *FaultyCoordinatorError; ErrInvalidInput for a
// malformed argument. It zeroes the secret data held in uerr.
//
// Constant time in the pads and the partial shares (each is checked with a
// constant-time multiplication); which check fails is the public outcome.
func ParticipantInvestigate(uerr *UnknownFaultyParticipantOrCoordinatorError, cinvBytes []byte) error {
	if uerr == nil || uerr.inv == nil {
		return invalidInput("no investigation data (already investigated?)")
	}
	inv := uerr.inv
	defer uerr.Zero()
	m, err := parseCinv(cinvBytes, inv.n)
	if err != nil {
		return coordinatorParseBlame(err)
	}
	partial := make([]btcec.ModNScalar, inv.n)
	defer zeroScalars(partial)
	for j := range partial {
		var negPad btcec.ModNScalar
		negPad.NegateVal(&inv.pads[j])
		partial[j].Set(&m.encPartial[j]).Add(&negPad)
		negPad.Zero()
	}
	if pp := sumPoints(m.partialPubshares); !pp.equal(&inv.pubshare) {
		return &FaultyCoordinatorError{Msg: "Sum of partial pubshares not equal to pubshare"}
	}
	sum := sumScalars(partial)
	same := sum.Equals(&inv.secshare)
	sum.Zero()
	if !same {
		// Encryption is additively homomorphic, so the plaintexts disagree
		// only if the coordinator's sum of ciphertexts was wrong.
		return &FaultyCoordinatorError{Msg: "Sum of encrypted partial secshares not equal to encrypted secshare"}
	}
	for j := range partial {
		if !verifySecshare(&partial[j], &m.partialPubshares[j]) {
			if j != inv.id {
				return &FaultyParticipantOrCoordinatorError{ParticipantID: j, Msg: "Participant sent invalid partial secshare"}
			}
			return &FaultyCoordinatorError{Msg: "Coordinator fiddled with the share from me to myself"}
		}
	}
	return ErrNoFault
}
