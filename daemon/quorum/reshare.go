package quorum

import (
	"context"
	"time"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/mpc/ceremony"
	"github.com/quorumd/quorumd/mpc/envelope"
)

// ReshareExisting is an old holder's side of a reshare: it deals from its
// share of p.KeyID and takes a share of the new generation under a new
// key_id with the same identity (DESIGN §4a).
func (s *Service) ReshareExisting(ctx context.Context, p daemon.ReshareParams) (daemon.ImportResult, error) {
	others, err := parseOthers(p.Others)
	if err != nil {
		return daemon.ImportResult{}, err
	}
	return s.newGeneration(ctx, genRequest{p.Owner, p.KeyID, p.RelayAddress, p.RequestID, p.Quota, p.DeleteOld}, "reshare",
		func(g *generation) (*ceremony.KeyInfo, error) {
			return ceremony.Reshare(ctx, ceremony.ReshareParams{
				Room: p.RoomUUID, Identity: g.id, Others: others, Threshold: p.Threshold,
				Old: g.old, Share: g.share, Transport: g.transport(p.RoomUUID, append([]envelope.Party{g.id.Public()}, others...)),
			}, g.durable(store.SourceReshare))
		})
}

// ReshareNew is a new party's side of a reshare (also how a party that
// lost its share and identity is repaired): its fresh slot p.KeyID receives
// a share of the key every dealer presents, and of p.Pubkey when given.
func (s *Service) ReshareNew(ctx context.Context, p daemon.ReshareParams) (daemon.ImportResult, error) {
	others, err := parseOthers(p.Others)
	if err != nil {
		return daemon.ImportResult{}, err
	}
	slot, err := s.openSlot(ctx, p.Owner, p.KeyID, importSlots)
	if err != nil {
		return daemon.ImportResult{}, err
	}
	defer slot.close()
	id := slot.id
	var expect *[32]byte
	if len(p.Pubkey) == 32 {
		expect = (*[32]byte)(p.Pubkey)
	}
	rc, err := s.Relays.Client(p.RelayAddress)
	if err != nil {
		return daemon.ImportResult{}, err
	}
	start := time.Now()
	ki, err := ceremony.Reshare(ctx, ceremony.ReshareParams{
		Room: p.RoomUUID, Identity: id, Others: others, Threshold: p.Threshold, ExpectKey: expect,
		Transport: ceremony.RelayTransport(rc, p.RoomUUID, id, append([]envelope.Party{id.Public()}, others...)),
	}, &importDurable{s: s, ctx: ctx, r: slot.r, scratch: slot.scratch(1), source: store.SourceReshare})
	if err != nil {
		return daemon.ImportResult{}, ceremonyError(err)
	}
	x := ki.XOnly()
	s.log().Debug("reshare ceremony committed", "key_id", p.KeyID, "role", "new-party", "t", ki.T, "n", ki.N,
		"request_id", p.RequestID, "duration_ms", time.Since(start).Milliseconds())
	return daemon.ImportResult{KeyID: p.KeyID, Pubkey: x[:]}, nil
}

func parseOthers(raw [][]byte) ([]envelope.Party, error) {
	others := make([]envelope.Party, len(raw))
	for i, o := range raw {
		var err error
		if others[i], err = envelope.ParseParty(o); err != nil {
			return nil, daemon.Errorf(daemon.ErrTypeBadRequestParams, "others_keygen_ids[%d]: %v", i, err)
		}
	}
	return others, nil
}
