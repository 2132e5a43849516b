package quorum

import (
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/daemon/store"
)

// openShare decodes the key's sealed share from the HSM's Go-heap
// plaintext straight into storage (locked memory, constant time) and
// clears the plaintext at once.
func (s *Service) openShare(r store.Record, storage *btcec.ModNScalar) error {
	sb, err := s.Sealer.Open(r.SealedShare, shareAAD(r.KeyID, r.Owner, r.OwnID))
	if err != nil {
		return fmt.Errorf("opening share of %s: %w", r.KeyID, err)
	}
	overflow := storage.SetByteSlice(sb)
	n := len(sb)
	clear(sb)
	if overflow || n != 32 {
		storage.Zero()
		return fmt.Errorf("share of %s: bad encoding", r.KeyID)
	}
	return nil
}
