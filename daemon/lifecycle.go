package daemon

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"
)

// Lifecycle runs the ceremonies that give an existing key a new generation
// (DESIGN §4a): the same public key, fresh shares, possibly new parties and
// threshold, always under a new key_id (Vertex's behaviour; the old key_id
// stays until deleted).
type Lifecycle interface {
	// Refresh gives every party of p.KeyID fresh shares of the same key.
	Refresh(ctx context.Context, p RefreshParams) (ImportResult, error)
	// ReshareExisting is an old holder's side of a reshare: it deals from
	// p.KeyID's share and takes a share of the new generation.
	ReshareExisting(ctx context.Context, p ReshareParams) (ImportResult, error)
	// ReshareNew is a new party's side: p.KeyID is its fresh slot (state
	// created), which receives a share of the key the holders agree on.
	ReshareNew(ctx context.Context, p ReshareParams) (ImportResult, error)
}

// RefreshParams are the validated inputs of a refresh.
type RefreshParams struct {
	Owner, KeyID, RoomUUID, RelayAddress, RequestID string
	Quota                                           int  // the owner's key quota for the new key_id (0: none)
	DeleteOld                                       bool // destroy key_id's share once the new generation is certified
}

// ReshareParams are the validated inputs of either reshare side. Others are
// the new key's other parties (the room); Threshold its threshold. Pubkey,
// optional for a new party, pins the x-only key it accepts.
type ReshareParams struct {
	Owner, KeyID, RoomUUID, RelayAddress, RequestID string
	Threshold                                       int
	Others                                          [][]byte
	Pubkey                                          []byte
	Quota                                           int  // existing party: the key quota for the new key_id
	DeleteOld                                       bool // existing party: as RefreshParams.DeleteOld
}

// Audit events of the lifecycle ceremonies.
const (
	AuditKeyRefreshed AuditEvent = "key.refreshed"
	AuditKeyReshared  AuditEvent = "key.reshared"
)

func (s *Server) refresh(rc *reqCtx) error {
	if s.b.Lifecycle == nil {
		return &Error{Type: ErrTypeNotFound, Msg: "refresh is not served here"}
	}
	var p RefreshParams
	err := decodeObject(rc.body(), refreshFields(&p))
	rc.wipeBody()
	if err != nil {
		return err
	}
	// A refresh makes a key slot (create_key, its quota) and uses the key's
	// share, as signing does.
	if err := s.authorize(rc, OpCreateKey, AuthParams{}); err != nil {
		return err
	}
	p.Quota = rc.caller.KeyQuota
	if err := s.authorize(rc, OpSign, AuthParams{KeyID: p.KeyID, RelayAddress: p.RelayAddress}); err != nil {
		return err
	}
	if p.DeleteOld {
		if err := s.authorize(rc, OpDeleteKeyShare, AuthParams{KeyID: p.KeyID}); err != nil {
			return err
		}
	}
	p.Owner, p.RequestID = rc.caller.UserID, rc.requestID
	ctx, cancel := s.ceremonyContext(rc)
	defer cancel()
	start := time.Now()
	res, err := s.b.Lifecycle.Refresh(ctx, p)
	return s.lifecycleAnswer(rc, "refresh", AuditKeyRefreshed, start, res, err, slog.String("from_key_id", p.KeyID))
}

func (s *Server) reshareExisting(rc *reqCtx) error { return s.reshare(rc, true) }
func (s *Server) reshareNew(rc *reqCtx) error      { return s.reshare(rc, false) }

