package ceremony

import (
	"context"
	"fmt"
	"io"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/envelope"
)

// ReshareLabel versions the reshare protocol inside every session id.
const ReshareLabel = "quorumd/reshare/v1"

// ReshareParams are one party's inputs to a reshare. The room holds exactly
// the new key's parties; the old holders among them (at least the old
// threshold) deal.
type ReshareParams struct {
	Room      string
	Identity  *envelope.Identity
	Others    []envelope.Party // the other parties of the new key
	Threshold int              // the new threshold
	// Old and Share are a holder's old key and share (Share not modified);
	// both nil for a new party, which learns the old key from the dealers
	// (all must present the same) and accepts it only if it is ExpectKey,
	// when set.
	Old       *KeyInfo
	Share     *btcec.ModNScalar
	ExpectKey *[32]byte // x-only key a new party expects; nil accepts the dealers' agreed key
	Transport Transport
	Rand      io.Reader // crypto/rand when nil

	split  splitFunc
	tamper func(*dealing)
}

// Reshare runs one party's side of a reshare (DESIGN §4a): every old holder
// in the room deals a fresh t'-of-n' sharing of its Lagrange-weighted share
// (redeal.go); each party checks every sub-dealing against its dealer's
// old public share in the old key all dealers present, sums its sub-shares
// and checks the new public shares against the unchanged key. It adds and
// removes parties, changes the threshold, and replaces (repairs) a party
// that lost its share and identity: its new identity joins as a new party.
// Durable semantics are Import's.
func Reshare(ctx context.Context, p ReshareParams, d Durable) (*KeyInfo, error) {
	parties, err := importParties(ImportParams{Identity: p.Identity, Others: p.Others, Threshold: p.Threshold, Transport: p.Transport})
	if err != nil {
		return nil, err
	}
	if (p.Old == nil) != (p.Share == nil) {
		return nil, &AbortError{Err: ErrInput, Detail: "a holder gives its old key and share, a new party neither"}
	}
	if p.Old != nil {
		if p.Old.IDOf(p.Identity.Public()) < 0 {
			return nil, &AbortError{Err: ErrInput, Detail: "this party is not a holder of the old key"}
		}
		if len(p.Old.Parties) != p.Old.N || len(p.Old.PubShares) != p.Old.N {
			return nil, &AbortError{Err: ErrInput, Detail: fmt.Sprintf("inconsistent old key: n=%d", p.Old.N)}
		}
	}
	r := redealFor(envelope.KindReshare, p.Room, p.Threshold, parties, p.Old)
	r.share, r.rand, r.tamper, r.expectPK = p.Share, p.Rand, p.tamper, p.ExpectKey
	return r.run(ctx, p.Identity, p.Transport, d, p.split)
}
