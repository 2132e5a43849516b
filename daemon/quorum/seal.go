package quorum

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/hsm"
)

// Sealing a key's secrets, and destroying them. Every secret of a key
// record (identity key, share) is sealed under the key's own data key on
// the HSM (hsm/datakey.go), so deleting the key can destroy it for good:
//
//   - Create makes the data key before it seals the identity key and writes
//     the slot, or takes one the pool made ahead (hsm.DataKeyPool, which
//     hands out only keys younger than half the grace). A crash in between,
//     or with keys still pooled, leaves data keys without a record: orphans
//     that SweepDataKeys destroys once they are older than its grace.
//   - Delete writes the tombstone (and scrubs the store file) first and
//     destroys the data key only after the store says deleted: a crash in
//     between leaves a deleted record and a live data key, which seals
//     nothing reachable from the store and is swept as an orphan. The other
//     order could leave a live record whose share no longer opens.

// OrphanGrace is how old a data key without a live record must be before
// SweepDataKeys destroys it: far longer than a Create takes between making
// the data key and writing the record, on this or another replica.
const OrphanGrace = 10 * time.Minute

// PoolMaxAge is how long a pooled data key may wait to be handed out: well
// inside OrphanGrace, so that no sweep takes a key a pool may still hand
// out (hsm.DataKeyPool).
const PoolMaxAge = OrphanGrace / 2

func identityAAD(keyID, owner string) []byte {
	return []byte("quorumd/identity/v1\x00" + keyID + "\x00" + owner)
}

func shareAAD(keyID, owner string, id int) []byte {
	return []byte("quorumd/share/v1\x00" + keyID + "\x00" + owner + "\x00" + strconv.Itoa(id))
}

// sealIdentity seals a new slot's identity key under a fresh data key and
// returns the slot's key_id, the data key's: one the pool made ahead
// (DataKeyPool) or, when it has none ready, one made now.
func (s *Service) sealIdentity(ctx context.Context, owner string, priv []byte) (keyID string, sealed []byte, err error) {
	keyID, pooled := s.DataKeyPool.Take()
	if !pooled {
		keyID = daemon.NewKeyID()
		if err := s.Sealer.CreateNewDataKey(keyID); err != nil {
			return "", nil, fmt.Errorf("making the key's data key: %w", err)
		}
	}
	daemon.MarkPhase(ctx, "data_key")
	sealed, err = s.Sealer.SealFor(keyID, priv, identityAAD(keyID, owner))
	if err != nil {
		s.destroyDataKey(keyID)
		return "", nil, fmt.Errorf("sealing identity key: %w", err)
	}
	daemon.MarkPhase(ctx, "hsm_seal")
	return keyID, sealed, nil
}

// sealShareBytes seals a share's encoding under the key's data key (made
// first if the slot predates data keys).
func (s *Service) sealShareBytes(r store.Record, id int, share []byte) ([]byte, error) {
	if err := s.Sealer.CreateDataKey(r.KeyID); err != nil {
		return nil, fmt.Errorf("making the key's data key: %w", err)
	}
	sealed, err := s.Sealer.SealFor(r.KeyID, share, shareAAD(r.KeyID, r.Owner, id))
	if err != nil {
		return nil, fmt.Errorf("sealing share: %w", err)
	}
	return sealed, nil
}

// abandonSlot undoes sealIdentity when the slot could not be stored.
func (s *Service) abandonSlot(keyID string) { s.destroyDataKey(keyID) }

// Delete deletes the key: tombstone and scrubbed store first, then its data
// key, so that a copy of the store taken before cannot be opened either.
func (s *Service) Delete(ctx context.Context, owner, keyID string) error {
	err := s.Store.Delete(ctx, owner, keyID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w", daemon.ErrKeyNotFound)
	}
	if err != nil {
		return err
	}
	s.destroyDataKey(keyID)
	return nil
}

// destroyDataKey destroys keyID's data key; a failure is logged, not
// returned: the store already says deleted (or never stored the key), and
// the sweep at the next start destroys what is left.
func (s *Service) destroyDataKey(keyID string) {
	if err := s.Sealer.DestroyDataKey(keyID); err != nil {
		s.log().Error("destroying a key's data key failed; the orphan sweep retries at the next start",
			"key_id", keyID, "error", err.Error())
	}
}

// DataKeySweeper is what SweepDataKeys needs from the HSM (hsm.HSM).
type DataKeySweeper interface {
	DataKeys() ([]hsm.DataKey, error)
	DestroyDataKey(keyID string) error
}

// SweepDataKeys destroys the data keys that no live record needs: those of
// deleted keys whose destruction a crash or a token failure interrupted, and
// those of slots never stored, once older than grace. It returns how many it
// destroyed. The store must be the one every daemon using the token shares.
func SweepDataKeys(ctx context.Context, st store.Store, h DataKeySweeper, grace time.Duration, log *slog.Logger) (int, error) {
	dks, err := h.DataKeys()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range dks {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		_, err := st.Get(ctx, d.KeyID)
		switch {
		case err == nil:
			continue
		case !errors.Is(err, store.ErrNotFound):
			return n, fmt.Errorf("looking up %s: %w", d.KeyID, err)
		case time.Since(d.Created) < grace:
			continue // a slot being created right now, perhaps
		}
		if err := h.DestroyDataKey(d.KeyID); err != nil {
			return n, err
		}
		n++
	}
	if n > 0 {
		log.Info("destroyed data keys that no live key record needs", "data_keys", n)
	}
	return n, nil
}