// reshare serves both reshare endpoints. The new party's body is keygen's
// (threshold, others_keygen_ids, num_parties?) plus an optional pubkey
// pin; an existing party's names the new threshold new_threshold and its
// others new_keygen_ids (the new key's other parties, which are the room).
func (s *Server) reshare(rc *reqCtx, existing bool) error {
	if s.b.Lifecycle == nil {
		return &Error{Type: ErrTypeNotFound, Msg: "reshare is not served here"}
	}
	var (
		p   ReshareParams
		a   importAux
		pub string
	)
	err := decodeObject(rc.body(), reshareFields(&p, &a, &pub, existing))
	rc.wipeBody()
	if err != nil {
		return err
	}
	req := &importRequest{Threshold: p.Threshold}
	if err := req.validate(a.others, a.hasNumParties, a.numParties, s.cfg.Limits.MaxParties); err != nil {
		return err
	}
	p.Others = req.Others
	if pub != "" {
		if p.Pubkey, err = hex.DecodeString(pub); err != nil || len(p.Pubkey) != 32 {
			return badRequest(`field "pubkey" must be a 32-byte x-only key in hex`)
		}
	}
	n := len(p.Others) + 1
	// Both sides store a share of an n-party, t-threshold key, as an import
	// recipient does; an existing party also makes a key slot (create_key,
	// its quota) and uses its old share (sign).
	if existing {
		if err := s.authorize(rc, OpCreateKey, AuthParams{}); err != nil {
			return err
		}
		p.Quota = rc.caller.KeyQuota
		if err := s.authorize(rc, OpSign, AuthParams{KeyID: p.KeyID, RelayAddress: p.RelayAddress}); err != nil {
			return err
		}
		if p.DeleteOld {
			if err := s.authorize(rc, OpDeleteKeyShare, AuthParams{KeyID: p.KeyID}); err != nil {
				return err
			}
		}
	}
	if err := s.authorize(rc, OpImportShareReceiver, AuthParams{KeyID: p.KeyID, N: n, Threshold: p.Threshold, RelayAddress: p.RelayAddress}); err != nil {
		return err
	}
	p.Owner, p.RequestID = rc.caller.UserID, rc.requestID
	ctx, cancel := s.ceremonyContext(rc)
	defer cancel()
	start := time.Now()
	var res ImportResult
	kind := "reshare_new"
	if existing {
		kind = "reshare_existing"
		res, err = s.b.Lifecycle.ReshareExisting(ctx, p)
	} else {
		res, err = s.b.Lifecycle.ReshareNew(ctx, p)
	}
	return s.lifecycleAnswer(rc, kind, AuditKeyReshared, start, res, err, slog.String("from_key_id", p.KeyID),
		slog.Int("t", p.Threshold), slog.Int("n", n), slog.String("room_uuid", p.RoomUUID))
}

func refreshFields(p *RefreshParams) []field {
	return []field{
		stringField("room_uuid", true, 36, checkRoomUUID, &p.RoomUUID),
		stringField("key_id", true, 36, checkKeyID, &p.KeyID),
		stringField("relay_address", false, 261, checkRelayAddress, &p.RelayAddress),
		boolField("delete_old", &p.DeleteOld),
	}
}

func reshareFields(p *ReshareParams, a *importAux, pub *string, existing bool) []field {
	thName, othersName := "threshold", "others_keygen_ids"
	if existing {
		thName, othersName = "new_threshold", "new_keygen_ids"
	}
	fields := []field{
		stringField("room_uuid", true, 36, checkRoomUUID, &p.RoomUUID),
		stringField("key_id", true, 36, checkKeyID, &p.KeyID),
		intField(thName, true, &p.Threshold, &a.hasThreshold),
		intField("num_parties", false, &a.numParties, &a.hasNumParties),
		stringListField(othersName, true, &a.others),
		stringField("relay_address", false, 261, checkRelayAddress, &p.RelayAddress),
	}
	if existing {
		fields = append(fields, boolField("delete_old", &p.DeleteOld))
	} else {
		fields = append(fields, stringField("pubkey", false, 64, nil, pub))
	}
	return fields
}

// boolField decodes an optional JSON boolean.
func boolField(name string, dst *bool) field {
	return field{name: name, decode: func(raw []byte) error {
		switch string(raw) {
		case "true":
			*dst = true
		case "false":
			*dst = false
		default:
			return badRequest("field %q must be a boolean", name)
		}
		return nil
	}}
}

// lifecycleAnswer records the ceremony and answers {key_id, pubkey}.
func (s *Server) lifecycleAnswer(rc *reqCtx, kind string, ev AuditEvent, start time.Time, res ImportResult, err error, attrs ...slog.Attr) error {
	err = s.ceremonyError(err)
	if err == nil && (len(res.Pubkey) != 32 || res.KeyID == "") {
		err = fmt.Errorf("%s ceremony returned key %q with a %d-byte pubkey", kind, res.KeyID, len(res.Pubkey))
	}
	s.metrics.ObserveCeremony(kind, s.outcome(err), time.Since(start))
	s.audit(rc, ev, err, append(attrs, slog.String("key_id", res.KeyID))...)
	if err != nil {
		return err
	}
	return rc.writeJSON(map[string]string{"key_id": res.KeyID, "pubkey": hex.EncodeToString(res.Pubkey)})
}
