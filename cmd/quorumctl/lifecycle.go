package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// lifecyclePlan is one refresh or reshare across daemons: the first
// len(KeyIDs) daemons hold the key (KeyIDs), the rest join as new parties.
type lifecyclePlan struct {
	Parties      []*Client
	KeyIDs       []string
	Refresh      bool
	Threshold    int    // reshare: the new threshold (0 = the old one)
	Lost         string // repair: the keygen_id that must not stay in the key
	DeleteOld    bool   // holders destroy their old generation once the new one is certified
	RelayAddress string
}

// lifecycleResult is what a completed refresh or reshare reports.
type lifecycleResult struct {
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

// lifecycleRequest is the body of refresh and both reshare endpoints.
type lifecycleRequest struct {
	RoomUUID     string   `json:"room_uuid"`
	KeyID        string   `json:"key_id"`
	NewThreshold int      `json:"new_threshold,omitempty"`
	NewKeygenIDs []string `json:"new_keygen_ids,omitempty"`
	Threshold    int      `json:"threshold,omitempty"`
	Others       []string `json:"others_keygen_ids,omitempty"`
	Pubkey       string   `json:"pubkey,omitempty"`
	RelayAddress string   `json:"relay_address,omitempty"`
	DeleteOld    bool     `json:"delete_old,omitempty"`
}

// lifecycleCall posts one party's call and returns the new key_id and pubkey.
func (c *Client) lifecycleCall(ctx context.Context, path string, r lifecycleRequest) (string, []byte, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return "", nil, err
	}
	var out struct {
		KeyID  string `json:"key_id"`
		Pubkey string `json:"pubkey"`
	}
	if err := c.do(ctx, http.MethodPost, path, nil, body, &out); err != nil {
		return "", nil, err
	}
	pk, err := decodeHexLen(out.Pubkey, 32)
	if err != nil {
		return "", nil, c.badResponse(path, "pubkey: %v", err)
	}
	return out.KeyID, pk, nil
}

// runLifecycle reads the holders' key records (one key, ready), makes fresh
// slots for new parties, a room of the new key's size, then calls every
// party at once and checks that all answer the old pubkey.
func runLifecycle(ctx context.Context, p lifecyclePlan, out *printer) (*lifecycleResult, error) {
	n, h := len(p.Parties), len(p.KeyIDs)
	if h < 1 || h > n || (p.Refresh && h != n) {
		return nil, usagef("%d key ids for %d daemons (refresh: one per daemon; reshare: the holders first, then new parties)", h, n)
	}
	recs := make([]KeyRecord, h)
	errs := parallel(ctx, h, func(ctx context.Context, i int) error {
		r, err := p.Parties[i].GetKey(ctx, p.KeyIDs[i])
		recs[i] = r
		return err
	})
	if i, err := firstError(errs); err != nil {
		return nil, fmt.Errorf("reading key %s on daemon %d: %w", p.KeyIDs[i], i, err)
	}
	old := recs[0]
	for i, r := range recs {
		if r.State != "ready" || r.Pubkey != old.Pubkey || !slices.Equal(r.Participants, old.Participants) {
			return nil, fmt.Errorf("daemon %d: key %s is %s with pubkey %s, daemon 0's %s: %w", i, r.KeyID, r.State, r.Pubkey, old.Pubkey, errMismatch)
		}
	}
	if h < old.T {
		return nil, usagef("%d holders present, the %d-of-%d key needs %d", h, old.T, old.N, old.T)
	}
	t := p.Threshold
	if t == 0 {
		t = old.T
	}
	res := &lifecycleResult{Threshold: t, N: n, OldKeyIDs: p.KeyIDs, Pubkey: old.Pubkey,
		KeyIDs: make([]string, n), KeygenIDs: make([]string, n)}
	for i, c := range p.Parties {
		res.Daemons = append(res.Daemons, c.Base)
		if i < h {
			res.KeygenIDs[i] = recs[i].KeygenID
		}
	}
	errs = parallel(ctx, n-h, func(ctx context.Context, i int) error {
		s, err := p.Parties[h+i].CreateKey(ctx)
		if err != nil {
			return err
		}
		res.KeyIDs[h+i], res.KeygenIDs[h+i] = s.KeyID, s.KeygenID
		out.step("daemon %d: new party, key slot %s, keygen_id %s", h+i, s.KeyID, s.KeygenID)
		return nil
	})
	if i, err := firstError(errs); err != nil {
		return nil, fmt.Errorf("creating the key slot on daemon %d: %w", h+i, err)
	}
	if p.Lost != "" && slices.Contains(res.KeygenIDs, p.Lost) {
		return nil, usagef("the lost keygen_id %s is still among the parties", p.Lost)
	}
	for _, q := range old.Participants {
		if !slices.Contains(res.KeygenIDs, q) {
			res.Dropped = append(res.Dropped, q)
		}
	}
	room, where, err := daemonRoom(p.Parties[0], 0)(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("creating the room %s: %w", where, err)
	}
	res.RoomUUID = room
	out.step("room %s (size %d) created %s", room, n, where)
	t0 := time.Now()
	pubs := make([][]byte, n)
	errs = parallel(ctx, n, func(ctx context.Context, i int) error {
		var others []string
		for j, k := range res.KeygenIDs {
			if j != i {
				others = append(others, k)
			}
		}
		r := lifecycleRequest{RoomUUID: room, RelayAddress: p.RelayAddress, DeleteOld: p.DeleteOld && i < h}
		path, what := "/bip340/refresh", "refresh"
		switch {
		case p.Refresh:
			r.KeyID = p.KeyIDs[i]
		case i < h:
			path, what = "/bip340/reshare/existing-party", "existing party"
			r.KeyID, r.NewThreshold, r.NewKeygenIDs = p.KeyIDs[i], t, others
		default:
			path, what = "/bip340/reshare/new-party", "new party"
			r.KeyID, r.Threshold, r.Others, r.Pubkey = res.KeyIDs[i], t, others, old.Pubkey
		}
		keyID, pk, err := p.Parties[i].lifecycleCall(ctx, path, r)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				out.step("daemon %d: %s call cancelled (another party failed)", i, what)
			} else {
				out.step("daemon %d: %s failed: %v", i, what, err)
			}
			return err
		}
		res.KeyIDs[i], pubs[i] = keyID, pk
		out.step("daemon %d: %s done, new key_id %s", i, what, keyID)
		return nil
	})
	if i, err := firstError(errs); err != nil {
		return nil, fmt.Errorf("daemon %d: %w", i, err)
	}
	res.CerMS = msf(time.Since(t0))
	for i, pk := range pubs {
		if hex.EncodeToString(pk) != old.Pubkey {
			return nil, fmt.Errorf("daemon %d answered pubkey %x, the key is %s: %w", i, pk, old.Pubkey, errMismatch)
		}
	}
	out.step("all %d daemons hold the new generation; pubkey unchanged", n)
	return res, nil
}

