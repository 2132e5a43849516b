package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"
)

// LifecycleResult is what a completed refresh or reshare reports.
type LifecycleResult struct {
	Threshold int      `json:"threshold"`
	N         int      `json:"n"`
	Daemons   []string `json:"daemons"`
	RoomUUID  string   `json:"room_uuid"`
	OldKeyIDs []string `json:"old_key_ids"`
	KeyIDs    []string `json:"key_ids"`
	KeygenIDs []string `json:"keygen_ids"`
	Pubkey    string   `json:"pubkey"`
	Dropped   []string `json:"dropped_keygen_ids,omitempty"` // old parties not in the new key
	CerMS     float64  `json:"ceremony_ms"`
}

// ReshareOptions shape a reshare.
type ReshareOptions struct {
	// Threshold is the new key's threshold (0 = the old one).
	Threshold int
	// Lost, for a repair, is a keygen_id that must not stay in the key.
	Lost string
	// DeleteOld makes the holders destroy their old generation once the
	// new one is certified (do it when removing a party).
	DeleteOld bool
}

// Refresh gives every party (keyIDs: one per party) fresh shares of the
// same key under new key_ids; the pubkey is unchanged.
func (q *Quorum) Refresh(ctx context.Context, keyIDs []string, deleteOld bool) (*LifecycleResult, error) {
	if len(keyIDs) != len(q.Parties) {
		return nil, usagef("%d key ids for %d daemons (refresh: one per daemon; reshare: the holders first, then new parties)", len(keyIDs), len(q.Parties))
	}
	return q.lifecycle(ctx, keyIDs, true, ReshareOptions{DeleteOld: deleteOld})
}

// Reshare moves a key to a new party set and/or threshold: the first
// len(keyIDs) parties hold the key (keyIDs), the rest join as new parties
// with fresh slots; every party ends with a new key_id of the same pubkey.
func (q *Quorum) Reshare(ctx context.Context, keyIDs []string, o ReshareOptions) (*LifecycleResult, error) {
	return q.lifecycle(ctx, keyIDs, false, o)
}

// lifecycle reads the holders' key records (one key, ready), makes fresh
// slots for new parties, a room of the new key's size (on party 0's
// daemon unless q.Room makes it), then calls every party at once and
// checks that all answer the old pubkey.
func (q *Quorum) lifecycle(ctx context.Context, keyIDs []string, refresh bool, o ReshareOptions) (*LifecycleResult, error) {
	n, h := len(q.Parties), len(keyIDs)
	if h < 1 || h > n || (refresh && h != n) {
		return nil, usagef("%d key ids for %d daemons (refresh: one per daemon; reshare: the holders first, then new parties)", h, n)
	}
	recs := make([]KeyRecord, h)
	errs := parallel(ctx, h, func(ctx context.Context, i int) error {
		r, err := q.Parties[i].GetKey(ctx, keyIDs[i])
		recs[i] = r
		return err
	})
	if i, err := firstError(errs); err != nil {
		return nil, fmt.Errorf("reading key %s on daemon %d: %w", keyIDs[i], i, err)
	}
	old := recs[0]
	for i, r := range recs {
		if r.State != "ready" || r.Pubkey != old.Pubkey || !slices.Equal(r.Participants, old.Participants) {
			return nil, fmt.Errorf("daemon %d: key %s is %s with pubkey %s, daemon 0's %s: %w", i, r.KeyID, r.State, r.Pubkey, old.Pubkey, ErrMismatch)
		}
	}
	if h < old.T {
		return nil, usagef("%d holders present, the %d-of-%d key needs %d", h, old.T, old.N, old.T)
	}
	t := o.Threshold
	if t == 0 {
		t = old.T
	}
	res := &LifecycleResult{Threshold: t, N: n, Daemons: q.bases(), OldKeyIDs: keyIDs, Pubkey: old.Pubkey,
		KeyIDs: make([]string, n), KeygenIDs: make([]string, n)}
	for i := range h {
		res.KeygenIDs[i] = recs[i].KeygenID
	}
	newcomers := make([]int, 0, n-h)
	for i := h; i < n; i++ {
		newcomers = append(newcomers, i)
	}
	slots, err := q.slots(ctx, newcomers, "new party, ")
	if err != nil {
		return nil, err
	}
	for k, s := range slots {
		res.KeyIDs[h+k], res.KeygenIDs[h+k] = s.KeyID, s.KeygenID
	}
	if o.Lost != "" && slices.Contains(res.KeygenIDs, o.Lost) {
		return nil, usagef("the lost keygen_id %s is still among the parties", o.Lost)
	}
	for _, p := range old.Participants {
		if !slices.Contains(res.KeygenIDs, p) {
			res.Dropped = append(res.Dropped, p)
		}
	}
	room, err := q.newRoom(ctx, 0, n)
	if err != nil {
		return nil, err
	}
	res.RoomUUID = room
	t0 := time.Now()
	pubs := make([][]byte, n)
	errs = parallel(ctx, n, func(ctx context.Context, i int) error {
		oth := others(res.KeygenIDs, i)
		var keyID, what string
		var pk []byte
		var err error
		switch {
		case refresh:
			what = "refresh"
			keyID, pk, err = q.Parties[i].Refresh(ctx, RefreshRequest{RoomUUID: room, KeyID: keyIDs[i],
				RelayAddress: q.RelayAddress, DeleteOld: o.DeleteOld})
		case i < h:
			what = "existing party"
			keyID, pk, err = q.Parties[i].ReshareExisting(ctx, ReshareExistingRequest{RoomUUID: room, KeyID: keyIDs[i],
				NewThreshold: t, NewKeygenIDs: oth, RelayAddress: q.RelayAddress, DeleteOld: o.DeleteOld})
		default:
			what = "new party"
			keyID, pk, err = q.Parties[i].ReshareNew(ctx, ReshareNewRequest{RoomUUID: room, KeyID: res.KeyIDs[i],
				Threshold: t, OthersKeygenIDs: oth, Pubkey: old.Pubkey, RelayAddress: q.RelayAddress})
		}
		if err != nil {
			if errors.Is(err, context.Canceled) {
				q.step("daemon %d: %s call cancelled (another party failed)", i, what)
			} else {
				q.step("daemon %d: %s failed: %v", i, what, err)
			}
			return err
		}
		res.KeyIDs[i], pubs[i] = keyID, pk
		q.step("daemon %d: %s done, new key_id %s", i, what, keyID)
		return nil
	})
	if i, err := firstError(errs); err != nil {
		return nil, fmt.Errorf("daemon %d: %w", i, err)
	}
	res.CerMS = msf(time.Since(t0))
	for i, pk := range pubs {
		if hex.EncodeToString(pk) != old.Pubkey {
			return nil, fmt.Errorf("daemon %d answered pubkey %x, the key is %s: %w", i, pk, old.Pubkey, ErrMismatch)
		}
	}
	q.step("all %d daemons hold the new generation; pubkey unchanged", n)
	return res, nil
}
