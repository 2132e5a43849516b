package quorum

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/secmem"
	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/internal/tail"
	"github.com/quorumd/quorumd/mpc/ceremony"
	"github.com/quorumd/quorumd/mpc/envelope"
)

// waitingFor is what a pending key shows its owner (GET /bip340/keys/:key_id).
const waitingFor = "the success certificate (all parties' transcript signatures): POST /bip340/recover " +
	"with any party's GET /bip340/recovery-data/:key_id, or sign with a ready party, which attaches it"

// waitingForRefused is waitingFor once a member refused after this party
// signed (%x: its keygen_id).
const waitingForRefused = "the success certificate, though member %x refused after this party signed: " +
	"if it signed for the others they hold the certificate (POST /bip340/recover with any party's " +
	"GET /bip340/recovery-data/:key_id, or sign with a ready party); if no party is ready, none exists: delete the key"

// importDurable is an import's ceremony.Durable: the HSM and the key store.
type importDurable struct {
	s       *Service
	ctx     context.Context
	r       store.Record // the slot, in state created
	scratch []byte       // 32 bytes of locked memory for the share's encoding
	source  store.Source // "" = import
}

// Prepare seals the share and writes the pending record, durably, before
// this party signs the transcript. The ceremony's deadline must not cut
// the durable write short.
func (d *importDurable) Prepare(ks *ceremony.KeyShare, rd *ceremony.RecoveryData) error {
	daemon.MarkPhase(d.ctx, "deal")
	sealed, err := d.s.sealShare(d.r, ks.ID, &ks.Share, d.scratch)
	if err != nil {
		return err
	}
	daemon.MarkPhase(d.ctx, "hsm_seal")
	c := commitment(&ks.KeyInfo, ks.ID, sealed, rd.Marshal())
	if d.source != "" {
		c.Source = d.source
	}
	err = d.s.Store.Prepare(context.WithoutCancel(d.ctx), d.r.Owner, d.r.KeyID, c)
	if err != nil {
		return fmt.Errorf("storing the pending share: %w", err)
	}
	daemon.MarkPhase(d.ctx, "store_prepare")
	return nil
}

// Certified marks the record ready off the critical path: the answer does
// not wait for a second fsync. Reads of the key wait for the mark (owned).
func (d *importDurable) Certified(info *ceremony.KeyInfo, rd *ceremony.RecoveryData) error {
	daemon.MarkPhase(d.ctx, "certify")
	d.s.markReadyLater(d.ctx, d.r.Owner, d.r.KeyID, info.Transcript[:], rd.Marshal())
	return nil
}

// Discard returns the slot to created on proof that no certificate exists.
func (d *importDurable) Discard(info *ceremony.KeyInfo) error {
	return d.s.Store.Discard(context.WithoutCancel(d.ctx), d.r.Owner, d.r.KeyID, info.Transcript[:])
}

// Refused notes the refusing member on the pending record; the record
// stays pending either way, so a failed note is only logged.
func (d *importDurable) Refused(info *ceremony.KeyInfo, by envelope.Party) error {
	err := d.s.Store.MarkRefused(context.WithoutCancel(d.ctx), d.r.Owner, d.r.KeyID, info.Transcript[:], by[:])
	if err != nil {
		d.s.log().Warn("noting a refusal on a pending key failed", "key_id", d.r.KeyID, "err", err)
	}
	return err
}

// lazyMarks tracks ready marks in flight, so that a read of a key right
// after its import answered waits for the mark instead of seeing pending.
type lazyMarks struct {
	mu       sync.Mutex
	inflight map[string]chan struct{}
}

func markKey(owner, keyID string) string { return owner + "\x00" + keyID }

// markTimeout bounds a lazy mark's store write.
const markTimeout = 30 * time.Second

