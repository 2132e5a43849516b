package frost

import (
	"github.com/btcsuite/btcd/btcec/v2"
)

// Tweak is one tweak of the threshold public key: plain (BIP32-style) or
// x-only (BIP341 TapTweak). Value is a 32-byte big-endian scalar < n.
type Tweak struct {
	Value [TweakSize]byte
	XOnly bool
}

// NewTweaks pairs tweak values with their modes, checking the list lengths
// and that every value is 32 bytes (the spec's session-context shape checks).
func NewTweaks(values [][]byte, isXOnly []bool) ([]Tweak, error) {
	if len(values) != len(isXOnly) {
		return nil, inputErr(ErrTweakModesLength)
	}
	out := make([]Tweak, len(values))
	for i, v := range values {
		if len(v) != TweakSize {
			return nil, inputErr(ErrTweakLength)
		}
		copy(out[i].Value[:], v)
		out[i].XOnly = isXOnly[i]
	}
	return out, nil
}

// TweakCtx is the spec's Tweak Context (identical to BIP327's KeyAgg
// Context): the possibly tweaked key Q, the sign accumulator gacc and the
// tweak accumulator tacc. All public.
type TweakCtx struct {
	q    btcec.JacobianPoint // affine, never infinity
	gacc btcec.ModNScalar
	tacc btcec.ModNScalar
}

// NewTweakCtx is TweakCtxInit: it starts from the 33-byte threshold key.
func NewTweakCtx(threshPK [ThreshPKSize]byte) (*TweakCtx, error) {
	q, ok := cpoint(threshPK[:])
	if !ok {
		return nil, inputErr(ErrInvalidThreshPK)
	}
	return &TweakCtx{q: q, gacc: *scalarOne}, nil
}

// ApplyTweak applies one tweak (spec ApplyTweak). On error the context is
// left unchanged.
func (c *TweakCtx) ApplyTweak(tweak [TweakSize]byte, isXOnly bool) error {
	negate := isXOnly && !hasEvenY(&c.q)
	t, ok := scalarChecked(tweak[:])
	if !ok {
		return inputErr(ErrTweakOutOfRange)
	}
	gq := c.q
	if negate {
		gq = negatePoint(&c.q)
	}
	tg := baseMulPublic(&t)
	q := affine(addPublic(&gq, &tg))
	if isInfinity(&q) {
		return inputErr(ErrTweakInfinity)
	}
	c.q = q
	if negate { // gacc' = g·gacc, tacc' = t + g·tacc with g = -1
		c.gacc.Negate()
		c.tacc.Negate()
	}
	c.tacc.Add(&t)
	return nil
}

// ApplyTweaks applies tweaks in order.
func (c *TweakCtx) ApplyTweaks(tweaks []Tweak) error {
	for _, tw := range tweaks {
		if err := c.ApplyTweak(tw.Value, tw.XOnly); err != nil {
			return err
		}
	}
	return nil
}

// XOnlyPubKey is GetXonlyPubkey: the 32-byte x-only (BIP340) key.
func (c *TweakCtx) XOnlyPubKey() [XOnlySize]byte { return xbytes(&c.q) }

// PlainPubKey is GetPlainPubkey: the 33-byte compressed key; its first byte
// & 1 is the parity bit of a BIP341 control block.
func (c *TweakCtx) PlainPubKey() [ThreshPKSize]byte { return cbytes(&c.q) }

// tweakCtxFor runs TweakCtxInit and all tweaks.
func tweakCtxFor(threshPK [ThreshPKSize]byte, tweaks []Tweak) (*TweakCtx, error) {
	tc, err := NewTweakCtx(threshPK)
	if err != nil {
		return nil, err
	}
	if err := tc.ApplyTweaks(tweaks); err != nil {
		return nil, err
	}
	return tc, nil
}

// tweakCtxValidated is tweakCtxFor for a validated signers context, whose
// ThreshPK is already decoded (vc.q): TweakCtxInit cannot fail on it.
func tweakCtxValidated(vc *validatedCtx, tweaks []Tweak) (*TweakCtx, error) {
	tc := &TweakCtx{q: vc.q, gacc: *scalarOne}
	if err := tc.ApplyTweaks(tweaks); err != nil {
		return nil, err
	}
	return tc, nil
}
