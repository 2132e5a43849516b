package quorum

import (
	"context"
	"fmt"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/secmem"
	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/mpc/ceremony"
	"github.com/quorumd/quorumd/mpc/envelope"
)

// emptySlot is a key slot opened by a ceremony that fills it (import,
// keygen, a reshare's new party): the key's lock held, in process and
// across replicas, the slot checked to hold no share yet, and its identity
// key opened into the call's first locked slot.
type emptySlot struct {
	r      store.Record
	id     *envelope.Identity
	slots  []*secmem.Slot // slots[0] holds the identity key
	unlock func()
}

// openSlot opens owner's keyID for a ceremony that fills it, with n locked
// slots for the call's secrets; the caller defers close.
func (s *Service) openSlot(ctx context.Context, owner, keyID string, n int) (*emptySlot, error) {
	unlock, err := s.lockKey(ctx, owner, keyID)
	if err != nil {
		return nil, err
	}
	o := &emptySlot{unlock: unlock}
	if err := s.fillSlot(ctx, o, owner, keyID, n); err != nil {
		o.close()
		return nil, err
	}
	return o, nil
}

func (s *Service) fillSlot(ctx context.Context, o *emptySlot, owner, keyID string, n int) (err error) {
	if o.r, err = s.owned(ctx, owner, keyID); err != nil {
		return err
	}
	switch o.r.State {
	case store.StateReady:
		return fmt.Errorf("%w", daemon.ErrKeyAlreadyImported)
	case store.StatePending:
		return fmt.Errorf("%w", daemon.ErrKeyPending)
	}
	if o.slots, err = s.secretSlots(ctx, n); err != nil {
		return err
	}
	o.id, err = s.identity(o.r, o.slots[0].Scalar())
	return err
}

// scratch is 32 bytes of locked memory in slot i for a share's encoding.
func (o *emptySlot) scratch(i int) []byte { return o.slots[i].Bytes()[secmem.ScalarSize:] }

// close zeroes the identity, wipes and returns the locked slots and
// releases the key's lock.
func (o *emptySlot) close() {
	if o.id != nil {
		o.id.Zero()
	}
	if o.slots != nil {
		secmem.ReleaseAll(o.slots)
	}
	o.unlock()
}

// signingKey reads owner's keyID for a signing ceremony: ready, or pending
// (it signs once another signer attaches the certificate, which it records
// first); with its certificate when ready and its public KeyInfo.
func (s *Service) signingKey(ctx context.Context, owner, keyID string) (store.Record, *ceremony.KeyInfo, ceremony.Certificate, error) {
	r, err := s.owned(ctx, owner, keyID)
	if err != nil {
		return r, nil, nil, err
	}
	if (r.State != store.StateReady && r.State != store.StatePending) || len(r.PublicKey) != 33 {
		return r, nil, nil, fmt.Errorf("%w", daemon.ErrKeyNotReady)
	}
	key, cert, err := s.keys.get(r)
	if err != nil {
		return r, nil, nil, err
	}
	return r, key, cert, nil
}
