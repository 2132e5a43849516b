package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/quorumd/quorumd/daemon/secmem"
	"github.com/quorumd/quorumd/internal/tail"
)

// Request order in every handler: decode and validate (400s), wipe the
// body, authorize (401 / policy errors), look the key up, then act. So an
// unauthenticated caller learns nothing but whether its request is well
// formed, and a private key never outlives the decoding of its buffer.

func (rc *reqCtx) body() []byte { return rc.fc.Request.Body() }

// wipeBody zeroes the request body buffer (it may have held a private key or
// an API key) as soon as it has been decoded.
func (rc *reqCtx) wipeBody() { clear(rc.fc.Request.Body()) }

// writeJSON answers 200 with v.
func (rc *reqCtx) writeJSON(v any) error {
	var buf [256]byte
	b, ok := appendStringMap(buf[:0], v)
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			return fmt.Errorf("encode response: %w", err)
		}
	}
	rc.status = 200
	rc.fc.SetStatusCode(200)
	rc.fc.SetContentType("application/json")
	rc.fc.SetBody(b)
	return nil
}

// noBody accepts an empty body or "{}" on routes that take none.
func noBody(rc *reqCtx) error {
	b := rc.body()
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	err := decodeObject(b, nil)
	rc.wipeBody()
	return err
}

func (s *Server) requestContext(rc *reqCtx) (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.idContext(rc), s.cfg.Server.RequestTimeout)
}

func (s *Server) ceremonyContext(rc *reqCtx) (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.idContext(rc), s.cfg.Ceremony.Timeout)
}

// idContext is the base context carrying the request id and the request's
// tail.Runner, made once per request (a sign call takes three deadlines
// from it).
func (s *Server) idContext(rc *reqCtx) context.Context {
	if rc.idCtx == nil {
		rc.idCtx = tail.With(context.WithValue(s.base, requestIDKey, rc.requestID), &rc.tails)
	}
	return rc.idCtx
}

// authorize authenticates the Authorization header (the raw API key, no
// scheme), asks the Authorizer whether the caller may do op, and then takes
// the caller's fair-share seat (see fairshare.go) before any work is done.
func (s *Server) authorize(rc *reqCtx, op Operation, p AuthParams) error {
	key := rc.fc.Request.Header.Peek("Authorization")
	if len(key) == 0 {
		return ErrAccessDenied
	}
	ctx, cancel := s.requestContext(rc)
	defer cancel()
	// Viewed in place: the header is wiped after the request (wipe.go).
	c, err := s.b.Auth.Authorize(ctx, aliasString(key), op, p)
	if err != nil {
		return fmt.Errorf("authorize %s: %w", op, err)
	}
	if c.UserID == "" {
		return fmt.Errorf("authorize %s: authorizer accepted a key without a user id", op)
	}
	rc.caller = c
	// Defence in depth: admin routes need an admin whatever the policy says.
	if AdminOperation(op) && !c.Admin {
		return Errorf(ErrTypeYouHaveToBeAdmin, "this endpoint needs an admin API key")
	}
	return s.admit(rc)
}

// ceremonyError turns an untyped timeout or cancellation into
// executor_result; errors the Typed interface or the Classify hook
// recognise pass unchanged (they may name a culprit).
func (s *Server) ceremonyError(err error) error {
	if err == nil {
		return nil
	}
	var t Typed
	if errors.As(err, &t) {
		return err
	}
	if s.b.Classify != nil {
		if _, _, ok := s.b.Classify(err); ok {
			return err
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w (%v)", Errorf(ErrTypeExecutorResult, "the ceremony did not complete within %s: a party or the relay did not respond", s.cfg.Ceremony.Timeout), err)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%w (%v)", Errorf(ErrTypeExecutorResult, "the ceremony was aborted: the daemon is shutting down"), err)
	}
	return err
}

// outcome is the ceremony metric label: ok or the answered err_type.
func (s *Server) outcome(err error) string {
	if err == nil {
		return "ok"
	}
	return classify(err, s.rules()).errType
}

// --- operational ------------------------------------------------------------

func (s *Server) healthz(rc *reqCtx) error {
	return rc.writeJSON(map[string]string{"status": "ok"})
}

