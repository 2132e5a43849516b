package frost

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"slices"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/internal/bounded"
	"github.com/quorumd/quorumd/mpc/secp"
)

// SessionCtx is the spec's Session Context: everything a signing session
// agrees on. Tweaks are applied in order to ThreshPK.
type SessionCtx struct {
	Signers  SignersCtx
	AggNonce AggNonce
	Tweaks   []Tweak
	Msg      []byte
}

// sessionValues is the output of GetSessionValues (all public).
type sessionValues struct {
	q          btcec.JacobianPoint // tweaked key, affine
	gacc, tacc btcec.ModNScalar
	vc         *validatedCtx
	ids        []uint32
	pubshares  []PubShare
	b          btcec.ModNScalar
	r          btcec.JacobianPoint // final nonce, affine, never infinity
	e          btcec.ModNScalar
}

// serializeIDs is SerializeIds: the sorted ids, 4 bytes big-endian each.
func serializeIDs(ids []uint32) []byte {
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	out := make([]byte, 0, 4*len(sorted))
	for _, id := range sorted {
		out = append(out, be4(id)...)
	}
	return out
}

// sessionCache holds computed session values, keyed by a hash of the whole
// session context.
var sessionCache = bounded.New[string, *sessionValues](64)

func sessionCacheKey(sess *SessionCtx) string {
	h := sha256.New()
	h.Write([]byte(signersCacheKey(&sess.Signers)))
	h.Write(sess.AggNonce[:])
	h.Write(be4(uint32(len(sess.Tweaks))))
	for _, tw := range sess.Tweaks {
		h.Write(tw.Value[:])
		if tw.XOnly {
			h.Write([]byte{1})
		} else {
			h.Write([]byte{0})
		}
	}
	h.Write(be8(uint64(len(sess.Msg))))
	h.Write(sess.Msg)
	return string(h.Sum(nil))
}

// getSessionValues is GetSessionValues. Public data only (variable time).
// The result is shared: callers must not modify it.
func getSessionValues(sess *SessionCtx) (*sessionValues, error) {
	key := sessionCacheKey(sess)
	if sv, ok := sessionCache.Get(key); ok {
		return sv, nil
	}
	sv, err := getSessionValuesUncached(sess)
	if err != nil {
		return nil, err
	}
	sessionCache.Put(key, sv)
	return sv, nil
}

func getSessionValuesUncached(sess *SessionCtx) (*sessionValues, error) {
	vc, err := validateSignersCtx(&sess.Signers)
	if err != nil {
		return nil, err
	}
	tc, err := tweakCtxValidated(vc, sess.Signers.ThreshPK, sess.Tweaks)
	if err != nil {
		return nil, err
	}
	sv := &sessionValues{
		q:         tc.q,
		gacc:      tc.gacc,
		tacc:      tc.tacc,
		vc:        vc,
		ids:       slices.Clone(sess.Signers.IDs),
		pubshares: slices.Clone(sess.Signers.PubShares),
	}
	qx := xbytes(&sv.q)
	sv.b = nonceCoef(sv.ids, &sess.AggNonce, &qx, sess.Msg)
	if sv.b.IsZero() {
		return nil, errors.New("frost: nonce coefficient is zero")
	}
	r1, ok1 := cpointExt(sess.AggNonce[:33])
	r2, ok2 := cpointExt(sess.AggNonce[33:])
	if !ok1 || !ok2 {
		return nil, &InvalidContributionError{Signer: CoordinatorCulprit, Contrib: ContribAggNonce}
	}
	br2 := mulPublic(&sv.b, &r2)
	sv.r = affine(addPublic(&r1, &br2))
	if isInfinity(&sv.r) {
		sv.r = generatorAffn
	}
	sv.e = challenge(&sv.r, &qx, sess.Msg)
	if sv.e.IsZero() {
		return nil, errors.New("frost: challenge is zero")
	}
	return sv, nil
}

// nonceCoef is b = hash_noncecoef(bytes(4, ·) || ser_ids || aggnonce ||
// xbytes(Q) || m). The spec text (v0.8.0) prefixes bytes(4, u); the v0.8.0
// test vectors, i.e. the reference implementation that produced them,
// prefix bytes(4, len(ser_ids)) = bytes(4, 4u). We follow the vectors so
// that partial signatures interoperate with the reference; both prefixes
// make the encoding of (ids, aggnonce, Q, m) injective.
func nonceCoef(ids []uint32, aggnonce *AggNonce, qx *[32]byte, msg []byte) btcec.ModNScalar {
	serIDs := serializeIDs(ids)
	h := taggedHasher(&tagNonceCoef)
	h.Write(be4(uint32(len(serIDs))))
	h.Write(serIDs)
	h.Write(aggnonce[:])
	h.Write(qx[:])
	h.Write(msg)
	var hb [32]byte
	sumInto(h, &hb)
	return scalarWrapping(&hb)
}

