package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

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
	out := h.printer(c)
	qu, closeRelay, err := newQuorum(parties, *relayAddr, out)
	if err != nil {
		return err
	}
	defer closeRelay()
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	res, err := qu.Keygen(ctx, *threshold)
	if err != nil {
		return err
	}
	return out.result(res, func(w io.Writer) {
		fmt.Fprintf(w, "key_ids: %s\n", strings.Join(res.KeyIDs, ","))
		fmt.Fprintf(w, "pubkey: %s\n", res.Pubkey)
	})
}