func (s *Server) readyz(rc *reqCtx) error {
	if s.stopping.Load() {
		s.writeError(rc, statusBusy, ErrTypeInternalProblem, "not ready: shutting down")
		return nil
	}
	ctx, cancel := context.WithTimeout(s.base, s.cfg.Server.ReadyTimeout)
	defer cancel()
	errs := make([]error, len(s.b.Ready))
	var wg sync.WaitGroup
	for i, c := range s.b.Ready {
		wg.Go(func() { errs[i] = c.Check(ctx) })
	}
	wg.Wait()
	checks := map[string]string{}
	// Saturated budgets make the daemon unready (new work would be refused)
	// while /healthz, liveness, stays ok.
	failed := s.budgets.saturation()
	for i, c := range s.b.Ready {
		if errs[i] != nil {
			failed = append(failed, c.Name)
			checks[c.Name] = "failed"
			s.log.Warn("readiness check failed", "request_id", rc.requestID, "check", c.Name, "error", errs[i].Error())
			continue
		}
		checks[c.Name] = "ok"
	}
	if len(failed) > 0 {
		s.writeError(rc, statusBusy, ErrTypeInternalProblem, "not ready: "+strings.Join(failed, ", "))
		return nil
	}
	return rc.writeJSON(map[string]any{"status": "ready", "checks": checks})
}

func (s *Server) metricsHandler(rc *reqCtx) error {
	var b bytes.Buffer
	if _, err := s.metrics.WriteTo(&b); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	rc.status = 200
	rc.fc.SetStatusCode(200)
	rc.fc.SetContentType(metricsContentType)
	rc.fc.SetBody(b.Bytes())
	return nil
}

// --- admin ------------------------------------------------------------------

func queryArg(rc *reqCtx, name string) (string, error) {
	if !rc.fc.QueryArgs().Has(name) {
		return "", badRequest("missing query parameter %q", name)
	}
	return string(rc.fc.QueryArgs().Peek(name)), nil
}

// userNameArg reads create-user's optional name, or its Vertex alias
// label; both given must agree. "" means a user without a name.
func userNameArg(rc *reqCtx) (string, error) {
	args := rc.fc.QueryArgs()
	name, label := string(args.Peek("name")), string(args.Peek("label"))
	switch {
	case args.Has("name") && args.Has("label") && name != label:
		return "", badRequest(`"name" and its alias "label" differ`)
	case !args.Has("name") && !args.Has("label"):
		return "", nil
	case !args.Has("name"):
		name = label
	}
	if err := checkUserName(name); err != nil {
		return "", err
	}
	return name, nil
}

func (s *Server) createUser(rc *reqCtx) error {
	if err := noBody(rc); err != nil {
		return err
	}
	name, err := userNameArg(rc)
	if err != nil {
		return err
	}
	if err := s.authorize(rc, OpCreateUser, AuthParams{}); err != nil {
		return err
	}
	ctx, cancel := s.requestContext(rc)
	defer cancel()
	u, err := s.b.Admin.CreateUser(ctx, name)
	if err == nil && (u.UserID == "" || u.APIKey == "") {
		err = errors.New("admin backend returned an empty user id or API key")
	}
	s.audit(rc, AuditUserCreated, err, slog.String("new_user_id", u.UserID), slog.String("name", name))
	if err != nil {
		return err
	}
	return rc.writeJSON(map[string]string{"api_key": u.APIKey, "user_id": u.UserID})
}

func (s *Server) revokeAPIKey(rc *reqCtx) error {
	// req.APIKey views the body in place (no string copy): wipe it only
	// once the revocation is done.
	defer rc.wipeBody()
	req, err := decodeRevoke(rc.body())
	if err != nil {
		return err
	}
	if err := s.authorize(rc, OpRevokeAPIKey, AuthParams{}); err != nil {
		return err
	}
	ctx, cancel := s.requestContext(rc)
	defer cancel()
	err = s.b.Admin.RevokeAPIKey(ctx, req.UserID, req.APIKey)
	s.audit(rc, AuditAPIKeyRevoked, err, slog.String("target_user_id", req.UserID))
	if err != nil {
		return err
	}
	return rc.writeJSON(map[string]string{"user_id": req.UserID})
}

