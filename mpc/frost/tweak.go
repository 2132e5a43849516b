package frost

import (
	"encoding/binary"
	"slices"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/internal/bounded"
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

	// The inputs that produced q, so that Remember files the context under
	// exactly those. applied is never appended to in place (copies share it).
	origin  [ThreshPKSize]byte
	applied []Tweak
	init    bool
}

// NewTweakCtx is TweakCtxInit: it starts from the 33-byte threshold key.
func NewTweakCtx(threshPK [ThreshPKSize]byte) (*TweakCtx, error) {
	q, ok := cpoint(threshPK[:])
	if !ok {
		return nil, inputErr(ErrInvalidThreshPK)
	}
	return &TweakCtx{q: q, gacc: *scalarOne, origin: threshPK, init: true}, nil
}

// Remember adds c to the contexts TweakCtxFor hands out, under the
// threshold key and tweaks that produced it: a caller that derives its
// tweaks step by step (BIP32, where each level's tweak hashes the key
// before it) spares the signing that follows a second derivation.
func (c *TweakCtx) Remember() {
	if c.init {
		tweakCache.Put(tweakCacheKey(&c.origin, c.applied), *c)
	}
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
	c.applied = append(slices.Clip(c.applied), Tweak{Value: tweak, XOnly: isXOnly})
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

// TweakCtxFor is TweakCtxInit(threshPK) followed by ApplyTweak of each
// tweak in order. Results are remembered (public inputs only, keyed by
// threshPK and every tweak's value and mode, in a small bounded cache): a
// signer needs the tweaked key for its nonce and again for the session,
// and each BIP32 level costs a point multiplication. The caller owns the
// returned context.
func TweakCtxFor(threshPK [ThreshPKSize]byte, tweaks []Tweak) (*TweakCtx, error) {
	return tweakCtxFor(threshPK, tweaks)
}

// tweakCache holds successful tweak contexts by value: a hit hands out a
// copy, so no caller can change what the next one gets.
var tweakCache = bounded.New[string, TweakCtx](256)

func tweakCacheKey(threshPK *[ThreshPKSize]byte, tweaks []Tweak) string {
	b := make([]byte, 0, ThreshPKSize+4+(TweakSize+1)*len(tweaks))
	b = append(b, threshPK[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(tweaks)))
	for _, tw := range tweaks {
		b = append(b, tw.Value[:]...)
		if tw.XOnly {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	return string(b)
}

// cachedTweakCtx applies tweaks to the context init returns for threshPK,
// or returns a copy of the remembered result.
func cachedTweakCtx(threshPK *[ThreshPKSize]byte, tweaks []Tweak, init func() (*TweakCtx, error)) (*TweakCtx, error) {
	key := tweakCacheKey(threshPK, tweaks)
	if tc, ok := tweakCache.Get(key); ok {
		return &tc, nil
	}
	tc, err := init()
	if err != nil {
		return nil, err
	}
	if err := tc.ApplyTweaks(tweaks); err != nil {
		return nil, err
	}
	tweakCache.Put(key, *tc)
	return tc, nil
}

// tweakCtxFor runs TweakCtxInit and all tweaks.
func tweakCtxFor(threshPK [ThreshPKSize]byte, tweaks []Tweak) (*TweakCtx, error) {
	return cachedTweakCtx(&threshPK, tweaks, func() (*TweakCtx, error) { return NewTweakCtx(threshPK) })
}

// tweakCtxValidated is tweakCtxFor for a validated signers context, whose
// ThreshPK is already decoded (vc.q): TweakCtxInit cannot fail on it.
func tweakCtxValidated(vc *validatedCtx, threshPK [ThreshPKSize]byte, tweaks []Tweak) (*TweakCtx, error) {
	return cachedTweakCtx(&threshPK, tweaks, func() (*TweakCtx, error) {
		return &TweakCtx{q: vc.q, gacc: *scalarOne, origin: threshPK, init: true}, nil
	})
}
