package frost

import (
	"errors"
	"slices"

	"github.com/btcsuite/btcd/btcec/v2"
)

// Session is one signing session as seen by a party that holds every
// signer's public nonce (a signer in a ceremony, or a coordinator): the
// spec's NonceAgg, GetSessionValues, Sign, PartialSigVerify and
// PartialSigAgg on one session, with what they share computed once. Each
// public nonce is decoded once, and each signer's Re_i = R1_i + b·R2_i is
// computed once: Sign's self-check and PartialSigVerify of signer i use it,
// and R = Σ Re_i (= R1 + b·R2 of the aggregate nonce) needs no
// multiplication of its own. Every check the spec functions make is made;
// only recomputations of the same values from the same public inputs are
// saved. All public data (variable time). Not safe for concurrent use.
type Session struct {
	ctx       SessionCtx
	sv        *sessionValues
	pubnonces []PubNonce
	re        []btcec.JacobianPoint // Re_i per signer, normalized Jacobian
}

// NewSession aggregates pubnonces (in the order of signers.IDs) and
// computes the session values. It fails as PartialSigVerify would:
// an invalid signers context, a nonce count that is not the signer
// count, or an undecodable nonce (blamed on its index, as NonceAgg does).
func NewSession(signers *SignersCtx, pubnonces []PubNonce, tweaks []Tweak, msg []byte) (*Session, error) {
	return NewSignerSession(signers, pubnonces, tweaks, msg, nil)
}

// NewSignerSession is NewSession for the signer holding own, whose public
// nonce among pubnonces need not be decoded: its points are own's.
func NewSignerSession(signers *SignersCtx, pubnonces []PubNonce, tweaks []Tweak, msg []byte, own *SecNonce) (*Session, error) {
	var ownPub PubNonce
	var ownPoints [2]btcec.JacobianPoint
	if own != nil {
		ownPub, ownPoints = own.public()
	}
	vc, err := validateSignersCtx(signers)
	if err != nil {
		return nil, err
	}
	u := len(signers.IDs)
	if len(pubnonces) != u {
		return nil, inputErr(ErrPubNoncesLength)
	}
	// NonceAgg, keeping the decoded points.
	r1s := make([]btcec.JacobianPoint, u)
	r2s := make([]btcec.JacobianPoint, u)
	var r1, r2 btcec.JacobianPoint
	for j, rs := range [2][]btcec.JacobianPoint{r1s, r2s} {
		var agg btcec.JacobianPoint
		for i := range pubnonces {
			// (A zero secret nonce half, reachable only from vectors, has
			// no point: it is decoded, and refused, as anyone's.)
			p, ok := ownPoints[j], own != nil && pubnonces[i] == ownPub && !isInfinity(&ownPoints[j])
			if !ok {
				p, ok = cpoint(pubnonces[i][j*33 : (j+1)*33])
			}
			if !ok {
				return nil, &InvalidContributionError{Signer: i, Contrib: ContribPubNonce}
			}
			rs[i] = p
			agg = addPublic(&agg, &p)
		}
		if j == 0 {
			r1 = affine(agg)
		} else {
			r2 = affine(agg)
		}
	}
	var aggnonce AggNonce
	e1, e2 := cbytesExt(&r1), cbytesExt(&r2)
	copy(aggnonce[:33], e1[:])
	copy(aggnonce[33:], e2[:])

	s := &Session{
		ctx:       SessionCtx{Signers: *signers, AggNonce: aggnonce, Tweaks: tweaks, Msg: msg},
		pubnonces: slices.Clone(pubnonces),
	}
	tc, err := tweakCtxValidated(vc, signers.ThreshPK, tweaks)
	if err != nil {
		return nil, err
	}
	sv := &sessionValues{
		q: tc.q, gacc: tc.gacc, tacc: tc.tacc, vc: vc,
		ids: slices.Clone(signers.IDs), pubshares: slices.Clone(signers.PubShares),
	}
	qx := xbytes(&sv.q)
	sv.b = nonceCoef(sv.ids, &aggnonce, &qx, msg)
	if sv.b.IsZero() {
		return nil, errors.New("frost: nonce coefficient is zero")
	}
	// R = R1 + b·R2 = Σ (R1_i + b·R2_i): one b·R2_i per signer, each needed
	// anyway to verify that signer's partial signature.
	s.re = make([]btcec.JacobianPoint, u)
	var r btcec.JacobianPoint
	for i := range u {
		br2 := mulPublic(&sv.b, &r2s[i])
		s.re[i] = addPublic(&r1s[i], &br2)
		r = addPublic(&r, &s.re[i])
	}
	sv.r = affine(r)
	if isInfinity(&sv.r) {
		sv.r = generatorAffn
	}
	sv.e = challenge(&sv.r, &qx, msg)
	if sv.e.IsZero() {
		return nil, errors.New("frost: challenge is zero")
	}
	s.sv = sv
	return s, nil
}

// Ctx returns the session context (with the aggregate nonce), for the
// spec-level functions. Callers must not modify it.
func (s *Session) Ctx() *SessionCtx { return &s.ctx }

// AggNonce returns the aggregate nonce.
func (s *Session) AggNonce() AggNonce { return s.ctx.AggNonce }

// Sign is Sign (the spec's, with its self-check) for the signer myID,
// whose public nonce in the session must be secnonce's for the self-check
// to reuse its Re. secnonce is consumed whatever the outcome. Constant time
// in secshare and the secret nonce, as Sign.
func (s *Session) Sign(secnonce *SecNonce, secshare *btcec.ModNScalar, myID uint32) (PartialSig, error) {
	var k1, k2 btcec.ModNScalar
	defer k1.Zero()
	defer k2.Zero()
	noncePoints, pub, err := secnonce.take(&k1, &k2)
	if err != nil {
		return PartialSig{}, err
	}
	var re *btcec.JacobianPoint
	if i := slices.Index(s.sv.ids, myID); i >= 0 && s.pubnonces[i] == pub {
		re = &s.re[i]
	}
	return signWith(s.sv, &k1, &k2, &noncePoints, re, secshare, myID)
}

// Verify is PartialSigVerify of signer i's (index in the signer set)
// partial signature: an invalid one yields an *InvalidContributionError
// {Signer: i, Contrib: ContribPsig} wrapping ErrPartialSigInvalid.
func (s *Session) Verify(psig PartialSig, i int) error {
	if i < 0 || i >= len(s.sv.ids) {
		return inputErr(ErrSignerIndex)
	}
	v, ok := scalarChecked(psig[:])
	if ok {
		if err := verifyPartialRe(s.sv, &v, s.sv.ids[i], &s.re[i], &s.sv.vc.points[i]); err == nil {
			return nil
		}
	}
	return &InvalidContributionError{Signer: i, Contrib: ContribPsig, Err: ErrPartialSigInvalid}
}

// Agg is PartialSigAgg: psigs in signer-set order, unverified (see Verify);
// verify the result before releasing it.
func (s *Session) Agg(psigs []PartialSig) (Signature, error) {
	return partialSigAgg(s.sv, psigs)
}