func (s *Server) deleteUser(rc *reqCtx) error {
	if err := noBody(rc); err != nil {
		return err
	}
	userID, err := queryArg(rc, "user_id")
	if err != nil {
		return err
	}
	if err := checkUserID(userID); err != nil {
		return err
	}
	if err := s.authorize(rc, OpDeleteUser, AuthParams{}); err != nil {
		return err
	}
	ctx, cancel := s.requestContext(rc)
	defer cancel()
	keys, err := s.b.Keys.ListByOwner(ctx, userID)
	if err == nil && len(keys) > 0 {
		err = ErrUserHasAssociatedKey
	}
	if err == nil {
		err = s.b.Admin.DeleteUser(ctx, userID)
	}
	s.audit(rc, AuditUserDeleted, err, slog.String("target_user_id", userID))
	if err != nil {
		return err
	}
	return rc.writeJSON(map[string]string{"user_id": userID})
}

func (s *Server) listAllSystemKeys(rc *reqCtx) error {
	if err := noBody(rc); err != nil {
		return err
	}
	if err := s.authorize(rc, OpListAllSystemKeys, AuthParams{}); err != nil {
		return err
	}
	ctx, cancel := s.requestContext(rc)
	defer cancel()
	all, err := s.b.Keys.ListAll(ctx)
	if err != nil {
		return err
	}
	out := make(map[string][]keyRecord, len(all))
	for user, keys := range all {
		recs := make([]keyRecord, 0, len(keys))
		for _, k := range keys {
			recs = append(recs, recordOf(k))
		}
		out[user] = recs
	}
	return rc.writeJSON(map[string]any{"keys_by_user": out})
}

// --- rooms and key slots ------------------------------------------------------

func (s *Server) createRoom(rc *reqCtx) error {
	size, err := decodeCreateRoom(rc.body(), s.cfg.Limits.MaxParties)
	rc.wipeBody()
	if err != nil {
		return err
	}
	if err := s.authorize(rc, OpCreateRoom, AuthParams{N: size}); err != nil {
		return err
	}
	undo, err := s.rooms.reserve(rc.caller.UserID)
	if err != nil {
		var o *Overload
		if !errors.As(err, &o) {
			s.metrics.ObserveRejected(rejectRoomQuota)
		}
		return err
	}
	ctx, cancel := s.requestContext(rc)
	defer cancel()
	room, err := s.b.Rooms.CreateRoom(ctx, size)
	if err != nil {
		undo()
		var t Typed
		if !errors.As(err, &t) {
			s.log.Warn("room creation failed", "request_id", rc.requestID, "error", err.Error())
			return fmt.Errorf("%w (%v)", Errorf(ErrTypeRoomCreationProblem, "the relay could not create a room"), err)
		}
		return err
	}
	if !validUUID(room) {
		return fmt.Errorf("relay returned a malformed room id")
	}
	return rc.writeJSON(map[string]string{"room_uuid": room})
}

func (s *Server) createKey(rc *reqCtx) error {
	if err := noBody(rc); err != nil {
		return err
	}
	var ph *Phases
	if s.log.Enabled(s.base, slog.LevelDebug) {
		_, ph = WithPhases(s.base)
		defer func() { s.log.Debug("create phases (ms)", "request_id", rc.requestID, "phases", ph.String()) }()
	}
	// The policy says the quota (Caller.KeyQuota); the store enforces it in
	// the transaction that inserts the slot, so concurrent creations cannot
	// all pass a count taken before any of them was stored.
	if err := s.authorize(rc, OpCreateKey, AuthParams{}); err != nil {
		return err
	}
	ph.Mark("authorize")
	ctx, cancel := s.requestContext(rc)
	defer cancel()
	if ph != nil {
		ctx = context.WithValue(ctx, phasesKey{}, ph)
	}
	slot, err := s.b.Keys.Create(ctx, rc.caller.UserID, rc.caller.KeyQuota)
	if err == nil && (!ValidKeyID(slot.KeyID) || len(slot.KeygenID) != 33) {
		err = fmt.Errorf("key backend returned a malformed slot (key id %q, %d-byte keygen id)", slot.KeyID, len(slot.KeygenID))
	}
	s.audit(rc, AuditKeyCreated, err, slog.String("key_id", slot.KeyID))
	if err != nil {
		return err
	}
	return rc.writeJSON(map[string]string{"key_id": slot.KeyID, "keygen_id": hex.EncodeToString(slot.KeygenID)})
}