// challenge is the BIP340 challenge hash(xbytes(R) || xbytes(Q) || m) mod n.
func challenge(r *btcec.JacobianPoint, qx *[32]byte, msg []byte) btcec.ModNScalar {
	rx := xbytes(r)
	h := taggedHasher(&tagChallenge)
	h.Write(rx[:])
	h.Write(qx[:])
	h.Write(msg)
	var hb [32]byte
	sumInto(h, &hb)
	return scalarWrapping(&hb)
}

// Sign computes this signer's partial signature
// s = k1 + b·k2 + e·λ·d (with the spec's negations) and consumes secnonce:
// whatever the outcome, secnonce is zeroed and cannot be used again. The
// result is verified before it is returned. secshare is not modified.
//
// Constant time in secshare and the secret nonce: they meet only dcrd's
// constant-time ModNScalar arithmetic and secp.ScalarBaseMult; the only
// branches are on public values (parity of R and Q, gacc, public checks).
func Sign(secnonce *SecNonce, secshare *btcec.ModNScalar, myID uint32, sess *SessionCtx) (PartialSig, error) {
	var k1, k2 btcec.ModNScalar
	defer k1.Zero()
	defer k2.Zero()
	noncePoints, _, err := secnonce.take(&k1, &k2)
	if err != nil {
		return PartialSig{}, err
	}
	sv, err := getSessionValues(sess)
	if err != nil {
		return PartialSig{}, err
	}
	return signWith(sv, &k1, &k2, &noncePoints, nil, secshare, myID)
}

// signWith is Sign on extracted nonce scalars (and their public points) in
// the session sv; the caller zeroes k1, k2. re, when not nil, is this
// signer's R1 + b·R2, already computed from the same nonce points.
func signWith(sv *sessionValues, k1, k2 *btcec.ModNScalar, noncePoints *[2]btcec.JacobianPoint, re *btcec.JacobianPoint, secshare *btcec.ModNScalar, myID uint32) (PartialSig, error) {
	if k1.IsZero() {
		return PartialSig{}, inputErr(ErrSecNonce1OutOfRange)
	}
	if k2.IsZero() {
		return PartialSig{}, inputErr(ErrSecNonce2OutOfRange)
	}
	if secshare.IsZero() {
		return PartialSig{}, inputErr(ErrSecShareOutOfRange)
	}
	var p btcec.JacobianPoint
	secp.ScalarBaseMult(secshare, &p)
	myPubshare := PubShare(cbytes(&p))
	if !slices.Contains(sv.pubshares, myPubshare) {
		return PartialSig{}, inputErr(ErrPubShareNotInSet)
	}
	if !contains(sv.ids, myID) {
		return PartialSig{}, inputErr(ErrIDNotInSet)
	}
	lambda := sv.vc.lambda(sv.ids, myID)
	var el btcec.ModNScalar
	el.Mul2(&sv.e, &lambda)
	// d = g·gacc·d' with g, gacc ∈ {1, -1} public.
	negShare := hasEvenY(&sv.q) != sv.gacc.Equals(scalarOne)
	psig := partialSig(k1, k2, secshare, !hasEvenY(&sv.r), negShare, &sv.b, &el)
	// PartialSigVerifyInternal(psig, my_id, pubnonce, pubshare), on the points
	// behind pubnonce and pubshare that we already hold.
	ps, _ := scalarChecked(psig[:])
	if re == nil {
		r := nonceRe(sv, &noncePoints[0], &noncePoints[1])
		re = &r
	}
	if err := verifyPartialRe(sv, &ps, myID, re, &p); err != nil {
		return PartialSig{}, ErrSelfVerify
	}
	return psig, nil
}

// partialSig is the secret core of Sign: s = ±k1 + b·(±k2) + el·(±d) with
// el = e·λ. The negation flags and b, el are public. Constant time in k1, k2
// and d: only dcrd's constant-time ModNScalar operations touch them, and the
// branches depend on the public flags only. The inputs are not modified.
func partialSig(k1, k2, d *btcec.ModNScalar, negNonce, negShare bool, b, el *btcec.ModNScalar) PartialSig {
	var s, t btcec.ModNScalar
	defer s.Zero()
	defer t.Zero()
	t.Mul2(b, k2)
	s.Add2(k1, &t)
	if negNonce {
		s.Negate() // -(k1 + b·k2) = (-k1) + b·(-k2)
	}
	t.Mul2(el, d)
	if negShare {
		t.Negate()
	}
	s.Add(&t)
	return PartialSig(s.Bytes())
}

