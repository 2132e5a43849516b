package quorum

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/secmem"
	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/mpc/ceremony"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/relay"
)

var _ daemon.Lifecycle = (*Service)(nil)

// lifecycleSlots: identity key; old share (its scratch half encodes the
// new share for sealing).
const lifecycleSlots = 2

// Refresh gives every party of the key fresh shares of the same key under
// a new key_id (DESIGN §4a). The old key_id stays until deleted; its
// shares cannot sign with the new ones (the generation is bound into every
// signing session).
func (s *Service) Refresh(ctx context.Context, p daemon.RefreshParams) (daemon.ImportResult, error) {
	return s.newGeneration(ctx, genRequest{p.Owner, p.KeyID, p.RelayAddress, p.RequestID, p.Quota, p.DeleteOld}, "refresh",
		func(g *generation) (*ceremony.KeyInfo, error) {
			return ceremony.Refresh(ctx, ceremony.RefreshParams{
				Room: p.RoomUUID, Identity: g.id, Key: g.old, Share: g.share,
				Transport: g.transport(p.RoomUUID, g.old.Parties),
			}, g.durable(store.SourceRefresh))
		})
}

// certifyPending completes a pending record from recovery data whose
// certificate covers the record's own transcript: its share was checked
// when it was prepared, the certificate is all it lacks. (A refresh's
// recovery data cannot reopen a share without the old one.) false: the
// data is not such a certificate, recover the long way.
func (s *Service) certifyPending(ctx context.Context, r store.Record, data []byte) (bool, error) {
	if r.State != store.StatePending || len(r.Transcript) != 32 {
		return false, nil
	}
	rd, err := ceremony.ParseRecoveryData(data)
	if err != nil || rd.Cert == nil {
		return false, nil
	}
	k, err := keyInfo(r)
	if err != nil || ceremony.CheckCertificate(k, rd.Cert) != nil {
		return false, nil
	}
	if err := s.certify(ctx, r, rd.Cert); err != nil {
		return false, err
	}
	return true, nil
}

// generation is one call making a new generation of an existing key.
type generation struct {
	s       *Service
	ctx     context.Context
	rc      *relay.Client
	old     *ceremony.KeyInfo
	id      *envelope.Identity
	share   *btcec.ModNScalar // the old share, in locked memory
	slot    store.Record      // the new key_id's slot, same identity
	scratch []byte
}

// genRequest is what a new generation of owner's keyID is made from.
type genRequest struct {
	owner, keyID, relayAddr, requestID string
	quota                              int  // for the new key_id's slot
	deleteOld                          bool // delete keyID once the new generation is certified
}

// newGeneration runs run for owner's ready key keyID: it opens the identity
// and old share into locked memory, makes the new key_id's slot (the same
// identity, sealed for the new key_id), and runs the ceremony into it. A
// ceremony that stored nothing leaves no slot behind; one left pending keeps
// it, and the error names it (recover it with any party's recovery data).
// With deleteOld the old key_id is destroyed once the new generation is
// certified: after a removal, the old generation then cannot reach its
// threshold with the removed party's share.
func (s *Service) newGeneration(ctx context.Context, g0 genRequest, what string,
	run func(*generation) (*ceremony.KeyInfo, error)) (daemon.ImportResult, error) {
	owner, keyID, relayAddr, requestID, quota := g0.owner, g0.keyID, g0.relayAddr, g0.requestID, g0.quota
	r, err := s.ready(ctx, owner, keyID)
	if err != nil {
		return daemon.ImportResult{}, err
	}
	old, err := keyInfo(r)
	if err != nil {
		return daemon.ImportResult{}, err
	}
	if len(r.Transcript) != 32 {
		return daemon.ImportResult{}, daemon.Errorf(daemon.ErrTypeBadRequestParams,
			"key %s was imported before key generations existed (import v1): it cannot be refreshed or reshared", keyID)
	}
	slots, err := s.secretSlots(ctx, lifecycleSlots)
	if err != nil {
		return daemon.ImportResult{}, err
	}
	defer secmem.ReleaseAll(slots)
	id, err := s.identity(r, slots[0].Scalar())
	if err != nil {
		return daemon.ImportResult{}, err
	}
	defer id.Zero()
	share := slots[1].Scalar()
	defer share.Zero()
	if err := s.openShare(r, share); err != nil {
		return daemon.ImportResult{}, err
	}
	rc, err := s.Relays.Client(relayAddr)
	if err != nil {
		return daemon.ImportResult{}, err
	}
	slot, err := s.sameIdentitySlot(ctx, r, quota)
	if err != nil {
		return daemon.ImportResult{}, err
	}
	g := &generation{s: s, ctx: ctx, rc: rc, old: old, id: id, share: share, slot: slot,
		scratch: slots[1].Bytes()[secmem.ScalarSize:]}
	start := time.Now()
	ki, err := run(g)
	if err != nil {
		return daemon.ImportResult{}, s.dropFailedSlot(ctx, slot, err)
	}
	x := ki.XOnly()
	s.log().Debug(what+" ceremony committed", "from_key_id", keyID, "key_id", slot.KeyID, "t", ki.T, "n", ki.N,
		"request_id", requestID, "duration_ms", time.Since(start).Milliseconds())
	if g0.deleteOld {
		// Certified: every party holds the new generation. A failure here
		// does not undo that; the operator deletes the old key_id.
		if err := s.Delete(context.WithoutCancel(ctx), owner, keyID); err != nil {
			s.log().Warn("deleting the old generation after "+what+" failed; delete it by hand", "key_id", keyID, "err", err)
		}
	}
	return daemon.ImportResult{KeyID: slot.KeyID, Pubkey: x[:]}, nil
}

