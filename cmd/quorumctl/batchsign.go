package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/quorumd/quorumd/daemon/client"
)

// errBatchItems: at least one item of a batch was not signed.
var errBatchItems = errors.New("batch items not signed")

func runBatchSignCmd(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("quorumctl batch-sign", flag.ContinueOnError)
	var h httpFlags
	var q quorumFlags
	h.register(fs, 2*time.Minute)
	q.register(fs)
	keyIDs := fs.String("key-ids", "", "comma-separated key ids, one per daemon (as printed by import)")
	msgList := fs.String("msgs", "", "comma-separated messages to sign, hex; one ceremony signs them all")
	signers := fs.String("signers", "", "comma-separated indexes in -daemons of the signers (default: all)")
	path := fs.String("derivation-path", "", "BIP32 unhardened derivation path for every message, e.g. m/0/1")
	tweak := fs.String("tweak", "", "x-only tweak for every message, 64 hex")
	relayAddr := fs.String("relay-address", "", "relay host:port for the ceremony (must be on the users' policy allowlist)")
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	parties, err := q.parties(&h, len(splitList(q.daemons)))
	if err != nil {
		return err
	}
	ids := splitList(*keyIDs)
	if len(ids) != len(parties) {
		return usagef("%d key ids for %d daemons", len(ids), len(parties))
	}
	var msgs [][]byte
	for _, s := range splitList(*msgList) {
		m, err := hex.DecodeString(s)
		if err != nil || s == "" {
			return usagef("-msgs: %q is not non-empty hex", s)
		}
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		return usagef("-msgs must list at least one message")
	}
	idx, err := signerIndexes(*signers, len(parties))
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
	set, err := qu.PrepareSign(ctx, ids, client.SignOptions{Signers: idx, DerivationPath: *path, Tweak: *tweak})
	if err != nil {
		return err
	}
	res, err := set.BatchSign(ctx, msgs)
	if err != nil {
		return err
	}
	if perr := out.result(res, func(w io.Writer) {
		for k, it := range res.Items {
			if it.Signature != "" {
				fmt.Fprintf(w, "item %d: message %s signature %s\n", k, it.Message, it.Signature)
				continue
			}
			var es []string
			for d, e := range it.Errors {
				es = append(es, "daemon "+d+": "+e)
			}
			slices.Sort(es)
			fmt.Fprintf(w, "item %d: message %s NOT SIGNED (%s)\n", k, it.Message, strings.Join(es, "; "))
		}
	}); perr != nil {
		return perr
	}
	if res.Signed < len(msgs) {
		return fmt.Errorf("%d of %d items: %w", len(msgs)-res.Signed, len(msgs), errBatchItems)
	}
	return nil
}