// pathKeyID validates the :key_id path segment.
func pathKeyID(rc *reqCtx) (string, error) {
	if !ValidKeyID(rc.param) {
		return "", badRequest("key_id in the path must be a lowercase UUID")
	}
	return rc.param, nil
}

func (s *Server) exportID(rc *reqCtx) error {
	info, err := s.ownedKey(rc, OpExportID)
	if err != nil {
		return err
	}
	return rc.writeJSON(map[string]string{"keygen_id": hex.EncodeToString(info.KeygenID)})
}

func (s *Server) getKey(rc *reqCtx) error {
	info, err := s.ownedKey(rc, OpGetKey)
	if err != nil {
		return err
	}
	return rc.writeJSON(recordOf(info))
}

// ownedKey serves the GET /bip340/...:key_id routes.
func (s *Server) ownedKey(rc *reqCtx, op Operation) (KeyInfo, error) {
	if err := noBody(rc); err != nil {
		return KeyInfo{}, err
	}
	keyID, err := pathKeyID(rc)
	if err != nil {
		return KeyInfo{}, err
	}
	if err := s.authorize(rc, op, AuthParams{KeyID: keyID}); err != nil {
		return KeyInfo{}, err
	}
	ctx, cancel := s.requestContext(rc)
	defer cancel()
	return s.b.Keys.Get(ctx, rc.caller.UserID, keyID)
}

func (s *Server) deleteKeyShare(rc *reqCtx) error {
	if err := noBody(rc); err != nil {
		return err
	}
	keyID, err := pathKeyID(rc)
	if err != nil {
		return err
	}
	if err := s.authorize(rc, OpDeleteKeyShare, AuthParams{KeyID: keyID}); err != nil {
		return err
	}
	ctx, cancel := s.requestContext(rc)
	defer cancel()
	err = s.b.Keys.Delete(ctx, rc.caller.UserID, keyID)
	s.audit(rc, AuditKeyDeleted, err, slog.String("key_id", keyID))
	if err != nil {
		return err
	}
	return rc.writeJSON(map[string]string{"key_id": keyID})
}

// Vertex's key types (its spelling, typo included, so its clients' enums
// decode): a slot never keyed has no type yet.
const (
	keyTypeBIP340      = "BIP340"
	keyTypeNotKeyedYet = "NotInititalizedYet"
)

// keyRecord is the JSON public record of a key.
type keyRecord struct {
	KeyID        string   `json:"key_id"`
	KeyType      string   `json:"key_type"`
	State        KeyState `json:"state"`
	KeygenID     string   `json:"keygen_id"`
	T            int      `json:"t,omitempty"`
	N            int      `json:"n,omitempty"`
	OwnID        *int     `json:"own_id,omitempty"`
	Pubkey       string   `json:"pubkey,omitempty"`
	PubShares    []string `json:"pubshares,omitempty"`
	Participants []string `json:"participants,omitempty"`
	WaitingFor   string   `json:"waiting_for,omitempty"`
	RefusedBy    string   `json:"refused_by,omitempty"`
	CreatedAt    string   `json:"created_at"`
}

func recordOf(k KeyInfo) keyRecord {
	r := keyRecord{
		KeyID:     k.KeyID,
		KeyType:   keyTypeNotKeyedYet,
		State:     k.State,
		KeygenID:  hex.EncodeToString(k.KeygenID),
		CreatedAt: k.CreatedAt.UTC().Format(time.RFC3339),
	}
	if k.State == KeyReady || k.State == KeyPending {
		r.WaitingFor = k.WaitingFor
		if len(k.RefusedBy) > 0 {
			r.RefusedBy = hex.EncodeToString(k.RefusedBy)
		}
		id := k.ParticipantID
		r.KeyType = keyTypeBIP340
		r.T, r.N, r.OwnID = k.Threshold, k.N, &id
		r.Pubkey = hex.EncodeToString(k.Pubkey)
		for _, p := range k.PubShares {
			r.PubShares = append(r.PubShares, hex.EncodeToString(p))
		}
		for _, p := range k.Participants {
			r.Participants = append(r.Participants, hex.EncodeToString(p))
		}
	}
	return r
}