// PartialSigVerifyInternal checks psig of the signer (myID, pubnonce,
// pubshare) against the session. It returns ErrPartialSigInvalid if the
// signature does not verify, or the session's own error. Public data only.
func PartialSigVerifyInternal(psig PartialSig, myID uint32, pubnonce PubNonce, pubshare PubShare, sess *SessionCtx) error {
	sv, err := getSessionValues(sess)
	if err != nil {
		return err
	}
	return partialSigVerifyInternal(sv, psig, myID, pubnonce, pubshare)
}

func partialSigVerifyInternal(sv *sessionValues, psig PartialSig, myID uint32, pubnonce PubNonce, pubshare PubShare) error {
	s, ok := scalarChecked(psig[:])
	if !ok {
		return ErrPartialSigInvalid
	}
	j := slices.Index(sv.pubshares, pubshare)
	if j < 0 || !contains(sv.ids, myID) {
		return ErrPartialSigInvalid
	}
	r1, ok1 := cpoint(pubnonce[:33])
	r2, ok2 := cpoint(pubnonce[33:])
	if !ok1 || !ok2 {
		return ErrPartialSigInvalid
	}
	// P = cpoint(pubshare), already decoded when the context was validated.
	return verifyPartial(sv, &s, myID, &r1, &r2, &sv.vc.points[j])
}

// verifyPartial checks s·G = Re + e·λ·g·gacc·P for decoded inputs, myID in
// the signer set. Public data only.
func verifyPartial(sv *sessionValues, s *btcec.ModNScalar, myID uint32, r1, r2, p *btcec.JacobianPoint) error {
	re := nonceRe(sv, r1, r2)
	return verifyPartialRe(sv, s, myID, &re, p)
}

// nonceRe is a signer's R1 + b·R2 (before R's parity is applied).
func nonceRe(sv *sessionValues, r1, r2 *btcec.JacobianPoint) btcec.JacobianPoint {
	br2 := mulPublic(&sv.b, r2)
	return addPublic(r1, &br2)
}

// verifyPartialRe is verifyPartial given the signer's nonceRe.
func verifyPartialRe(sv *sessionValues, s *btcec.ModNScalar, myID uint32, reIn, p *btcec.JacobianPoint) error {
	re := *reIn
	if !hasEvenY(&sv.r) {
		re = negatePoint(&re)
	}
	lambda := sv.vc.lambda(sv.ids, myID)
	// c = e·λ·g·gacc
	var c btcec.ModNScalar
	c.Mul2(&sv.e, &lambda)
	if hasEvenY(&sv.q) != sv.gacc.Equals(scalarOne) {
		c.Negate()
	}
	lhs := baseMulPublic(s)
	cp := mulPublic(&c, p)
	rhs := addPublic(&re, &cp)
	if !jacobianEqual(&lhs, &rhs) {
		return ErrPartialSigInvalid
	}
	return nil
}

// PartialSigVerify verifies the partial signature of the signer at index i of
// the signer set (and of pubnonces). A signature that does not verify yields
// an *InvalidContributionError{Signer: i, Contrib: ContribPsig} wrapping
// ErrPartialSigInvalid; an undecodable nonce blames its sender. Public data
// only.
func PartialSigVerify(psig PartialSig, pubnonces []PubNonce, signers *SignersCtx, tweaks []Tweak, msg []byte, i int) error {
	if _, err := validateSignersCtx(signers); err != nil {
		return err
	}
	if len(pubnonces) != len(signers.IDs) {
		return inputErr(ErrPubNoncesLength)
	}
	if i < 0 || i >= len(signers.IDs) {
		return inputErr(ErrSignerIndex)
	}
	aggnonce, err := NonceAgg(pubnonces)
	if err != nil {
		return err
	}
	sess := &SessionCtx{Signers: *signers, AggNonce: aggnonce, Tweaks: tweaks, Msg: msg}
	err = PartialSigVerifyInternal(psig, signers.IDs[i], pubnonces[i], signers.PubShares[i], sess)
	if errors.Is(err, ErrPartialSigInvalid) {
		return &InvalidContributionError{Signer: i, Contrib: ContribPsig, Err: err}
	}
	return err
}

