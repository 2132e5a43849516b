package daemon

import (
	"context"
	"encoding/hex"
	"log/slog"
)

// RecoveryData is a key's recovery data as served (DESIGN §3a): public,
// self-authenticating, the same at every party once certified.
type RecoveryData struct {
	Data      []byte
	Certified bool // carries the success certificate (only then can it recover anyone)
}

// Recovery serves recovery data and makes stuck parties ready (DESIGN §3a).
type Recovery interface {
	// RecoveryData returns the recovery data of owner's pending or ready key;
	// key_operation_before_keygen for a slot that never prepared a share.
	RecoveryData(ctx context.Context, owner, keyID string) (RecoveryData, error)
	// Recover verifies data (the certificate, the commitments, this slot's
	// share in it) and only then stores the share, making owner's key
	// ready: from pending, or from created (a party that lost its record
	// but kept its identity key). Data that does not verify is
	// bad_request_params; a key ready already for the same transcript
	// answers its record unchanged.
	Recover(ctx context.Context, owner, keyID string, data []byte) (KeyInfo, error)
	// InspectRecovery returns data's n and t, unverified, for the policy
	// decision taken before Recover.
	InspectRecovery(data []byte) (n, t int, err error)
}

// maxRecoveryHex bounds recovery_data in a request (hex): the body limit
// caps it further.
const maxRecoveryHex = 1 << 20

func (s *Server) recoveryData(rc *reqCtx) error {
	if s.b.Recovery == nil {
		return &Error{Type: ErrTypeNotFound, Msg: "recovery is not served here"}
	}
	if err := noBody(rc); err != nil {
		return err
	}
	keyID, err := pathKeyID(rc)
	if err != nil {
		return err
	}
	if err := s.authorize(rc, OpGetKey, AuthParams{KeyID: keyID}); err != nil {
		return err
	}
	ctx, cancel := s.requestContext(rc)
	defer cancel()
	rd, err := s.b.Recovery.RecoveryData(ctx, rc.caller.UserID, keyID)
	if err != nil {
		return err
	}
	return rc.writeJSON(map[string]any{"key_id": keyID, "recovery_data": hex.EncodeToString(rd.Data), "certified": rd.Certified})
}

// recover serves POST /bip340/recover. It is authorized as a recipient's
// import of the same n and t: it stores a share just as that would.
func (s *Server) recover(rc *reqCtx) error {
	if s.b.Recovery == nil {
		return &Error{Type: ErrTypeNotFound, Msg: "recovery is not served here"}
	}
	var keyID, dataHex string
	err := decodeObject(rc.body(), recoverFields(&keyID, &dataHex))
	rc.wipeBody()
	if err != nil {
		return err
	}
	data, err := hex.DecodeString(dataHex)
	if err != nil {
		return badRequest(`field "recovery_data" must be hex`)
	}
	n, t, err := s.b.Recovery.InspectRecovery(data)
	if err != nil {
		return badRequest("recovery_data: %v", err)
	}
	if err := s.authorize(rc, OpImportShareReceiver, AuthParams{KeyID: keyID, N: n, Threshold: t}); err != nil {
		return err
	}
	ctx, cancel := s.requestContext(rc)
	defer cancel()
	info, err := s.b.Recovery.Recover(ctx, rc.caller.UserID, keyID, data)
	s.audit(rc, AuditKeyRecovered, err, slog.String("key_id", keyID), slog.Int("t", t), slog.Int("n", n))
	if err != nil {
		return err
	}
	return rc.writeJSON(recordOf(info))
}

func recoverFields(keyID, dataHex *string) []field {
	return []field{
		stringField("key_id", true, 36, checkKeyID, keyID),
		stringField("recovery_data", true, maxRecoveryHex, nil, dataHex),
	}
}