// --- ceremonies ---------------------------------------------------------------

func (s *Server) importKey(rc *reqCtx) error       { return s.runImport(rc, true) }
func (s *Server) importRecipient(rc *reqCtx) error { return s.runImport(rc, false) }

// runImport serves both import endpoints; importer selects the dealer side.
// The private key is decoded from the body straight into a locked slot
// (Backends.Secrets), lives there until the ceremony returns, and is zeroed
// on every path.
func (s *Server) runImport(rc *reqCtx, importer bool) error {
	var ph *Phases
	if s.log.Enabled(s.base, slog.LevelDebug) {
		_, ph = WithPhases(s.base)
	}
	keySlot, err := s.keySlot(rc, importer)
	if err != nil {
		rc.wipeBody()
		return err
	}
	defer keySlot.Release()
	req, err := decodeImportInto(rc.body(), importer, s.cfg.Limits.MaxParties, keySlot.Scalar())
	rc.wipeBody()
	if err != nil {
		return err
	}
	defer req.PrivateKey.Zero()
	ph.Mark("decode")
	op, kind := OpImportShareReceiver, "import_recipient"
	if importer {
		op, kind = OpImportKey, "import_importer"
	}
	n := len(req.Others) + 1
	if err := s.authorize(rc, op, AuthParams{KeyID: req.KeyID, N: n, Threshold: req.Threshold, RelayAddress: req.RelayAddress}); err != nil {
		return err
	}
	ph.Mark("authorize")
	keygenID, err := s.checkImportable(rc, req)
	if err != nil {
		return err
	}
	ph.Mark("check")
	if req.Encrypted != nil {
		if err := s.decryptPrivateKey(req, keygenID); err != nil {
			return err
		}
		ph.Mark("decrypt")
	}
	p := ImportParams{
		Owner:        rc.caller.UserID,
		KeyID:        req.KeyID,
		RoomUUID:     req.RoomUUID,
		Threshold:    req.Threshold,
		Others:       req.Others,
		RelayAddress: req.RelayAddress,
		RequestID:    rc.requestID,
		Dealer:       req.Dealer,
	}
	ctx, cancel := s.ceremonyContext(rc)
	defer cancel()
	if ph != nil {
		ctx = context.WithValue(ctx, phasesKey{}, ph)
	}
	start := time.Now()
	var res ImportResult
	if importer {
		res, err = s.b.Ceremonies.ImportKey(ctx, p, req.PrivateKey)
		req.PrivateKey.Zero()
	} else {
		res, err = s.b.Ceremonies.ImportRecipient(ctx, p)
	}
	err = s.ceremonyError(err)
	if err == nil && len(res.Pubkey) != 32 {
		err = fmt.Errorf("import ceremony returned a %d-byte pubkey", len(res.Pubkey))
	}
	s.metrics.ObserveCeremony(kind, s.outcome(err), time.Since(start))
	role := "recipient"
	if importer {
		role = "importer"
	}
	s.audit(rc, AuditKeyImported, err, slog.String("key_id", req.KeyID), slog.String("role", role),
		slog.Int("t", req.Threshold), slog.Int("n", n), slog.String("room_uuid", req.RoomUUID))
	if ph != nil {
		ph.Mark("ceremony")
		s.log.Debug("import phases (ms)", "request_id", rc.requestID, "role", role, "phases", ph.String())
	}
	if err != nil {
		return err
	}
	return rc.writeJSON(map[string]string{"key_id": req.KeyID, "pubkey": hex.EncodeToString(res.Pubkey)})
}

// keySlot takes the locked slot key-importer decodes private_key into (a
// recipient gets an unlocked, unused one). It is released, zeroed, by the
// caller.
func (s *Server) keySlot(rc *reqCtx, importer bool) (*secmem.Slot, error) {
	if !importer || s.b.Secrets == nil {
		return secmem.Unlocked(1)[0], nil
	}
	ctx, cancel := s.requestContext(rc)
	defer cancel()
	sl, err := s.b.Secrets.AcquireN(ctx, 1)
	if err != nil {
		return nil, fmt.Errorf("waiting for locked memory for the private key (server.locked_secret_slots, %d in use): %w", s.b.Secrets.InUse(), err)
	}
	return sl[0], nil
}

