package quorum

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/mpc/bip340"
	"github.com/quorumd/quorumd/mpc/frost"
)

// ChainCode is the BIP32 chain code quorumd uses for unhardened derivation
// from a threshold key Q: TaggedHash("quorumd/chaincode/v1", Q). A threshold
// key has no chain code of its own, and a fixed public rule lets any wallet
// reproduce the derived keys from Q alone.
func ChainCode(q [33]byte) [32]byte {
	return bip340.TaggedHash("quorumd/chaincode/v1", q[:])
}

// Tweaks turns a derivation into BIP445 tweaks: one plain tweak per BIP32
// unhardened step (CKDpub from Q with ChainCode(Q)), then tw.Tweak as an
// x-only (BIP341-style) tweak. It also returns the resulting x-only key.
// Public data only.
func Tweaks(q [33]byte, tw daemon.Tweaks) ([]frost.Tweak, [32]byte, error) {
	var out [32]byte
	// From the remembered untweaked context: no decompression of q per call.
	tc, err := frost.TweakCtxFor(q, nil)
	if err != nil {
		return nil, out, err
	}
	var tweaks []frost.Tweak
	c := ChainCode(q)
	for depth, i := range tw.Path {
		if i >= 1<<31 {
			return nil, out, fmt.Errorf("index %d at depth %d is hardened", i, depth)
		}
		k := tc.PlainPubKey()
		mac := hmac.New(sha512.New, c[:])
		mac.Write(k[:])
		mac.Write(binary.BigEndian.AppendUint32(nil, i))
		sum := mac.Sum(nil)
		t := frost.Tweak{Value: [32]byte(sum[:32])}
		if err := tc.ApplyTweak(t.Value, false); err != nil {
			// IL ≥ n or a point at infinity: BIP32 says skip to the next index.
			return nil, out, fmt.Errorf("index %d at depth %d is invalid for this key (use the next one): %w", i, depth, err)
		}
		c = [32]byte(sum[32:])
		tweaks = append(tweaks, t)
	}
	if tw.Tweak != nil {
		t := frost.Tweak{Value: *tw.Tweak, XOnly: true}
		if err := tc.ApplyTweak(t.Value, true); err != nil {
			return nil, out, errors.New("tweak is not a valid scalar for this key")
		}
		tweaks = append(tweaks, t)
	}
	tc.Remember() // the signing ceremony that follows needs the same context
	return tweaks, tc.XOnlyPubKey(), nil
}