func runRefreshCmd(ctx context.Context, c *cli, args []string) error {
	return lifecycleCmd(ctx, c, args, "refresh")
}

func runReshareCmd(ctx context.Context, c *cli, args []string) error {
	return lifecycleCmd(ctx, c, args, "reshare")
}

func runRepairCmd(ctx context.Context, c *cli, args []string) error {
	return lifecycleCmd(ctx, c, args, "repair")
}

// lifecycleCmd is the refresh, reshare and repair verbs: repair is a
// reshare to the holders plus a replacement daemon at the old threshold,
// checking that the lost keygen_id leaves the key.
func lifecycleCmd(ctx context.Context, c *cli, args []string, verb string) error {
	fs := flag.NewFlagSet("quorumctl "+verb, flag.ContinueOnError)
	var h httpFlags
	var q quorumFlags
	h.register(fs, 2*time.Minute)
	q.register(fs)
	keyIDs := fs.String("key-ids", "", "comma-separated key ids of the holders: the first daemons of -daemons (refresh: all)")
	var threshold *int
	var lost *string
	relayAddr := fs.String("relay-address", "", "relay host:port for the ceremony (must be on the users' policy allowlist)")
	deleteOld := fs.Bool("delete-old", false, "holders delete their old key_ids once the new generation is certified (do it when removing a party)")
	switch verb {
	case "reshare":
		threshold = fs.Int("threshold", 0, "the new threshold (default: the old one); daemons after the holders join as new parties")
	case "repair":
		lost = fs.String("lost", "", "keygen_id of the party whose share and identity are lost (checked to leave the key)")
	}
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	parties, err := q.parties(&h, len(splitList(q.daemons)))
	if err != nil {
		return err
	}
	plan := lifecyclePlan{Parties: parties, KeyIDs: splitList(*keyIDs), Refresh: verb == "refresh", RelayAddress: *relayAddr, DeleteOld: *deleteOld}
	if threshold != nil {
		plan.Threshold = *threshold
	}
	if lost != nil {
		plan.Lost = strings.ToLower(*lost)
		if plan.Lost == "" || len(plan.KeyIDs) != len(parties)-1 {
			return usagef("repair: -lost and the holders' -key-ids for all daemons but the last (the replacement)")
		}
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	out := h.printer(c)
	res, err := runLifecycle(ctx, plan, out)
	if err != nil {
		return err
	}
	if lost != nil && !slices.Contains(res.Dropped, plan.Lost) {
		out.step("note: %s was not a party of the key", plan.Lost)
	}
	return out.result(res, func(w io.Writer) {
		fmt.Fprintf(w, "key_ids: %s\n", strings.Join(res.KeyIDs, ","))
		fmt.Fprintf(w, "pubkey: %s\n", res.Pubkey)
		fmt.Fprintf(w, "threshold: %d of %d\n", res.Threshold, res.N)
		if len(res.Dropped) > 0 {
			fmt.Fprintf(w, "removed: %s\n", strings.Join(res.Dropped, ","))
		}
	})
}
