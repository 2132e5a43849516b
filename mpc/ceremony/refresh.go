package ceremony

import (
	"context"
	"fmt"
	"io"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/envelope"
)

// RefreshLabel versions the refresh protocol inside every session id.
const RefreshLabel = "quorumd/refresh/v1"

// RefreshParams are one party's inputs to a refresh: every party of Key, in
// a room of exactly those parties.
type RefreshParams struct {
	Room      string
	Identity  *envelope.Identity
	Key       *KeyInfo          // the key being refreshed (its current generation)
	Share     *btcec.ModNScalar // this party's share of it (not modified)
	Transport Transport
	Rand      io.Reader // crypto/rand when nil

	split  splitFunc      // tests: a dealer that equivocates
	tamper func(*dealing) // tests: a dealer that cheats
}

// Refresh runs one party's side of a refresh (DESIGN §4a): every party
// deals a Feldman sharing of zero to all (redeal.go), so the same parties
// hold fresh shares of the same key. The new generation's transcript binds
// the old one, and signing binds the transcript, so old and new shares
// never sign together. Durable semantics are Import's: the new share is
// prepared before this party signs the transcript, d.Certified once all
// signed.
func Refresh(ctx context.Context, p RefreshParams, d Durable) (*KeyInfo, error) {
	k := p.Key
	if k == nil || p.Identity == nil || p.Transport == nil || p.Share == nil {
		return nil, &AbortError{Err: ErrInput, Detail: "key, identity, share and transport are required"}
	}
	if k.IDOf(p.Identity.Public()) < 0 {
		return nil, &AbortError{Err: ErrInput, Detail: "this party is not a participant of the key"}
	}
	if len(k.Parties) != k.N || len(k.PubShares) != k.N {
		return nil, &AbortError{Err: ErrInput, Detail: fmt.Sprintf("inconsistent key: %d parties, %d public shares, n=%d", len(k.Parties), len(k.PubShares), k.N)}
	}
	r := redealFor(envelope.KindRefresh, p.Room, k.T, k.Parties, k)
	r.share, r.rand, r.tamper = p.Share, p.Rand, p.tamper
	return r.run(ctx, p.Identity, p.Transport, d, p.split)
}
