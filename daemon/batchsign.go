package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// POST /bip340/batch-sign: many messages of one key in one room, one nonce
// per message (DESIGN §2, §4). The rules, also in docs/openapi.yaml:
//   - the body is {sign_requests: [sign bodies]}, each item exactly a
//     /bip340/sign body; an empty list is bad_request_params, one longer
//     than limits.max_batch_size is batch_too_large;
//   - every item names the same room_uuid and relay_address (one ceremony,
//     one room), else the whole request is bad_request_params;
//   - a batch signs with one key: the first item naming a key of the caller
//     that holds a share sets it; an item naming another of the caller's
//     keys fails with bad_request_params;
//   - an item that does not decode, is refused by policy or a rule server,
//     names an unknown key or one without a share, or is declined by
//     another signer fails alone with its error envelope; the others are
//     signed. The answer is 200 with one entry per item, in order.

// BatchSignItem is one item of a batch for the ceremony. Err is this
// daemon's refusal of the item: it keeps its place (so every signer's item
// i is the same request) and is declined in the ceremony.
type BatchSignItem struct {
	Msg    []byte
	Tweaks Tweaks
	Err    error
}

// BatchSignParams are the validated inputs of a batch signing ceremony.
type BatchSignParams struct {
	Owner        string
	KeyID        string
	RoomUUID     string
	RelayAddress string // "" = default relay
	RequestID    string
	Items        []BatchSignItem
}

// BatchSignResult is one item's outcome: a 64-byte signature verified under
// the item's key, or Err (Typed where the cause is known).
type BatchSignResult struct {
	Signature []byte
	Err       error
}

// BatchSigner is implemented by a Ceremonies backend that signs batches;
// without it /bip340/batch-sign answers not_found.
type BatchSigner interface {
	// SignBatch runs one ceremony for all items and returns one result per
	// item, in order. An error fails the whole batch (no item was signed):
	// the ceremony aborted, e.g. naming a cheating signer.
	SignBatch(ctx context.Context, p BatchSignParams) ([]BatchSignResult, error)
}

// batchEntry is one decoded item: its sign body, or why it has none.
type batchEntry struct {
	req *signRequest
	err error
}

func batchSignFields(raws *[]json.RawMessage) []field {
	return []field{{name: "sign_requests", required: true, decode: func(raw []byte) error {
		if raw[0] != '[' || json.Unmarshal(raw, raws) != nil {
			return badRequest(`field "sign_requests" must be an array of sign request objects`)
		}
		return nil
	}}}
}

// decodeBatchSign decodes {sign_requests: [...]}; each item goes through
// the /bip340/sign decoder, and an item that fails it fails alone.
func decodeBatchSign(body []byte, maxItems int) ([]batchEntry, error) {
	var raws []json.RawMessage
	if err := decodeObject(body, batchSignFields(&raws)); err != nil {
		return nil, err
	}
	switch {
	case len(raws) == 0:
		return nil, badRequest(`field "sign_requests" must not be empty`)
	case len(raws) > maxItems:
		return nil, Errorf(ErrTypeBatchTooLarge, "%d sign requests in one batch; this daemon's maximum (limits.max_batch_size) is %d", len(raws), maxItems)
	}
	out := make([]batchEntry, len(raws))
	for i, raw := range raws {
		out[i].req, out[i].err = decodeSign(raw)
		if out[i].err != nil {
			out[i].err = fmt.Errorf("sign_requests[%d]: %w", i, out[i].err)
		}
	}
	return out, nil
}

// batchRoom is the room and relay every decoded item names.
func batchRoom(items []batchEntry) (room, relay string, err error) {
	first := -1
	for i, it := range items {
		if it.req == nil {
			continue
		}
		if first < 0 {
			first, room, relay = i, it.req.RoomUUID, it.req.RelayAddress
			continue
		}
		if it.req.RoomUUID != room || it.req.RelayAddress != relay {
			return "", "", badRequest("sign_requests[%d] names another room_uuid or relay_address than sign_requests[%d]: a batch is one ceremony in one room", i, first)
		}
	}
	return room, relay, nil
}

// batchItemResult is one entry of the answer: {signature} or an error
// envelope.
type batchItemResult struct {
	Signature string `json:"signature,omitempty"`
	ErrType   string `json:"err_type,omitempty"`
	ErrMsg    string `json:"err_msg,omitempty"`
}