func (s *Service) markReadyLater(ctx context.Context, owner, keyID string, transcript, recovery []byte) {
	k := markKey(owner, keyID)
	done := make(chan struct{})
	s.marks.mu.Lock()
	if s.marks.inflight == nil {
		s.marks.inflight = map[string]chan struct{}{}
	}
	s.marks.inflight[k] = done
	s.marks.mu.Unlock()
	// After the answer (tail.Go): the commit's fsyncs would compete with
	// writing it. Reads of the key wait for done meanwhile (owned).
	tail.Go(ctx, func() {
		defer func() {
			s.marks.mu.Lock()
			if s.marks.inflight[k] == done {
				delete(s.marks.inflight, k)
			}
			s.marks.mu.Unlock()
			close(done)
		}()
		mctx, cancel := context.WithTimeout(context.Background(), markTimeout)
		defer cancel()
		if err := s.Store.MarkReady(mctx, owner, keyID, transcript, recovery); err != nil {
			// The record stays pending; any peer's recovery data or the next
			// signing ceremony completes it.
			s.log().Warn("marking a certified key ready failed; it stays pending until recovered",
				"key_id", keyID, "err", err)
		}
	})
}

// wait blocks while a ready mark for the key is in flight; it reports
// whether there was one.
func (m *lazyMarks) wait(ctx context.Context, owner, keyID string) bool {
	m.mu.Lock()
	done := m.inflight[markKey(owner, keyID)]
	m.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	return true
}

// certificateOf returns a record's success certificate (nil while pending,
// or for a record from before import v2).
func certificateOf(r store.Record) (ceremony.Certificate, error) {
	if r.State != store.StateReady || len(r.RecoveryData) == 0 {
		return nil, nil
	}
	rd, err := ceremony.ParseRecoveryData(r.RecoveryData)
	if err != nil {
		return nil, fmt.Errorf("key record %s: recovery data: %w", r.KeyID, err)
	}
	return rd.Cert, nil
}

// certify records a certificate another signer attached for a pending key.
// The ceremony verified it over the record's transcript.
func (s *Service) certify(ctx context.Context, r store.Record, c ceremony.Certificate) error {
	rd, err := ceremony.ParseRecoveryData(r.RecoveryData)
	if err != nil {
		return fmt.Errorf("key record %s: recovery data: %w", r.KeyID, err)
	}
	rd.Cert = c
	if err := s.Store.MarkReady(context.WithoutCancel(ctx), r.Owner, r.KeyID, r.Transcript, rd.Marshal()); err != nil {
		return err
	}
	s.log().Info("pending key recovered from a signer's certificate", "key_id", r.KeyID)
	return nil
}

// RecoveryData implements daemon.Recovery.
func (s *Service) RecoveryData(ctx context.Context, owner, keyID string) (daemon.RecoveryData, error) {
	r, err := s.owned(ctx, owner, keyID)
	if err != nil {
		return daemon.RecoveryData{}, err
	}
	if len(r.RecoveryData) == 0 {
		if r.State == store.StateReady {
			return daemon.RecoveryData{}, daemon.Errorf(daemon.ErrTypeBadRequestParams, "key %s was imported before recovery data existed (import v1)", keyID)
		}
		return daemon.RecoveryData{}, fmt.Errorf("%w", daemon.ErrKeyNotReady)
	}
	return daemon.RecoveryData{Data: r.RecoveryData, Certified: r.State == store.StateReady}, nil
}

// InspectRecovery implements daemon.Recovery.
func (s *Service) InspectRecovery(data []byte) (n, t int, err error) {
	n, t, _, err = ceremony.Inspect(data)
	return n, t, err
}