// checkImportable fails early, before a room is joined, when the key is not
// the caller's, already holds a share, or its own keygen_id is listed among
// the others; it returns the slot's keygen_id. The ceremony's commit
// re-checks the state atomically.
func (s *Server) checkImportable(rc *reqCtx, req *importRequest) ([]byte, error) {
	ctx, cancel := s.requestContext(rc)
	defer cancel()
	info, err := s.b.Keys.Get(ctx, rc.caller.UserID, req.KeyID)
	if err != nil {
		return nil, err
	}
	switch info.State {
	case KeyCreated:
	case KeyReady:
		return nil, ErrKeyAlreadyImported
	case KeyPending:
		return nil, ErrKeyPending
	default:
		return nil, fmt.Errorf("key %s in unknown state %q", req.KeyID, info.State)
	}
	for i, o := range req.Others {
		if bytes.Equal(o, info.KeygenID) {
			return nil, badRequest("others_keygen_ids[%d] is this key's own keygen_id", i)
		}
	}
	if bytes.Equal(req.Dealer, info.KeygenID) {
		return nil, badRequest("dealer_id is this key's own keygen_id")
	}
	return info.KeygenID, nil
}

func (s *Server) sign(rc *reqCtx) error {
	req, err := decodeSign(rc.body())
	rc.wipeBody()
	if err != nil {
		return err
	}
	if err := s.authorize(rc, OpSign, AuthParams{KeyID: req.KeyID, RelayAddress: req.RelayAddress, Msg: req.Msg}); err != nil {
		return err
	}
	rctx, rcancel := s.requestContext(rc)
	info, err := s.b.Keys.Get(rctx, rc.caller.UserID, req.KeyID)
	rcancel()
	if err != nil {
		return err
	}
	// A pending key may sign: the ceremony recovers it from a certificate
	// another signer attaches, or refuses.
	if info.State != KeyReady && info.State != KeyPending {
		return ErrKeyNotReady
	}
	if err := s.checkSignRules(rc, req, info); err != nil {
		return err
	}
	ctx, cancel := s.ceremonyContext(rc)
	defer cancel()
	start := time.Now()
	sig, err := s.b.Ceremonies.Sign(ctx, SignParams{
		Owner:        rc.caller.UserID,
		KeyID:        req.KeyID,
		RoomUUID:     req.RoomUUID,
		Msg:          req.Msg,
		Tweaks:       req.Tweaks,
		RelayAddress: req.RelayAddress,
		RequestID:    rc.requestID,
	})
	err = s.ceremonyError(err)
	if err == nil && len(sig) != 64 {
		err = fmt.Errorf("sign ceremony returned a %d-byte signature", len(sig))
	}
	s.metrics.ObserveCeremony("sign", s.outcome(err), time.Since(start))
	digest := sha256.Sum256(req.Msg)
	s.audit(rc, AuditKeySigned, err, slog.String("key_id", req.KeyID), slog.String("room_uuid", req.RoomUUID),
		slog.String("msg_sha256", hex.EncodeToString(digest[:])), slog.Bool("tweaked", req.Tweaks.Path != nil || req.Tweaks.Tweak != nil),
		slog.String("extra_data", hex.EncodeToString(req.ExtraData)), slog.String("hash_algo", req.HashAlgo))
	if err != nil {
		return err
	}
	return rc.writeJSON(map[string]string{"signature": hex.EncodeToString(sig)})
}

func (s *Server) deriveTweakPubkey(rc *reqCtx) error {
	req, err := decodeDerive(rc.body())
	rc.wipeBody()
	if err != nil {
		return err
	}
	if err := s.authorize(rc, OpDeriveTweakPubkey, AuthParams{KeyID: req.KeyID}); err != nil {
		return err
	}
	ctx, cancel := s.requestContext(rc)
	defer cancel()
	pk, err := s.b.Keys.DerivePubkey(ctx, rc.caller.UserID, req.KeyID, req.Tweaks)
	if err != nil {
		return err
	}
	if len(pk) != 32 {
		return fmt.Errorf("derive returned a %d-byte pubkey", len(pk))
	}
	return rc.writeJSON(map[string]string{"pubkey": hex.EncodeToString(pk)})
}
