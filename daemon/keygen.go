package daemon

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"
)

// AuditKeyGenerated is the audit event of a committed keygen.
const AuditKeyGenerated AuditEvent = "key.generated"

// Keygens runs distributed key generation (ChillDKG, DESIGN §4a).
type Keygens interface {
	// Keygen generates a fresh t-of-N key with the parties of p in p's room;
	// the result is certified as an import's is (no 200 unless every party
	// durably stored its share). Failures are Typed as Ceremonies' are.
	Keygen(ctx context.Context, p ImportParams) (ImportResult, error)
}

// keygen serves POST /bip340/keygen: the body of an import recipient's.
func (s *Server) keygen(rc *reqCtx) error {
	if s.b.Keygen == nil {
		return &Error{Type: ErrTypeNotFound, Msg: "keygen is not served here"}
	}
	req, err := decodeImport(rc.body(), false, s.cfg.Limits.MaxParties)
	rc.wipeBody()
	if err != nil {
		return err
	}
	n := len(req.Others) + 1
	if err := s.authorize(rc, OpKeygen, AuthParams{KeyID: req.KeyID, N: n, Threshold: req.Threshold, RelayAddress: req.RelayAddress}); err != nil {
		return err
	}
	if _, err := s.checkImportable(rc, req); err != nil {
		return err
	}
	ctx, cancel := s.ceremonyContext(rc)
	defer cancel()
	start := time.Now()
	res, err := s.b.Keygen.Keygen(ctx, ImportParams{
		Owner:        rc.caller.UserID,
		KeyID:        req.KeyID,
		RoomUUID:     req.RoomUUID,
		Threshold:    req.Threshold,
		Others:       req.Others,
		RelayAddress: req.RelayAddress,
		RequestID:    rc.requestID,
	})
	err = s.ceremonyError(err)
	if err == nil && len(res.Pubkey) != 32 {
		err = fmt.Errorf("keygen ceremony returned a %d-byte pubkey", len(res.Pubkey))
	}
	s.metrics.ObserveCeremony("keygen", s.outcome(err), time.Since(start))
	s.audit(rc, AuditKeyGenerated, err, slog.String("key_id", req.KeyID),
		slog.Int("t", req.Threshold), slog.Int("n", n), slog.String("room_uuid", req.RoomUUID))
	if err != nil {
		return err
	}
	return rc.writeJSON(map[string]string{"key_id": req.KeyID, "pubkey": hex.EncodeToString(res.Pubkey)})
}
