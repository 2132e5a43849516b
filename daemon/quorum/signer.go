package quorum

import (
	"context"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/daemon/secmem"
	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/mpc/ceremony"
	"github.com/quorumd/quorumd/mpc/envelope"
)

// signSeat is a signer ready for its ceremony: identity and share opened
// into locked memory, and its seat in the room being claimed. close
// releases it all.
type signSeat struct {
	id    *envelope.Identity
	share *btcec.ModNScalar
	tr    *ceremony.RelaySeat

	slots   []*secmem.Slot
	claimed chan struct{} // closed once the early claim returned
	ran     bool          // a ceremony ran on tr (and left the room itself)
}

// openSigner prepares r's signer in room. Its seat is claimed as soon as
// the identity key is open, while the share opens and the ceremony makes
// and seals its nonce: the first post waits only for whichever is slower,
// and the claim's answer gives the room's size (how many sign), which the
// ceremony asks for after that post (ceremony.RoomSizer).
func (s *Service) openSigner(ctx context.Context, r store.Record, key *ceremony.KeyInfo, room, relayAddress string) (*signSeat, error) {
	rc, err := s.Relays.Client(relayAddress)
	if err != nil {
		return nil, err
	}
	slots, err := s.secretSlots(ctx, signSlots)
	if err != nil {
		return nil, err
	}
	ss := &signSeat{slots: slots}
	if ss.id, err = s.identity(r, slots[0].Scalar()); err != nil {
		ss.close()
		return nil, err
	}
	ss.tr = ceremony.RelayTransport(rc, room, ss.id, key.Parties)
	ss.claimed = make(chan struct{})
	go func() {
		defer close(ss.claimed)
		_ = ss.tr.Claim(ctx) // a failure is retried, and reported, by the ceremony's first post
	}()
	ss.share = slots[1].Scalar()
	if err := s.openShare(r, ss.share); err != nil {
		ss.close()
		return nil, err
	}
	return ss, nil
}

// close waits for the early claim (it signs with the identity key), leaves
// the room if no ceremony did, and zeroes the secrets.
func (ss *signSeat) close() {
	if ss.claimed != nil {
		<-ss.claimed
		if !ss.ran {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
				defer cancel()
				_ = ss.tr.Leave(ctx)
			}()
		}
	}
	if ss.id != nil {
		ss.id.Zero()
	}
	if ss.share != nil {
		ss.share.Zero()
	}
	secmem.ReleaseAll(ss.slots)
}

// leaveTimeout bounds leaving a room no ceremony ran in.
const leaveTimeout = 2 * time.Second
