package quorum

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/hsm"
)

// Resealer re-encrypts a blob under a key's data key (hsm.HSM).
type Resealer interface {
	CreateDataKey(keyID string) error
	ResealFor(keyID string, blob, aad []byte) ([]byte, error)
}

// ResealAll re-seals, record by record, every sealed blob that is not under
// its key's own data key: blobs sealed under a wrapping key before per-key
// data keys existed, so that deleting those keys destroys them too, and so
// that a rotated-out wrapping key is no longer needed. It runs in the
// background at every start while the daemon serves (each record is
// re-sealed in one store transaction, so a crash leaves every record
// readable) and returns how many records it re-sealed.
func ResealAll(ctx context.Context, st store.Store, h Resealer, log *slog.Logger) (int, error) {
	recs, err := st.ListAll(ctx)
	if err != nil {
		return 0, err
	}
	done := 0
	for _, r := range recs {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		want := hsm.DataKeyLabel(r.KeyID)
		stale := func(blob []byte) bool {
			if len(blob) == 0 {
				return false
			}
			l, err := hsm.BlobKeyLabel(blob)
			return err != nil || l != want
		}
		if !stale(r.SealedShare) && !stale(r.SealedIdentityKey) {
			continue
		}
		if err := h.CreateDataKey(r.KeyID); err != nil {
			return done, fmt.Errorf("data key of %s: %w", r.KeyID, err)
		}
		err := st.Reseal(ctx, r.KeyID, func(cur store.Record) ([]byte, []byte, error) {
			ident := cur.SealedIdentityKey
			if stale(ident) {
				var err error
				if ident, err = h.ResealFor(cur.KeyID, ident, identityAAD(cur.KeyID, cur.Owner)); err != nil {
					return nil, nil, fmt.Errorf("identity key of %s: %w", cur.KeyID, err)
				}
			}
			share := cur.SealedShare
			if stale(share) {
				var err error
				if share, err = h.ResealFor(cur.KeyID, share, shareAAD(cur.KeyID, cur.Owner, cur.OwnID)); err != nil {
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
	log.Info("re-seal pass finished: every key record is sealed under its own data key", "resealed", done)
	return done, nil
}