func (s *Server) batchSign(rc *reqCtx) error {
	bs, ok := s.b.Ceremonies.(BatchSigner)
	if !ok {
		return Errorf(ErrTypeNotFound, "batch signing is not available on this daemon")
	}
	items, err := decodeBatchSign(rc.body(), s.cfg.Limits.MaxBatchSize)
	rc.wipeBody()
	if err != nil {
		return err
	}
	room, relay, err := batchRoom(items)
	if err != nil {
		return err
	}
	// The caller, its seat and its relay, for the batch as a whole; each
	// item is then authorized on its own (its message against the policy).
	if err := s.authorize(rc, OpSign, AuthParams{RelayAddress: relay}); err != nil {
		return err
	}
	keyID, info, err := s.batchKey(rc, items)
	if err != nil {
		return err
	}
	p := BatchSignParams{Owner: rc.caller.UserID, KeyID: keyID, RoomUUID: room, RelayAddress: relay,
		RequestID: rc.requestID, Items: make([]BatchSignItem, len(items))}
	for i, it := range items {
		bi := &p.Items[i]
		bi.Err = it.err
		if it.req == nil {
			continue
		}
		bi.Msg, bi.Tweaks = it.req.Msg, it.req.Tweaks
		if bi.Err == nil {
			// The external rules of the caller's policy, item by item, before
			// any ceremony message is sent (as /bip340/sign does).
			bi.Err = s.checkSignRules(rc, it.req, info)
		}
	}
	// This daemon joins even when it declines every item: the other
	// signers learn so in round 1 instead of waiting for it. Without a key
	// it has no identity to join with.
	results := make([]BatchSignResult, len(items))
	start := time.Now()
	if keyID != "" {
		ctx, cancel := s.ceremonyContext(rc)
		res, err := bs.SignBatch(ctx, p)
		cancel()
		err = s.ceremonyError(err)
		if err == nil && len(res) != len(items) {
			err = fmt.Errorf("batch ceremony returned %d results for %d items", len(res), len(items))
		}
		s.metrics.ObserveCeremony("batch_sign", s.outcome(err), time.Since(start))
		if err != nil {
			s.audit(rc, AuditKeySigned, err, slog.String("key_id", keyID), slog.String("room_uuid", room), slog.Int("batch_items", len(items)))
			return err
		}
		results = res
	}
	out := make([]batchItemResult, len(items))
	for i := range items {
		r := results[i]
		if p.Items[i].Err != nil {
			r = BatchSignResult{Err: p.Items[i].Err} // this daemon's own reason
		}
		if r.Err == nil && len(r.Signature) != 64 {
			r.Err = fmt.Errorf("batch item %d: a %d-byte signature", i, len(r.Signature))
		}
		itemKey, extra, hashAlgo := keyID, []byte(nil), "" // an item that did not decode names none
		if req := items[i].req; req != nil {
			itemKey, extra, hashAlgo = req.KeyID, req.ExtraData, req.HashAlgo
		}
		digest := sha256.Sum256(p.Items[i].Msg)
		s.audit(rc, AuditKeySigned, r.Err, slog.String("key_id", itemKey), slog.String("room_uuid", room), slog.Int("batch_item", i),
			slog.String("msg_sha256", hex.EncodeToString(digest[:])), slog.Bool("tweaked", p.Items[i].Tweaks.Path != nil || p.Items[i].Tweaks.Tweak != nil),
			slog.String("extra_data", hex.EncodeToString(extra)), slog.String("hash_algo", hashAlgo))
		if r.Err != nil {
			c := s.itemError(rc, i, r.Err)
			out[i] = batchItemResult{ErrType: c.errType, ErrMsg: c.msg}
			continue
		}
		out[i] = batchItemResult{Signature: hex.EncodeToString(r.Signature)}
	}
	return rc.writeJSON(out)
}

// itemError maps an item's error like a whole answer's (one mapping, see
// classify), logging an internal cause with the request id and item.
func (s *Server) itemError(rc *reqCtx, i int, err error) classified {
	c := classify(err, s.rules())
	if c.internal {
		s.log.Error("internal error", "request_id", rc.requestID, "route", routeLabel(rc), "batch_item", i, "error", err.Error())
	}
	return c
}

// batchKey authorizes each decoded item and picks the batch's key: the
// first item's key that holds a share. An item that fails gets its error;
// an error returned fails the whole request (the caller is unknown or the
// daemon overloaded).
func (s *Server) batchKey(rc *reqCtx, items []batchEntry) (string, KeyInfo, error) {
	var keyID string
	var key KeyInfo
	first := -1
	infos := map[string]KeyInfo{}
	for i := range items {
		it := &items[i]
		if it.err != nil {
			continue
		}
		if err := s.authorize(rc, OpSign, AuthParams{KeyID: it.req.KeyID, RelayAddress: it.req.RelayAddress, Msg: it.req.Msg}); err != nil {
			if fatal(err) {
				return "", KeyInfo{}, err
			}
			it.err = fmt.Errorf("sign_requests[%d]: %w", i, err)
			continue
		}
		info, seen := infos[it.req.KeyID]
		if !seen {
			ctx, cancel := s.requestContext(rc)
			var err error
			info, err = s.b.Keys.Get(ctx, rc.caller.UserID, it.req.KeyID)
			cancel()
			if err != nil {
				if !errors.Is(err, ErrKeyNotFound) {
					return "", KeyInfo{}, err
				}
				info = KeyInfo{}
			}
			infos[it.req.KeyID] = info
		}
		switch {
		case info.KeyID == "":
			it.err = ErrKeyNotFound
		case info.State != KeyReady && info.State != KeyPending:
			it.err = ErrKeyNotReady
		case first < 0:
			first, keyID, key = i, info.KeyID, info
		case info.KeyID != keyID:
			it.err = badRequest("sign_requests[%d] names another key than sign_requests[%d]: a batch signs with one key", i, first)
		}
	}
	return keyID, key, nil
}

// fatal reports errors that fail a whole batch rather than one item: the
// caller's credentials and the daemon's load are the same for every item.
func fatal(err error) bool {
	var o *Overload
	if errors.As(err, &o) {
		return true
	}
	c := classify(err, nil)
	return c.errType == ErrTypeAccessDenied || c.errType == ErrTypeYouHaveToBeAdmin
}
