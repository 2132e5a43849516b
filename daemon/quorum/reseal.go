package quorum

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/hsm"
)

// Resealer re-encrypts a blob under the active wrapping key (hsm.HSM).
type Resealer interface {
	Reseal(blob, aad []byte) ([]byte, error)
	ActiveKeyLabel() string
}

// ResealAll re-seals, record by record, every sealed blob that is not under
// the active wrapping key — the second half of a rotation: configure the new
// key as key_label and the old one in read_key_labels, restart, and this runs
// in the background while the daemon serves (each record is re-sealed in one
// store transaction, so a crash leaves every record readable). It returns how
// many records it re-sealed.
func ResealAll(ctx context.Context, st store.Store, h Resealer, log *slog.Logger) (int, error) {
	recs, err := st.ListAll(ctx)
	if err != nil {
		return 0, err
	}
	active, done := h.ActiveKeyLabel(), 0
	stale := func(blob []byte) bool {
		if len(blob) == 0 {
			return false
		}
		l, err := hsm.BlobKeyLabel(blob)
		return err != nil || l != active
	}
	for _, r := range recs {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		if !stale(r.SealedShare) && !stale(r.SealedIdentityKey) {
			continue
		}
		err := st.Reseal(ctx, r.KeyID, func(cur store.Record) ([]byte, []byte, error) {
			ident, err := h.Reseal(cur.SealedIdentityKey, identityAAD(cur.KeyID, cur.Owner))
			if err != nil {
				return nil, nil, fmt.Errorf("identity key of %s: %w", cur.KeyID, err)
			}
			var share []byte
			if len(cur.SealedShare) > 0 {
				if share, err = h.Reseal(cur.SealedShare, shareAAD(cur.KeyID, cur.Owner, cur.OwnID)); err != nil {
					return nil, nil, fmt.Errorf("share of %s: %w", cur.KeyID, err)
				}
			}
			return share, ident, nil
		})
		if err != nil {
			return done, fmt.Errorf("re-sealing %s: %w", r.KeyID, err)
		}
		done++
	}
	if done > 0 {
		log.Info("re-sealed key records under the active wrapping key", "records", done, "key_label", active)
	}
	return done, nil
}
