package frost

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/secp"
)

// errZeroNonce is the spec's unreachable "k = 0" failure (probability ~2^-256).
var errZeroNonce = errors.New("frost: derived nonce scalar is zero")

// SecNonce is a signer's secret nonce (k1, k2) for one signing session. It
// lives in memory only and is single-use: Sign consumes it (success or not),
// zeroes it, and every later use returns ErrNonceReused. It must not be
// copied (it holds a mutex; go vet flags copies).
type SecNonce struct {
	mu   sync.Mutex
	k1   btcec.ModNScalar
	k2   btcec.ModNScalar
	pub  PubNonce               // cbytes(k1·G) || cbytes(k2·G)
	r    [2]btcec.JacobianPoint // k1·G, k2·G (affine; public)
	used bool
}

// PubNonce returns the public nonce matching this secret nonce.
func (n *SecNonce) PubNonce() PubNonce {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pub
}

// public returns the public nonce and its points (public data; kept after
// the secret halves are consumed).
func (n *SecNonce) public() (PubNonce, [2]btcec.JacobianPoint) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pub, n.r
}

// Used reports whether the nonce was consumed or destroyed.
func (n *SecNonce) Used() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.used
}

// Destroy zeroes the nonce without signing (e.g. the session was abandoned).
// Constant time.
func (n *SecNonce) Destroy() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.k1.Zero()
	n.k2.Zero()
	n.used = true
}

// take moves (k1, k2) into the caller's scalars and zeroes the nonce, so that
// it can never be read twice; it returns the public nonce (points and bytes). Constant time in the secret values.
func (n *SecNonce) take(k1, k2 *btcec.ModNScalar) ([2]btcec.JacobianPoint, PubNonce, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.used {
		return [2]btcec.JacobianPoint{}, PubNonce{}, ErrNonceReused
	}
	k1.Set(&n.k1)
	k2.Set(&n.k2)
	n.k1.Zero()
	n.k2.Zero()
	n.used = true
	return n.r, n.pub, nil
}

// newSecNonce builds a SecNonce from its scalars, computing the public nonce
// in constant time with secp.ScalarBaseMult. A zero scalar (only reachable
// from test vectors) gets an all-zero half, which Sign rejects before use.
func newSecNonce(k1, k2 *btcec.ModNScalar) *SecNonce {
	n := &SecNonce{}
	n.k1.Set(k1)
	n.k2.Set(k2)
	for i, k := range []*btcec.ModNScalar{k1, k2} {
		if k.IsZero() {
			continue
		}
		secp.ScalarBaseMult(k, &n.r[i])
		enc := cbytes(&n.r[i])
		copy(n.pub[i*33:], enc[:])
	}
	return n
}

// NonceGenArgs holds NonceGen's optional defense-in-depth arguments. A nil
// slice or pointer means "absent". The message is absent unless HasMsg is set
// (an empty present message differs from an absent one).
type NonceGenArgs struct {
	SecShare      *btcec.ModNScalar // the signer's secret share (not modified)
	PubShare      []byte            // 33 bytes
	ThreshPKXOnly []byte            // 32 bytes, ideally the final tweaked x-only key
	Msg           []byte
	HasMsg        bool
	ExtraIn       []byte // e.g. a session id; at most 2^32-1 bytes
}

// NonceGen draws 32 bytes from rnd (crypto/rand.Reader if nil) and derives a
// fresh secret nonce and its public nonce per the spec. Constant time in the
// secret share and in the secret nonce (SHA-256, dcrd scalar reduction and
// secp.ScalarBaseMult only).
func NonceGen(rnd io.Reader, args *NonceGenArgs) (*SecNonce, PubNonce, error) {
	if args == nil {
		args = &NonceGenArgs{}
	}
	if args.PubShare != nil && len(args.PubShare) != PubShareSize {
		return nil, PubNonce{}, inputErr(ErrOptionalArgLength)
	}
	if args.ThreshPKXOnly != nil && len(args.ThreshPKXOnly) != XOnlySize {
		return nil, PubNonce{}, inputErr(ErrOptionalArgLength)
	}
	if uint64(len(args.ExtraIn)) > math.MaxUint32 {
		return nil, PubNonce{}, inputErr(ErrOptionalArgLength)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	var rb [32]byte
	defer clear(rb[:])
	if _, err := io.ReadFull(rnd, rb[:]); err != nil {
		return nil, PubNonce{}, fmt.Errorf("%w: %w", ErrRandom, err)
	}
	sn, err := nonceGenInternal(&rb, args)
	if err != nil {
		return nil, PubNonce{}, err
	}
	return sn, sn.pub, nil
}

// nonceGenInternal is NonceGen with rand given (deterministic, for vectors).
// Constant time in args.SecShare and the derived nonce.
func nonceGenInternal(rb *[32]byte, args *NonceGenArgs) (*SecNonce, error) {
	var randp [32]byte
	defer clear(randp[:])
	if args.SecShare != nil {
		sk := args.SecShare.Bytes()
		h := taggedHasher(&tagAux)
		h.Write(rb[:])
		var mask [32]byte
		sumInto(h, &mask)
		subtle.XORBytes(randp[:], sk[:], mask[:])
		clear(sk[:])
		clear(mask[:])
	} else {
		randp = *rb
	}
	var msgPrefixed []byte
	if args.HasMsg {
		msgPrefixed = append([]byte{1}, be8(uint64(len(args.Msg)))...)
		msgPrefixed = append(msgPrefixed, args.Msg...)
	} else {
		msgPrefixed = []byte{0}
	}

	var k [2]btcec.ModNScalar
	defer k[0].Zero()
	defer k[1].Zero()
	for i := range 2 {
		h := taggedHasher(&tagNonce)
		h.Write(randp[:])
		h.Write([]byte{byte(len(args.PubShare))})
		h.Write(args.PubShare)
		h.Write([]byte{byte(len(args.ThreshPKXOnly))})
		h.Write(args.ThreshPKXOnly)
		h.Write(msgPrefixed)
		h.Write(be4(uint32(len(args.ExtraIn))))
		h.Write(args.ExtraIn)
		h.Write([]byte{byte(i)})
		var kb [32]byte
		sumInto(h, &kb)
		k[i] = scalarWrapping(&kb)
		clear(kb[:])
	}
	if k[0].IsZero() || k[1].IsZero() {
		return nil, errZeroNonce
	}
	return newSecNonce(&k[0], &k[1]), nil
}

// NonceAgg sums the signers' public nonces into the aggregate nonce. An
// undecodable nonce is blamed on its index in pubnonces. Public data only.
func NonceAgg(pubnonces []PubNonce) (AggNonce, error) {
	var agg AggNonce
	for j := range 2 {
		var rj btcec.JacobianPoint
		for i := range pubnonces {
			p, ok := cpoint(pubnonces[i][j*33 : (j+1)*33])
			if !ok {
				return AggNonce{}, &InvalidContributionError{Signer: i, Contrib: ContribPubNonce}
			}
			rj = addPublic(&rj, &p)
		}
		rj = affine(rj)
		enc := cbytesExt(&rj)
		copy(agg[j*33:], enc[:])
	}
	return agg, nil
}
