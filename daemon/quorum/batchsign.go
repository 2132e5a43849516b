package quorum

import (
	"context"
	"encoding/hex"
	"errors"
	"time"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/mpc/ceremony"
)

var _ daemon.BatchSigner = (*Service)(nil)

// SignBatch runs one batch signing ceremony with the key's share: the items
// the HTTP layer refused and those whose derivation fails here are declined
// in the ceremony (the other signers learn it in round 1), the rest signed.
// Like Sign, a ready key attaches its certificate and a pending key signs
// only once another signer attached one.
func (s *Service) SignBatch(ctx context.Context, p daemon.BatchSignParams) ([]daemon.BatchSignResult, error) {
	r, key, cert, err := s.signingKey(ctx, p.Owner, p.KeyID)
	if err != nil {
		return nil, err
	}
	out := make([]daemon.BatchSignResult, len(p.Items))
	items := make([]ceremony.BatchItem, len(p.Items))
	for i, it := range p.Items {
		items[i] = ceremony.BatchItem{Msg: it.Msg, Declined: it.Err != nil}
		if it.Err != nil {
			out[i].Err = it.Err
			continue
		}
		if items[i].Tweaks, _, err = Tweaks(key.ThreshPK, it.Tweaks); err != nil {
			out[i].Err = daemon.Errorf(daemon.ErrTypeBadRequestParams, "derivation: %v", err)
			items[i].Declined = true
		}
	}
	ss, err := s.openSigner(ctx, r, key, p.RoomUUID, p.RelayAddress)
	if err != nil {
		return nil, err
	}
	defer ss.close()
	start := time.Now()
	ss.ran = true
	res, err := ceremony.SignBatch(ctx, ceremony.BatchParams{
		SignParams: ceremony.SignParams{
			Room: p.RoomUUID, Identity: ss.id, Key: key, Share: ss.share,
			Transport:   ss.tr,
			Certificate: cert, Pending: r.State == store.StatePending,
			OnCertified: func(c ceremony.Certificate) error { return s.certify(ctx, r, c) },
		},
		Items: items,
	})
	if err != nil {
		return nil, ceremonyError(err)
	}
	signed := 0
	for i, x := range res {
		switch {
		case out[i].Err != nil: // this daemon's own reason
		case x.Err != nil:
			out[i].Err = itemError(x.Err)
		default:
			out[i].Signature = append([]byte(nil), x.Sig[:]...)
			signed++
		}
	}
	s.log().Debug("batch signing ceremony done", "key_id", p.KeyID, "items", len(items),
		"signed", signed, "request_id", p.RequestID, "duration_ms", time.Since(start).Milliseconds())
	return out, nil
}

// itemError names the signer that declined or disagreed on an item by its
// keygen_id.
func itemError(err error) error {
	var ie *ceremony.ItemError
	if !errors.As(err, &ie) {
		return ceremonyError(err)
	}
	who := hex.EncodeToString(ie.By[:])
	switch {
	case errors.Is(ie, ceremony.ErrItemDeclined):
		return daemon.Errorf(daemon.ErrTypeExecutorResult, "signer %s declined this item (its key, policy or rules refused it)", who)
	case errors.Is(ie, ceremony.ErrItemMismatch):
		return daemon.Errorf(daemon.ErrTypeExecutorResult, "signer %s was asked to sign another msg, derivation_path or tweak for this item", who)
	}
	return daemon.Errorf(daemon.ErrTypeExecutorResult, "%v", ie)
}
