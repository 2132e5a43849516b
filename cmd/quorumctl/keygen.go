package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// Keygen runs one party's side of a keygen (POST /bip340/keygen) and
// returns the x-only pubkey (32 bytes).
func (c *Client) Keygen(ctx context.Context, r ImportRequest) ([]byte, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return c.importCall(ctx, "/bip340/keygen", r.KeyID, body)
}

// keygenResult is what a completed keygen reports.
type keygenResult struct {
	Threshold int      `json:"threshold"`
	N         int      `json:"n"`
	Daemons   []string `json:"daemons"`
	RoomUUID  string   `json:"room_uuid"`
	KeyIDs    []string `json:"key_ids"`
	KeygenIDs []string `json:"keygen_ids"`
	Pubkey    string   `json:"pubkey"`
	Ms        float64  `json:"ceremony_ms"`
}

// runKeygen generates a fresh key T-of-N across the daemons (ChillDKG, no
// dealer): a key slot on every daemon, a room on daemon 0's relay (or
// room), then every daemon's keygen call at once; all must answer the same
// pubkey.
func runKeygen(ctx context.Context, parties []*Client, threshold int, relayAddr string, room roomMaker, out *printer) (*keygenResult, error) {
	n := len(parties)
	if n < 2 {
		return nil, usagef("a keygen needs at least 2 daemons, got %d", n)
	}
	if threshold < 1 || threshold > n {
		return nil, usagef("threshold must satisfy 1 <= t <= N = %d, got %d", n, threshold)
	}
	res := &keygenResult{Threshold: threshold, N: n, KeyIDs: make([]string, n), KeygenIDs: make([]string, n)}
	for _, c := range parties {
		res.Daemons = append(res.Daemons, c.Base)
	}
	slots := make([]KeySlot, n)
	errs := parallel(ctx, n, func(ctx context.Context, i int) error {
		s, err := parties[i].CreateKey(ctx)
		if err != nil {
			return err
		}
		slots[i] = s
		out.step("daemon %d: key slot %s, keygen_id %s", i, s.KeyID, s.KeygenID)
		return nil
	})
	if i, err := firstError(errs); err != nil {
		return nil, fmt.Errorf("creating the key slot on daemon %d: %w", i, err)
	}
	for i, s := range slots {
		res.KeyIDs[i], res.KeygenIDs[i] = s.KeyID, s.KeygenID
	}
	if room == nil {
		room = daemonRoom(parties[0], 0)
	}
	roomID, where, err := room(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("creating the room %s: %w", where, err)
	}
	res.RoomUUID = roomID
	out.step("room %s (size %d) created %s", roomID, n, where)
	t0 := time.Now()
	pubs := make([][]byte, n)
	errs = parallel(ctx, n, func(ctx context.Context, i int) error {
		req := ImportRequest{RoomUUID: roomID, KeyID: slots[i].KeyID, Threshold: threshold, RelayAddress: relayAddr}
		for j, s := range slots {
			if j != i {
				req.OthersKeygenIDs = append(req.OthersKeygenIDs, s.KeygenID)
			}
		}
		pk, err := parties[i].Keygen(ctx, req)
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				out.step("daemon %d: keygen failed: %v", i, err)
			}
			return err
		}
		pubs[i] = pk
		out.step("daemon %d: keygen done, pubkey %x", i, pk)
		return nil
	})
	if i, err := firstError(errs); err != nil {
		return nil, fmt.Errorf("keygen ceremony, daemon %d: %w", i, err)
	}
	res.Ms = msf(time.Since(t0))
	for i, pk := range pubs {
		if !bytes.Equal(pk, pubs[0]) {
			return nil, fmt.Errorf("daemon %d answered pubkey %x, daemon 0 %x: %w", i, pk, pubs[0], errMismatch)
		}
	}
	res.Pubkey = hex.EncodeToString(pubs[0])
	out.step("all %d daemons agree on the generated key", n)
	return res, nil
}

func runKeygenCmd(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("quorumctl keygen", flag.ContinueOnError)
	var h httpFlags
	var q quorumFlags
	h.register(fs, 2*time.Minute)
	q.register(fs)
	threshold := fs.Int("threshold", 0, "threshold t (1 <= t <= N)")
	relayAddr := fs.String("relay-address", "", "relay host:port for the ceremony (must be on the users' policy allowlist); default: each daemon's default relay")
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	parties, err := q.parties(&h, len(splitList(q.daemons)))
	if err != nil {
		return err
	}
	var room roomMaker
	if *relayAddr != "" {
		mk, closeRelay, err := relayRoom(*relayAddr)
		if err != nil {
			return err
		}
		defer closeRelay()
		room = mk
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	out := h.printer(c)
	res, err := runKeygen(ctx, parties, *threshold, *relayAddr, room, out)
	if err != nil {
		return err
	}
	return out.result(res, func(w io.Writer) {
		fmt.Fprintf(w, "key_ids: %s\n", strings.Join(res.KeyIDs, ","))
		fmt.Fprintf(w, "pubkey: %s\n", res.Pubkey)
	})
}
