package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"
)

// SignOptions choose the signers and the key derivation of a signature.
type SignOptions struct {
	// Signers are indexes into Quorum.Parties (nil = all parties).
	Signers []int
	// DerivationPath ("m/0/1") and Tweak (64 hex) derive the signing key.
	DerivationPath string
	Tweak          string
}

// Signers is a checked set of u ≥ t signers of one key, ready to sign any
// number of messages (see Quorum.PrepareSign).
type Signers struct {
	q                     *Quorum
	Index                 []int     // the signers' indexes in Quorum.Parties
	Clients               []*Client // their clients
	KeyIDs                []string  // the key id on each signer
	DerivationPath, Tweak string
	// Pubkey is the (derived) x-only key signatures must verify under.
	Pubkey []byte
	T, N   int
}

// PrepareSign reads the key record on every signer (keyIDs: one per party
// of q, as import answered them) and checks that they describe one key:
// ready (a pending signer is completed by a ready one's certificate), the
// same pubkey, participants and t, a distinct share each, and at least t
// signers. With a derivation path or tweak, the expected key comes from
// derive-tweak-pubkey on every signer, which must agree.
func (q *Quorum) PrepareSign(ctx context.Context, keyIDs []string, o SignOptions) (*Signers, error) {
	if len(keyIDs) != len(q.Parties) {
		return nil, usagef("%d key ids for %d daemons", len(keyIDs), len(q.Parties))
	}
	idx := o.Signers
	if idx == nil {
		idx = indexes(len(q.Parties))
	}
	s := &Signers{q: q, Index: idx, DerivationPath: o.DerivationPath, Tweak: o.Tweak}
	for _, i := range idx {
		if i < 0 || i >= len(q.Parties) {
			return nil, usagef("signer index %d: want 0..%d", i, len(q.Parties)-1)
		}
		s.Clients = append(s.Clients, q.Parties[i])
		s.KeyIDs = append(s.KeyIDs, keyIDs[i])
	}
	u := len(idx)
	if u == 0 {
		return nil, usagef("no signers")
	}
	recs := make([]KeyRecord, u)
	errs := parallel(ctx, u, func(ctx context.Context, i int) error {
		r, err := s.Clients[i].GetKey(ctx, s.KeyIDs[i])
		recs[i] = r
		return err
	})
	if i, err := firstError(errs); err != nil {
		return nil, fmt.Errorf("reading key %s on daemon %d: %w", s.KeyIDs[i], idx[i], err)
	}
	var ids []int
	ready := false
	for i, r := range recs {
		// A pending signer is completed by a ready one's certificate
		// (docs/operations.md, "Pending keys"); a replica shows a key it
		// just imported through another replica as pending for a moment.
		if r.State != "ready" && r.State != "pending" || r.OwnID == nil {
			return nil, fmt.Errorf("key %s on daemon %d is in state %q, not ready: import it first", r.KeyID, idx[i], r.State)
		}
		ready = ready || r.State == "ready"
		if r.Pubkey != recs[0].Pubkey || r.T != recs[0].T || r.N != recs[0].N || !slices.Equal(r.Participants, recs[0].Participants) {
			return nil, fmt.Errorf("key %s on daemon %d and key %s on daemon %d are not shares of one key: %w",
				r.KeyID, idx[i], recs[0].KeyID, idx[0], ErrMismatch)
		}
		if slices.Contains(ids, *r.OwnID) {
			return nil, fmt.Errorf("daemon %d holds participant %d, like another signer: %w", idx[i], *r.OwnID, ErrMismatch)
		}
		ids = append(ids, *r.OwnID)
		q.step("daemon %d: key %s %s, participant %d of %d (t=%d)", idx[i], r.KeyID, r.State, *r.OwnID, r.N, r.T)
	}
	if !ready {
		return nil, fmt.Errorf("key %s is pending on every signer, none can complete it: recover it or import again (docs/operations.md, \"Pending keys\")", recs[0].KeyID)
	}
	s.T, s.N = recs[0].T, recs[0].N
	if u < s.T {
		return nil, usagef("%d signers for a %d-of-%d key", u, s.T, s.N)
	}
	pk, err := DecodeHex(recs[0].Pubkey, 32)
	if err != nil {
		return nil, fmt.Errorf("daemon %d: pubkey: %w: %v", idx[0], ErrBadResponse, err)
	}
	s.Pubkey = pk
	if o.DerivationPath == "" && o.Tweak == "" {
		return s, nil
	}
	derived := make([][]byte, u)
	errs = parallel(ctx, u, func(ctx context.Context, i int) error {
		d, err := s.Clients[i].DerivePubkey(ctx, s.KeyIDs[i], o.DerivationPath, o.Tweak)
		derived[i] = d
		return err
	})
	if i, err := firstError(errs); err != nil {
		return nil, fmt.Errorf("deriving the tweaked key on daemon %d: %w", idx[i], err)
	}
	for i, d := range derived {
		if !bytes.Equal(d, derived[0]) {
			return nil, fmt.Errorf("daemons %d and %d derive different tweaked keys: %w", idx[0], idx[i], ErrMismatch)
		}
	}
	s.Pubkey = derived[0]
	q.step("tweaked pubkey %x", s.Pubkey)
	return s, nil
}

