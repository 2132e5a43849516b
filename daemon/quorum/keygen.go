package quorum

import (
	"context"
	"fmt"
	"time"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/secmem"
	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/mpc/ceremony"
	"github.com/quorumd/quorumd/mpc/envelope"
)

// keygenSlots: identity key (+ the host key's encoding in its scratch
// half), and the share's encoding.
const keygenSlots = 2

var _ daemon.Keygens = (*Service)(nil)

// Keygen is one party's side of a ChillDKG keygen (DESIGN §4a): the slot's
// identity key is the host key; the share is prepared and certified as an
// import's is, with ChillDKG's recovery data.
func (s *Service) Keygen(ctx context.Context, p daemon.ImportParams) (daemon.ImportResult, error) {
	// The key's lock across replicas too (as an import takes it): two
	// replicas must never run ceremonies on one slot at once.
	unlock, err := s.lockKey(ctx, p.Owner, p.KeyID)
	if err != nil {
		return daemon.ImportResult{}, err
	}
	defer unlock()

	r, err := s.owned(ctx, p.Owner, p.KeyID)
	if err != nil {
		return daemon.ImportResult{}, err
	}
	switch r.State {
	case store.StateReady:
		return daemon.ImportResult{}, fmt.Errorf("%w", daemon.ErrKeyAlreadyImported)
	case store.StatePending:
		return daemon.ImportResult{}, fmt.Errorf("%w", daemon.ErrKeyPending)
	}
	slots, err := s.secretSlots(ctx, keygenSlots)
	if err != nil {
		return daemon.ImportResult{}, err
	}
	defer secmem.ReleaseAll(slots)
	id, err := s.identity(r, slots[0].Scalar())
	if err != nil {
		return daemon.ImportResult{}, err
	}
	defer id.Zero()
	others := make([]envelope.Party, len(p.Others))
	for i, o := range p.Others {
		if others[i], err = envelope.ParseParty(o); err != nil {
			return daemon.ImportResult{}, daemon.Errorf(daemon.ErrTypeBadRequestParams, "others_keygen_ids[%d]: %v", i, err)
		}
	}
	rc, err := s.Relays.Client(p.RelayAddress)
	if err != nil {
		return daemon.ImportResult{}, err
	}
	start := time.Now()
	ki, err := ceremony.Keygen(ctx, ceremony.KeygenParams{
		Room: p.RoomUUID, Identity: id, Others: others, Threshold: p.Threshold,
		Transport: ceremony.RelayTransport(rc, p.RoomUUID, id, append([]envelope.Party{id.Public()}, others...)),
		HostKey:   slots[0].Bytes()[secmem.ScalarSize:],
	}, &importDurable{s: s, ctx: ctx, r: r, scratch: slots[1].Bytes()[secmem.ScalarSize:], source: store.SourceKeygen})
	if err != nil {
		return daemon.ImportResult{}, ceremonyError(err)
	}
	x32 := ki.XOnly()
	s.log().Debug("keygen ceremony committed", "key_id", p.KeyID, "t", ki.T, "n", ki.N,
		"request_id", p.RequestID, "duration_ms", time.Since(start).Milliseconds())
	return daemon.ImportResult{KeyID: p.KeyID, Pubkey: x32[:]}, nil
}
