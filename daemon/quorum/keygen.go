package quorum

import (
	"context"
	"time"

	"github.com/quorumd/quorumd/daemon"
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
	slot, err := s.openSlot(ctx, p.Owner, p.KeyID, keygenSlots)
	if err != nil {
		return daemon.ImportResult{}, err
	}
	defer slot.close()
	id := slot.id
	others, err := parseOthers(p.Others)
	if err != nil {
		return daemon.ImportResult{}, err
	}
	rc, err := s.Relays.Client(p.RelayAddress)
	if err != nil {
		return daemon.ImportResult{}, err
	}
	start := time.Now()
	ki, err := ceremony.Keygen(ctx, ceremony.KeygenParams{
		Room: p.RoomUUID, Identity: id, Others: others, Threshold: p.Threshold,
		Transport: ceremony.RelayTransport(rc, p.RoomUUID, id, append([]envelope.Party{id.Public()}, others...)),
		HostKey:   slot.scratch(0),
	}, &importDurable{s: s, ctx: ctx, r: slot.r, scratch: slot.scratch(1), source: store.SourceKeygen})
	if err != nil {
		return daemon.ImportResult{}, ceremonyError(err)
	}
	x32 := ki.XOnly()
	s.log().Debug("keygen ceremony committed", "key_id", p.KeyID, "t", ki.T, "n", ki.N,
		"request_id", p.RequestID, "duration_ms", time.Since(start).Milliseconds())
	return daemon.ImportResult{KeyID: p.KeyID, Pubkey: x32[:]}, nil
}