// PartialSigAgg sums the partial signatures (in signer-set order) into the
// final BIP340 signature. An out-of-range psig is blamed on its index. It does
// not verify the psigs: run PartialSigVerify for identifiable aborts, and
// verify the result (VerifySignature) before releasing it. Public data only.
func PartialSigAgg(psigs []PartialSig, sess *SessionCtx) (Signature, error) {
	sv, err := getSessionValues(sess)
	if err != nil {
		return Signature{}, err
	}
	return partialSigAgg(sv, psigs)
}

func partialSigAgg(sv *sessionValues, psigs []PartialSig) (Signature, error) {
	if len(psigs) != len(sv.ids) {
		return Signature{}, inputErr(ErrPsigsLength)
	}
	var s btcec.ModNScalar
	for i := range psigs {
		si, ok := scalarChecked(psigs[i][:])
		if !ok {
			return Signature{}, &InvalidContributionError{Signer: i, Contrib: ContribPsig}
		}
		s.Add(&si)
	}
	var gt btcec.ModNScalar
	gt.Mul2(&sv.e, &sv.tacc)
	if !hasEvenY(&sv.q) {
		gt.Negate()
	}
	s.Add(&gt)
	var sig Signature
	rx := xbytes(&sv.r)
	copy(sig[:32], rx[:])
	sb := s.Bytes()
	copy(sig[32:], sb[:])
	return sig, nil
}

// DeterministicSign is the spec's stateless signing for the last signer to
// contribute a nonce (or a sole 1-of-n signer when aggOtherNonce is nil): the
// nonce is derived from secshare, the signer set, aggOtherNonce, the tweaked
// key and msg, optionally masked with auxRand. Returns the signer's public
// nonce and partial signature. An undecodable aggOtherNonce blames the
// coordinator. Constant time in secshare and the derived nonce.
func DeterministicSign(secshare *btcec.ModNScalar, myID uint32, aggOtherNonce *AggNonce, signers *SignersCtx, tweaks []Tweak, msg []byte, auxRand *[32]byte) (PubNonce, PartialSig, error) {
	var skp [32]byte
	defer clear(skp[:])
	sk := secshare.Bytes()
	if auxRand != nil {
		h := taggedHasher(&tagAux)
		h.Write(auxRand[:])
		var mask [32]byte
		sumInto(h, &mask)
		subtle.XORBytes(skp[:], sk[:], mask[:])
		clear(mask[:])
	} else {
		skp = sk
	}
	clear(sk[:])
	var aggOther []byte
	if aggOtherNonce != nil {
		aggOther = aggOtherNonce[:]
	}
	// The reference implementation validates the signers context before
	// anything else (Sign repeats the check); the vectors depend on that order.
	vc, err := validateSignersCtx(signers)
	if err != nil {
		return PubNonce{}, PartialSig{}, err
	}
	tc, err := tweakCtxValidated(vc, signers.ThreshPK, tweaks)
	if err != nil {
		return PubNonce{}, PartialSig{}, err
	}
	tpk := tc.XOnlyPubKey()

	var k [2]btcec.ModNScalar
	defer k[0].Zero()
	defer k[1].Zero()
	for i := range 2 {
		h := taggedHasher(&tagDetNonce)
		h.Write(skp[:])
		h.Write(be4(myID))
		h.Write(be4(uint32(len(signers.IDs))))
		h.Write(serializeIDs(signers.IDs))
		h.Write(aggOther)
		h.Write(tpk[:])
		h.Write(be8(uint64(len(msg))))
		h.Write(msg)
		h.Write([]byte{byte(i)})
		var kb [32]byte
		sumInto(h, &kb)
		k[i] = scalarWrapping(&kb)
		clear(kb[:])
	}
	if k[0].IsZero() || k[1].IsZero() {
		return PubNonce{}, PartialSig{}, errZeroNonce
	}
	sn := newSecNonce(&k[0], &k[1])
	pubnonce := sn.pub
	var aggnonce AggNonce
	if aggOtherNonce != nil {
		// NonceAgg((pubnonce, aggothernonce)): our own nonce always decodes,
		// so a failure is the coordinator's aggothernonce.
		agg, err := NonceAgg([]PubNonce{pubnonce, PubNonce(*aggOtherNonce)})
		if err != nil {
			sn.Destroy()
			return PubNonce{}, PartialSig{}, &InvalidContributionError{Signer: CoordinatorCulprit, Contrib: ContribAggOtherNonce}
		}
		aggnonce = agg
	} else {
		aggnonce = AggNonce(pubnonce)
	}
	sess := &SessionCtx{Signers: *signers, AggNonce: aggnonce, Tweaks: tweaks, Msg: msg}
	psig, err := Sign(sn, secshare, myID, sess)
	if err != nil {
		return PubNonce{}, PartialSig{}, err
	}
	return pubnonce, psig, nil
}
