package frost

import (
	"encoding/binary"
	"slices"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/internal/bounded"
)

// SignersCtx is the spec's Signers Context: public data common to all signers
// and the coordinator. IDs[i] and PubShares[i] belong to the same signer.
type SignersCtx struct {
	N         uint32     // participants in key generation
	T         uint32     // threshold
	IDs       []uint32   // 0-based participant ids of the u signers
	PubShares []PubShare // their public shares
	ThreshPK  [ThreshPKSize]byte
}

// ValidateSignersCtx checks the Signers Context as the spec's
// ValidateSignersCtx: ranges, decodable pubshares, distinct ids, and that the
// pubshares interpolate to ThreshPK. Public data only (variable time).
//
// Successful validations are remembered (keyed by the full content of the
// context, in a small bounded cache), so that the repeated checks inside
// Sign, PartialSigVerify and PartialSigAgg of one session cost a lookup, as
// the spec allows.
func ValidateSignersCtx(ctx *SignersCtx) error {
	_, err := validateSignersCtx(ctx)
	return err
}

// validatedCtx is what validation computes: the decoded pubshares (affine)
// and the Lagrange coefficient of each signer, in the order of ctx.IDs.
type validatedCtx struct {
	points  []btcec.JacobianPoint
	lambdas []btcec.ModNScalar
	q       btcec.JacobianPoint // ThreshPK, affine: what cpoint(ThreshPK) decodes to
}

// lambda returns λ for myID, which must be in the signer set.
func (v *validatedCtx) lambda(ids []uint32, myID uint32) btcec.ModNScalar {
	return v.lambdas[slices.Index(ids, myID)]
}

// signersCache holds successfully validated contexts.
var signersCache = bounded.New[string, *validatedCtx](64)

// signersCacheKey serializes every field of ctx: equal keys mean equal
// contexts.
func signersCacheKey(ctx *SignersCtx) string {
	b := make([]byte, 0, 16+4*len(ctx.IDs)+PubShareSize*len(ctx.PubShares)+ThreshPKSize)
	b = binary.BigEndian.AppendUint32(b, ctx.N)
	b = binary.BigEndian.AppendUint32(b, ctx.T)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ctx.IDs)))
	b = binary.BigEndian.AppendUint32(b, uint32(len(ctx.PubShares)))
	for _, id := range ctx.IDs {
		b = binary.BigEndian.AppendUint32(b, id)
	}
	for i := range ctx.PubShares {
		b = append(b, ctx.PubShares[i][:]...)
	}
	b = append(b, ctx.ThreshPK[:]...)
	return string(b)
}

// validateSignersCtx is ValidateSignersCtx returning the validated data. The
// result is shared: callers must not modify it.
func validateSignersCtx(ctx *SignersCtx) (*validatedCtx, error) {
	key := signersCacheKey(ctx)
	if vc, ok := signersCache.Get(key); ok {
		return vc, nil
	}
	vc, err := validateSignersCtxUncached(ctx)
	if err != nil {
		return nil, err
	}
	signersCache.Put(key, vc)
	return vc, nil
}

func validateSignersCtxUncached(ctx *SignersCtx) (*validatedCtx, error) {
	if ctx.T < 1 || ctx.T > ctx.N {
		return nil, inputErr(ErrThresholdRange)
	}
	u := uint64(len(ctx.IDs))
	if u < uint64(ctx.T) || u > uint64(ctx.N) {
		return nil, inputErr(ErrSignerCount)
	}
	if len(ctx.PubShares) != len(ctx.IDs) {
		return nil, inputErr(ErrPubSharesLength)
	}
	vc := &validatedCtx{points: make([]btcec.JacobianPoint, len(ctx.IDs))}
	for i, id := range ctx.IDs {
		if id >= ctx.N {
			return nil, inputErrAt(ErrIDOutOfRange, i)
		}
		p, ok := cpoint(ctx.PubShares[i][:])
		if !ok {
			return nil, inputErrAt(ErrInvalidPubShare, i)
		}
		vc.points[i] = p
	}
	if hasDuplicates(ctx.IDs) {
		return nil, inputErr(ErrDuplicateIDs)
	}
	q, qp, lambdas, err := deriveThreshPubkey(ctx.IDs, vc.points)
	if err != nil {
		return nil, err
	}
	if q != ctx.ThreshPK {
		return nil, inputErr(ErrKeyMaterial)
	}
	vc.lambdas, vc.q = lambdas, qp
	return vc, nil
}

func hasDuplicates(ids []uint32) bool {
	seen := make(map[uint32]struct{}, len(ids))
	for _, id := range ids {
		if _, dup := seen[id]; dup {
			return true
		}
		seen[id] = struct{}{}
	}
	return false
}

func contains(ids []uint32, id uint32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// DeriveInterpolatingValue returns the Lagrange coefficient λ of myID for the
// signer set ids at x = 0, with participant id holding f(id+1). Public data
// only (variable time).
func DeriveInterpolatingValue(ids []uint32, myID uint32) (btcec.ModNScalar, error) {
	if !contains(ids, myID) {
		return btcec.ModNScalar{}, inputErr(ErrIDNotInSet)
	}
	if hasDuplicates(ids) {
		return btcec.ModNScalar{}, inputErr(ErrDuplicateIDs)
	}
	return interpolatingValue(ids, myID), nil
}

// interpolatingValue assumes myID in ids and no duplicates.
func interpolatingValue(ids []uint32, myID uint32) btcec.ModNScalar {
	num := *scalarOne
	deno := *scalarOne
	mine := scalarFromUint64(uint64(myID))
	mine.Negate()
	for _, id := range ids {
		if id == myID {
			continue
		}
		x := scalarFromUint64(uint64(id) + 1)
		num.Mul(&x)
		d := scalarFromUint64(uint64(id))
		d.Add(&mine)
		deno.Mul(&d)
	}
	deno.InverseNonConst()
	return *num.Mul(&deno)
}

// DeriveThreshPubkey interpolates the public shares of the signer set to the
// threshold public key Σ λ_i·P_i (compressed). It does not validate its
// inputs (see ValidateSignersCtx). Public data only (variable time).
func DeriveThreshPubkey(ids []uint32, pubshares []*btcec.PublicKey) ([ThreshPKSize]byte, error) {
	if len(ids) != len(pubshares) {
		return [ThreshPKSize]byte{}, inputErr(ErrPubSharesLength)
	}
	points := make([]btcec.JacobianPoint, len(pubshares))
	for i, p := range pubshares {
		p.AsJacobian(&points[i])
	}
	q, _, _, err := deriveThreshPubkey(ids, points)
	return q, err
}

// deriveThreshPubkey also returns the key as an affine point and the
// Lagrange coefficients it used.
func deriveThreshPubkey(ids []uint32, points []btcec.JacobianPoint) ([ThreshPKSize]byte, btcec.JacobianPoint, []btcec.ModNScalar, error) {
	var q btcec.JacobianPoint
	lambdas := make([]btcec.ModNScalar, len(ids))
	for i, id := range ids {
		lambdas[i] = interpolatingValue(ids, id)
		term := mulPublic(&lambdas[i], &points[i])
		q = addPublic(&q, &term)
	}
	q = affine(q)
	if isInfinity(&q) {
		return [ThreshPKSize]byte{}, q, nil, inputErr(ErrThreshPKInfinity)
	}
	return cbytes(&q), q, lambdas, nil
}
