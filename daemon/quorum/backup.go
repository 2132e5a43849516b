package quorum

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"filippo.io/age"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/secmem"
	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/internal/agekey"
	"github.com/quorumd/quorumd/mpc/ceremony"
	"github.com/quorumd/quorumd/mpc/envelope"
)

// A backup (DESIGN §4a) is everything a fresh daemon needs to be this party
// again: magic and version ‖ identity key (32) ‖ share (32) ‖ certified
// recovery data. The recovery data authenticates it: a restore recovers the
// share from it with the identity key (certificate, commitments) and
// insists on the same share, so a tampered or foreign backup stores nothing.
var backupMagic = []byte("QRDBK\x01")

const backupHeader = 6 + 32 + 32

var errBackupFormat = errors.New("not a quorumd key-share backup of a supported version")

var _ daemon.Backups = (*Service)(nil)

// ExportBackup implements daemon.Backups.
func (s *Service) ExportBackup(ctx context.Context, owner, keyID string, to daemon.BackupTarget) ([]byte, error) {
	var recipient *age.X25519Recipient
	if !to.Plaintext {
		var err error
		if recipient, err = agekey.Recipient(to.Recipient); err != nil {
			return nil, daemon.Errorf(daemon.ErrTypePolicyValidationFailed, "backup recipient of the policy: %v", err)
		}
	}
	r, err := s.ready(ctx, owner, keyID)
	if err != nil {
		return nil, err
	}
	if cert, err := certificateOf(r); err != nil || cert == nil {
		return nil, daemon.Errorf(daemon.ErrTypeBadRequestParams, "key %s has no certified recovery data to back up (imported before import v2?)", keyID)
	}
	slots, err := s.secretSlots(ctx, signSlots)
	if err != nil {
		return nil, err
	}
	defer secmem.ReleaseAll(slots)
	id, err := s.identity(r, slots[0].Scalar())
	if err != nil {
		return nil, err
	}
	defer id.Zero()
	share := slots[1].Scalar()
	if err := s.openShare(r, share); err != nil {
		return nil, err
	}
	plain := make([]byte, backupHeader, backupHeader+len(r.RecoveryData))
	defer clear(plain)
	copy(plain, backupMagic)
	id.PutPrivateBytes(plain[6:38])
	share.PutBytesUnchecked(plain[38:70])
	share.Zero()
	plain = append(plain, r.RecoveryData...)
	if to.Plaintext {
		return bytes.Clone(plain), nil
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, recipient)
	if err != nil {
		return nil, fmt.Errorf("encrypting the backup: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("encrypting the backup: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encrypting the backup: %w", err)
	}
	return buf.Bytes(), nil
}

func parseBackup(b []byte) (priv, share, recovery []byte, err error) {
	if len(b) <= backupHeader || !bytes.Equal(b[:6], backupMagic) {
		return nil, nil, nil, errBackupFormat
	}
	return b[6:38], b[38:70], b[70:], nil
}

// InspectBackup implements daemon.Backups.
func (s *Service) InspectBackup(b []byte) (n, t int, err error) {
	_, _, rd, err := parseBackup(b)
	if err != nil {
		return 0, 0, err
	}
	n, t, _, err = ceremony.Inspect(rd)
	return n, t, err
}

// ImportBackup implements daemon.Backups: verify, then create a slot with
// the backed-up identity key and commit the share to it (a new key_id).
func (s *Service) ImportBackup(ctx context.Context, owner string, quota int, b []byte) (daemon.KeyInfo, error) {
	privB, shareB, rdB, err := parseBackup(b)
	if err != nil {
		return daemon.KeyInfo{}, daemon.Errorf(daemon.ErrTypeBadRequestParams, "key_share: %v", err)
	}
	slots, err := s.secretSlots(ctx, signSlots)
	if err != nil {
		return daemon.KeyInfo{}, err
	}
	defer secmem.ReleaseAll(slots)
	storage := slots[0].Scalar()
	if overflow := storage.SetByteSlice(privB); overflow || storage.IsZero() {
		return daemon.KeyInfo{}, daemon.Errorf(daemon.ErrTypeBadRequestParams, "key_share: identity key out of range")
	}
	id, err := envelope.NewIdentityAt(storage)
	if err != nil {
		return daemon.KeyInfo{}, daemon.Errorf(daemon.ErrTypeBadRequestParams, "key_share: identity key: %v", err)
	}
	defer id.Zero()
	ks, rd, err := ceremony.Recover(id, rdB)
	if err != nil {
		if errors.Is(err, ceremony.ErrRecovery) {
			return daemon.KeyInfo{}, daemon.Errorf(daemon.ErrTypeBadRequestParams, "key_share: %v", err)
		}
		return daemon.KeyInfo{}, err
	}
	share := slots[1].Scalar()
	overflow := share.SetByteSlice(shareB)
	same := share.Equals(&ks.Share)
	ks.Share.Zero()
	if overflow || !same {
		return daemon.KeyInfo{}, daemon.Errorf(daemon.ErrTypeBadRequestParams, "key_share: the share does not match the backup's recovery data (tampered or foreign backup)")
	}

	priv := slots[0].Bytes()[secmem.ScalarSize:]
	id.PutPrivateBytes(priv)
	keyID, sealedID, err := s.sealIdentity(ctx, owner, priv[:32])
	clear(priv)
	if err != nil {
		return daemon.KeyInfo{}, err
	}
	pub := id.Public()
	if err := s.Store.CreateSlot(ctx, store.Slot{KeyID: keyID, Owner: owner, Scheme: Scheme,
		KeygenID: pub[:], SealedIdentityKey: sealedID, Quota: quota}); err != nil {
		if !errors.Is(err, store.ErrDuplicate) { // never another record's data key
			s.abandonSlot(keyID)
		}
		if errors.Is(err, store.ErrQuotaExceeded) {
			return daemon.KeyInfo{}, quotaError(quota, err)
		}
		return daemon.KeyInfo{}, fmt.Errorf("storing key slot: %w", err)
	}
	r := store.Record{KeyID: keyID, Owner: owner}
	sealed, err := s.sealShare(r, ks.ID, share, slots[1].Bytes()[secmem.ScalarSize:])
	if err == nil {
		c := commitment(&ks.KeyInfo, ks.ID, sealed, rd.Marshal())
		if rd.Kind == envelope.KindKeygen {
			c.Source = store.SourceKeygen
		}
		err = s.Store.Commit(context.WithoutCancel(ctx), owner, keyID, c)
	}
	if err != nil {
		// Nothing half-written: the slot goes, its data key destroyed.
		if derr := s.Delete(context.WithoutCancel(ctx), owner, keyID); derr != nil {
			s.log().Warn("dropping the slot of a failed backup restore failed", "key_id", keyID, "err", derr)
		}
		return daemon.KeyInfo{}, fmt.Errorf("storing the restored share: %w", err)
	}
	s.log().Info("key restored from a backup", "key_id", keyID, "t", ks.T, "n", ks.N)
	return s.Get(ctx, owner, keyID)
}
