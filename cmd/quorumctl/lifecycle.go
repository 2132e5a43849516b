package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/quorumd/quorumd/daemon/client"
)

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
	ids := splitList(*keyIDs)
	o := client.ReshareOptions{DeleteOld: *deleteOld}
	if threshold != nil {
		o.Threshold = *threshold
	}
	if lost != nil {
		o.Lost = strings.ToLower(*lost)
		if o.Lost == "" || len(ids) != len(parties)-1 {
			return usagef("repair: -lost and the holders' -key-ids for all daemons but the last (the replacement)")
		}
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	out := h.printer(c)
	qu := &client.Quorum{Parties: parties, RelayAddress: *relayAddr, Log: out.step}
	var res *client.LifecycleResult
	if verb == "refresh" {
		res, err = qu.Refresh(ctx, ids, *deleteOld)
	} else {
		res, err = qu.Reshare(ctx, ids, o)
	}
	if err != nil {
		return err
	}
	if lost != nil && !slices.Contains(res.Dropped, o.Lost) {
		out.step("note: %s was not a party of the key", o.Lost)
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