// Recover implements daemon.Recovery: verify everything, then seal and
// store the share in one transaction (created or pending → ready).
func (s *Service) Recover(ctx context.Context, owner, keyID string, data []byte) (daemon.KeyInfo, error) {
	unlock, err := s.lockKey(ctx, owner, keyID)
	if err != nil {
		return daemon.KeyInfo{}, err
	}
	defer unlock()
	r, err := s.owned(ctx, owner, keyID)
	if err != nil {
		return daemon.KeyInfo{}, err
	}
	if ok, err := s.certifyPending(ctx, r, data); err != nil {
		return daemon.KeyInfo{}, err
	} else if ok {
		return s.Get(ctx, owner, keyID)
	}
	refresh := false
	if rd, err := ceremony.ParseRecoveryData(data); err == nil && rd.Kind == envelope.KindRefresh {
		refresh = true
	}
	n := importSlots
	if refresh {
		n++ // the old generation's share
	}
	slots, err := s.secretSlots(ctx, n)
	if err != nil {
		return daemon.KeyInfo{}, err
	}
	defer secmem.ReleaseAll(slots)
	id, err := s.identity(r, slots[0].Scalar())
	if err != nil {
		return daemon.KeyInfo{}, err
	}
	defer id.Zero()
	var ks *ceremony.KeyShare
	var rd *ceremony.RecoveryData
	if refresh {
		ks, rd, err = s.recoverRefresh(ctx, r, id, data, slots[2].Scalar())
	} else {
		ks, rd, err = ceremony.Recover(id, data)
	}
	if err != nil {
		if errors.Is(err, ceremony.ErrRecovery) {
			return daemon.KeyInfo{}, daemon.Errorf(daemon.ErrTypeBadRequestParams, "recovery_data: %v", err)
		}
		return daemon.KeyInfo{}, err
	}
	// Share lives in the returned KeyShare (heap): copy it to locked memory
	// and wipe the original at once.
	share := slots[1].Scalar()
	share.Set(&ks.Share)
	ks.Share.Zero()
	defer share.Zero()
	switch {
	case r.State == store.StateReady && string(r.Transcript) == string(ks.Transcript[:]):
		return info(r), nil
	case r.State == store.StateReady:
		return daemon.KeyInfo{}, fmt.Errorf("%w", daemon.ErrKeyAlreadyImported)
	case r.State == store.StatePending && string(r.Transcript) != string(ks.Transcript[:]):
		return daemon.KeyInfo{}, daemon.Errorf(daemon.ErrTypeBadRequestParams,
			"recovery_data is for another ceremony than the one this key is pending in")
	}
	sealed, err := s.sealShare(r, ks.ID, share, slots[1].Bytes()[secmem.ScalarSize:])
	if err != nil {
		return daemon.KeyInfo{}, err
	}
	c := commitment(&ks.KeyInfo, ks.ID, sealed, rd.Marshal())
	switch rd.Kind {
	case envelope.KindKeygen:
		c.Source = store.SourceKeygen
	case envelope.KindRefresh:
		c.Source = store.SourceRefresh
	case envelope.KindReshare:
		c.Source = store.SourceReshare
	}
	if err := s.Store.Commit(context.WithoutCancel(ctx), owner, keyID, c); err != nil {
		if errors.Is(err, store.ErrAlreadyCommitted) {
			// A signing ceremony's certificate made it ready meanwhile.
			if r, rerr := s.owned(ctx, owner, keyID); rerr == nil && string(r.Transcript) == string(ks.Transcript[:]) {
				return info(r), nil
			}
			return daemon.KeyInfo{}, fmt.Errorf("%w", daemon.ErrKeyAlreadyImported)
		}
		return daemon.KeyInfo{}, fmt.Errorf("storing the recovered share: %w", err)
	}
	s.log().Info("key recovered from recovery data", "key_id", keyID, "from_state", string(r.State))
	r, err = s.owned(ctx, owner, keyID)
	if err != nil {
		return daemon.KeyInfo{}, err
	}
	return info(r), nil
}

// recoverRefresh reopens a refresh's share from its recovery data: a
// refresh adds sharings of zero to the old share, so it needs this party's
// share of the generation the data renews, found among the owner's ready
// keys under the same identity (the refresh kept it). oldShare is locked
// memory for it; the caller zeroes it.
func (s *Service) recoverRefresh(ctx context.Context, slot store.Record, id *envelope.Identity, data []byte,
	oldShare *btcec.ModNScalar) (*ceremony.KeyShare, *ceremony.RecoveryData, error) {
	want, err := ceremony.RefreshedKey(data)
	if err != nil {
		return nil, nil, err
	}
	rs, err := s.Store.ListByOwner(ctx, slot.Owner)
	if err != nil {
		return nil, nil, err
	}
	for _, o := range rs {
		if o.State != store.StateReady || !bytes.Equal(o.KeygenID, slot.KeygenID) || !bytes.Equal(o.Transcript, want.Transcript[:]) {
			continue
		}
		old, err := keyInfo(o)
		if err != nil {
			return nil, nil, err
		}
		if err := s.openShare(o, oldShare); err != nil {
			return nil, nil, err
		}
		return ceremony.RecoverRefresh(id, data, old, oldShare)
	}
	return nil, nil, fmt.Errorf("%w: this party holds no ready key of the generation the refresh renews (deleted?)", ceremony.ErrRecovery)
}

var _ daemon.Recovery = (*Service)(nil)