// SignResult is what a verified signature reports.
type SignResult struct {
	Signers   []int         `json:"signers"`
	Daemons   []string      `json:"daemons"`
	KeyIDs    []string      `json:"key_ids"`
	RoomUUID  string        `json:"room_uuid"`
	Pubkey    string        `json:"pubkey"` // the (tweaked) x-only key verified against
	Message   string        `json:"message"`
	Signature string        `json:"signature"`
	Threshold int           `json:"threshold"`
	N         int           `json:"n"`
	Timing    SignTimings   `json:"timing_ms"`
	Durations SignDurations `json:"-"`
}

// SignTimings are a signature's phases in milliseconds.
type SignTimings struct {
	Room     float64 `json:"room"`
	Ceremony float64 `json:"ceremony"`
}

// SignDurations are a signature's phases.
type SignDurations struct{ Room, Ceremony time.Duration }

func (s *Signers) daemons() []string {
	out := make([]string, len(s.Clients))
	for i, c := range s.Clients {
		out[i] = c.Base()
	}
	return out
}

// room makes the ceremony's room of size u (Quorum.Room, or /create-room
// on the first signer) and reports how long that took.
func (s *Signers) room(ctx context.Context) (string, time.Duration, error) {
	t0 := time.Now()
	u := len(s.Clients)
	mk := s.q.Room
	if mk == nil {
		mk = DaemonRoom(s.Clients[0], s.Index[0])
	}
	room, where, err := mk(ctx, u)
	if err != nil {
		return "", 0, fmt.Errorf("creating the room %s: %w", where, err)
	}
	s.q.step("room %s (size %d) created %s", room, u, where)
	return room, time.Since(t0), nil
}

func (s *Signers) request(room, keyID string, msg []byte) SignRequest {
	return SignRequest{RoomUUID: room, KeyID: keyID, Msg: hex.EncodeToString(msg),
		DerivationPath: s.DerivationPath, Tweak: s.Tweak, RelayAddress: s.q.RelayAddress}
}

// Sign makes a room of size u, calls /bip340/sign on the u signers at
// once, checks that they all return the same signature and verifies it
// (VerifySignature) under s.Pubkey.
func (s *Signers) Sign(ctx context.Context, msg []byte) (*SignResult, error) {
	u := len(s.Clients)
	res := &SignResult{Signers: s.Index, Daemons: s.daemons(), KeyIDs: s.KeyIDs, Message: hex.EncodeToString(msg),
		Pubkey: hex.EncodeToString(s.Pubkey), Threshold: s.T, N: s.N}
	room, d, err := s.room(ctx)
	if err != nil {
		return nil, err
	}
	res.RoomUUID, res.Durations.Room = room, d
	t0 := time.Now()
	sigs := make([][]byte, u)
	errs := parallel(ctx, u, func(ctx context.Context, i int) error {
		sig, err := s.Clients[i].Sign(ctx, s.request(room, s.KeyIDs[i], msg))
		if err != nil {
			if errors.Is(err, context.Canceled) {
				s.q.step("daemon %d: sign call cancelled (another signer failed)", s.Index[i])
			} else {
				s.q.step("daemon %d: sign failed: %v", s.Index[i], err)
			}
			return err
		}
		sigs[i] = sig
		s.q.step("daemon %d: signed", s.Index[i])
		return nil
	})
	if i, err := firstError(errs); err != nil {
		return nil, fmt.Errorf("signing ceremony, daemon %d: %w", s.Index[i], err)
	}
	res.Durations.Ceremony = time.Since(t0)
	res.Timing = SignTimings{Room: msf(res.Durations.Room), Ceremony: msf(res.Durations.Ceremony)}
	for i, sig := range sigs {
		if !bytes.Equal(sig, sigs[0]) {
			return nil, fmt.Errorf("daemons %d and %d returned different signatures: %w", s.Index[0], s.Index[i], ErrMismatch)
		}
	}
	if err := VerifySignature(s.Pubkey, msg, sigs[0]); err != nil {
		return nil, err
	}
	res.Signature = hex.EncodeToString(sigs[0])
	s.q.step("all %d signers returned the same signature; it verifies under pubkey %x", u, s.Pubkey)
	return res, nil
}

