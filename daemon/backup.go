package daemon

import (
	"context"
	"encoding/hex"
	"log/slog"

	"github.com/quorumd/quorumd/mpc/secp"
	"github.com/quorumd/quorumd/policy"
)

// Audit events of backups.
const (
	AuditBackupExported AuditEvent = "key.backup_exported"
	AuditBackupImported AuditEvent = "key.backup_imported"
)

// BackupTarget is how an export is protected: encrypted to Recipient (an
// age X25519 recipient, "age1…" or the hex of its 32-byte key as policies
// carry it), or in plaintext where the policy allows it.
type BackupTarget struct {
	Plaintext bool
	Recipient string
}

// Backups exports and restores key-share backups (DESIGN §4a).
type Backups interface {
	// ExportBackup returns owner's ready key's backup (identity key, share,
	// recovery data), versioned, encrypted to to.Recipient unless
	// to.Plaintext.
	ExportBackup(ctx context.Context, owner, keyID string, to BackupTarget) ([]byte, error)
	// ImportBackup verifies a plaintext backup completely (its certificate,
	// commitments and share) and only then stores it as a new ready key of
	// owner (within quota live keys, when quota > 0); bad_request_params for
	// a tampered or foreign backup, with nothing stored.
	ImportBackup(ctx context.Context, owner string, quota int, backup []byte) (KeyInfo, error)
	// InspectBackup returns a plaintext backup's n and t, unverified, for
	// the policy decision taken before ImportBackup.
	InspectBackup(backup []byte) (n, t int, err error)
}

// backupPolicies is an Authorizer whose policies carry the backup rule
// (allow_backup_export); PolicyBackend is one.
type backupPolicies interface {
	BackupExport(ctx context.Context, userID string) (*policy.BackupExport, error)
}

// backupTarget is the caller's backup export setting: its policy's
// allow_backup_export rule; without one, the daemon-wide backup section
// (export disabled, encrypted or plaintext); otherwise disabled.
func (s *Server) backupTarget(ctx context.Context, userID string) (BackupTarget, error) {
	if bp, ok := s.b.Auth.(backupPolicies); ok {
		b, err := bp.BackupExport(ctx, userID)
		if err != nil {
			return BackupTarget{}, err
		}
		switch {
		case b != nil && b.Mode == "plaintext":
			return BackupTarget{Plaintext: true}, nil
		case b != nil && b.Mode == "encrypted":
			return BackupTarget{Recipient: b.RecipientPubkey}, nil
		}
	}
	switch s.cfg.Backup.Export {
	case "encrypted":
		return BackupTarget{Recipient: s.cfg.Backup.Recipient}, nil
	case "plaintext":
		return BackupTarget{Plaintext: true}, nil
	}
	return BackupTarget{}, Errorf(ErrTypeServerShareBackupSettingOff, "backup export is not allowed by this user's policy (allow_backup_export) nor by the daemon (backup.export)")
}

// exportBackup serves GET /bip340/backup/export-key-share/:key_id.
func (s *Server) exportBackup(rc *reqCtx) error {
	if s.b.Backups == nil {
		return &Error{Type: ErrTypeNotFound, Msg: "backups are not served here"}
	}
	if err := noBody(rc); err != nil {
		return err
	}
	keyID, err := pathKeyID(rc)
	if err != nil {
		return err
	}
	if err := s.authorize(rc, OpBackupExport, AuthParams{KeyID: keyID}); err != nil {
		return err
	}
	ctx, cancel := s.requestContext(rc)
	defer cancel()
	to, err := s.backupTarget(ctx, rc.caller.UserID)
	if err != nil {
		return err
	}
	b, err := s.b.Backups.ExportBackup(ctx, rc.caller.UserID, keyID, to)
	exportType := "encrypted"
	if to.Plaintext {
		exportType = "plaintext"
	}
	s.audit(rc, AuditBackupExported, err, slog.String("key_id", keyID), slog.String("export_type", exportType))
	if err != nil {
		return err
	}
	out := hex.EncodeToString(b)
	clear(b)
	return rc.writeJSON(map[string]string{"key_id": keyID, "export_type": exportType, "key_share": out})
}

// maxBackupHex bounds key_share in a request; the body limit caps it further.
const maxBackupHex = 1 << 20

// importBackup serves POST /bip340/backup/import-key-share. Only a
// plaintext backup is accepted: an encrypted one is opened by the operator
// (quorumctl backup import with the age identity), which never gives the
// daemon the operator's private key.
func (s *Server) importBackup(rc *reqCtx) error {
	if s.b.Backups == nil {
		return &Error{Type: ErrTypeNotFound, Msg: "backups are not served here"}
	}
	var exportType string
	var data []byte
	err := decodeObject(rc.body(), backupImportFields(&exportType, &data))
	rc.wipeBody()
	defer clear(data)
	if err != nil {
		return err
	}
	switch exportType {
	case "plaintext":
	case "encrypted":
		return badRequest(`export_type "encrypted": decrypt the backup with the operator's age identity first (quorumctl backup import -identity FILE), then send it as "plaintext"`)
	default:
		return badRequest(`export_type must be "plaintext" or "encrypted"`)
	}
	n, t, err := s.b.Backups.InspectBackup(data)
	if err != nil {
		return badRequest("key_share: %v", err)
	}
	// A restore makes a key: the policy's key quota applies, enforced by
	// the store as create's is (Caller.KeyQuota).
	if err := s.authorize(rc, OpBackupImport, AuthParams{N: n, Threshold: t}); err != nil {
		return err
	}
	ctx, cancel := s.requestContext(rc)
	defer cancel()
	info, err := s.b.Backups.ImportBackup(ctx, rc.caller.UserID, rc.caller.KeyQuota, data)
	s.audit(rc, AuditBackupImported, err, slog.String("key_id", info.KeyID), slog.Int("t", t), slog.Int("n", n))
	if err != nil {
		return err
	}
	return rc.writeJSON(map[string]string{"key_id": info.KeyID, "pubkey": hex.EncodeToString(info.Pubkey)})
}

func backupImportFields(exportType *string, data *[]byte) []field {
	return []field{
		stringField("export_type", true, 16, nil, exportType),
		keyShareField(data),
	}
}

// keyShareMsg is the one message for every malformed key_share.
const keyShareMsg = `field "key_share" must be a hex string`

// keyShareField decodes key_share (hex) from its raw JSON span straight
// into *dst, which the caller clears: the backup holds a share and an
// identity key, so no copy goes through a Go string. The hex decoding is
// constant time (secp.DecodeHex).
func keyShareField(dst *[]byte) field {
	return field{name: "key_share", required: true, decode: func(raw []byte) error {
		n := len(raw) - 2
		if n < 2 || n%2 != 0 || n > maxBackupHex || raw[0] != '"' || raw[len(raw)-1] != '"' {
			return badRequest(keyShareMsg)
		}
		b := make([]byte, n/2)
		if secp.DecodeHex(b, raw[1:len(raw)-1]) != 0 {
			clear(b)
			return badRequest(keyShareMsg)
		}
		*dst = b
		return nil
	}}
}