// transport is this party's seat in room among members (the new key's
// parties, this one included).
func (g *generation) transport(room string, members []envelope.Party) ceremony.Transport {
	return ceremony.RelayTransport(g.rc, room, g.id, members)
}

func (g *generation) durable(src store.Source) ceremony.Durable {
	return &importDurable{s: g.s, ctx: g.ctx, r: g.slot, scratch: g.scratch, source: src}
}

// sameIdentitySlot makes a new key_id's slot holding old's identity key,
// sealed afresh for the new key_id (the sealing binds the key_id).
func (s *Service) sameIdentitySlot(ctx context.Context, old store.Record, quota int) (store.Record, error) {
	keyID := daemon.NewKeyID()
	b, err := s.Sealer.Open(old.SealedIdentityKey, identityAAD(old.KeyID, old.Owner))
	if err != nil {
		return store.Record{}, fmt.Errorf("opening identity key of %s: %w", old.KeyID, err)
	}
	sealed, err := s.Sealer.Seal(b, identityAAD(keyID, old.Owner))
	clear(b)
	if err != nil {
		return store.Record{}, fmt.Errorf("sealing identity key: %w", err)
	}
	if err := s.Store.CreateSlot(ctx, store.Slot{KeyID: keyID, Owner: old.Owner, Scheme: Scheme,
		KeygenID: old.KeygenID, SealedIdentityKey: sealed, Quota: quota}); err != nil {
		if errors.Is(err, store.ErrQuotaExceeded) {
			return store.Record{}, quotaError(quota, err)
		}
		return store.Record{}, fmt.Errorf("storing key slot: %w", err)
	}
	return s.Store.GetOwned(ctx, old.Owner, keyID)
}

// dropFailedSlot deletes a new generation's slot after a failed ceremony
// unless it holds a pending share (a certificate may exist elsewhere): then
// the answer names the key_id to recover.
func (s *Service) dropFailedSlot(ctx context.Context, slot store.Record, cerr error) error {
	err := ceremonyError(cerr)
	r, gerr := s.Store.GetOwned(context.WithoutCancel(ctx), slot.Owner, slot.KeyID)
	if gerr == nil && r.State == store.StatePending {
		if de, ok := err.(*daemon.Error); ok {
			return &daemon.Error{Type: de.Type, Msg: de.Msg + fmt.Sprintf(" (this party's new share is pending under key_id %s)", slot.KeyID)}
		}
		return fmt.Errorf("%w (this party's new share is pending under key_id %s)", err, slot.KeyID)
	}
	if derr := s.Store.Delete(context.WithoutCancel(ctx), slot.Owner, slot.KeyID); derr != nil {
		s.log().Warn("deleting the unused slot of a failed ceremony", "key_id", slot.KeyID, "err", derr)
	}
	return err
}