// Sign is PrepareSign then Signers.Sign: one verified signature of msg.
func (q *Quorum) Sign(ctx context.Context, keyIDs []string, msg []byte, o SignOptions) (*SignResult, error) {
	s, err := q.PrepareSign(ctx, keyIDs, o)
	if err != nil {
		return nil, err
	}
	return s.Sign(ctx, msg)
}

// BatchItem is one item of a batch's report.
type BatchItem struct {
	Message   string            `json:"message"`
	Signature string            `json:"signature,omitempty"`
	Errors    map[string]string `json:"errors,omitempty"` // daemon index → err_type: err_msg
}

// BatchResult is what a verified batch reports.
type BatchResult struct {
	Signers  []int       `json:"signers"`
	Daemons  []string    `json:"daemons"`
	KeyIDs   []string    `json:"key_ids"`
	RoomUUID string      `json:"room_uuid"`
	Pubkey   string      `json:"pubkey"`
	Items    []BatchItem `json:"items"`
	Signed   int         `json:"signed"`
	Timing   SignTimings `json:"timing_ms"`
}

// BatchSign makes one room of size u, calls /bip340/batch-sign with the
// same messages on the u signers at once, and checks every item: the same
// signature from every signer, verifying under s.Pubkey, or an error
// envelope from each. Items not signed are reported, not an error.
func (s *Signers) BatchSign(ctx context.Context, msgs [][]byte) (*BatchResult, error) {
	u := len(s.Clients)
	res := &BatchResult{Signers: s.Index, Daemons: s.daemons(), KeyIDs: s.KeyIDs, Pubkey: hex.EncodeToString(s.Pubkey)}
	room, roomTime, err := s.room(ctx)
	if err != nil {
		return nil, err
	}
	res.RoomUUID = room
	t0 := time.Now()
	answers := make([][]BatchItemResult, u)
	errs := parallel(ctx, u, func(ctx context.Context, i int) error {
		reqs := make([]SignRequest, len(msgs))
		for k, m := range msgs {
			reqs[k] = s.request(room, s.KeyIDs[i], m)
		}
		a, err := s.Clients[i].BatchSign(ctx, reqs)
		if err != nil {
			s.q.step("daemon %d: batch-sign failed: %v", s.Index[i], err)
			return err
		}
		answers[i] = a
		s.q.step("daemon %d: answered %d items", s.Index[i], len(a))
		return nil
	})
	if i, err := firstError(errs); err != nil {
		return nil, fmt.Errorf("batch signing ceremony, daemon %d: %w", s.Index[i], err)
	}
	res.Timing = SignTimings{Room: msf(roomTime), Ceremony: msf(time.Since(t0))}
	for k, m := range msgs {
		item := BatchItem{Message: hex.EncodeToString(m)}
		for i, a := range answers {
			r := a[k]
			if r.ErrType != "" {
				if item.Errors == nil {
					item.Errors = map[string]string{}
				}
				item.Errors[fmt.Sprint(s.Index[i])] = r.ErrType + ": " + r.ErrMsg
				continue
			}
			if item.Signature != "" && r.Signature != item.Signature {
				return nil, fmt.Errorf("item %d: daemons returned different signatures: %w", k, ErrMismatch)
			}
			item.Signature = r.Signature
		}
		if item.Signature != "" {
			if item.Errors != nil {
				return nil, fmt.Errorf("item %d: signed by some daemons, failed at others: %w", k, ErrMismatch)
			}
			sig, err := DecodeHex(item.Signature, 64)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w: %v", k, ErrBadResponse, err)
			}
			if err := VerifySignature(s.Pubkey, m, sig); err != nil {
				return nil, fmt.Errorf("item %d: %w", k, err)
			}
			res.Signed++
		}
		res.Items = append(res.Items, item)
	}
	s.q.step("%d of %d items signed by all %d signers and verified under pubkey %x", res.Signed, len(msgs), u, s.Pubkey)
	return res, nil
}
