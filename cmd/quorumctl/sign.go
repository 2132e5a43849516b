package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/quorumd/quorumd/daemon/client"
)

// newQuorum returns the parties as a client.Quorum whose steps print to
// out; with a relay address, rooms are made on that relay (a daemon's
// /create-room only knows its default relay). Call the func when done.
func newQuorum(parties []*client.Client, relayAddr string, out *printer) (*client.Quorum, func(), error) {
	qu := &client.Quorum{Parties: parties, RelayAddress: relayAddr, Log: out.step}
	if relayAddr == "" {
		return qu, func() {}, nil
	}
	mk, closeRelay, err := client.RelayRoom(relayAddr)
	if err != nil {
		return nil, nil, err
	}
	qu.Room = mk
	return qu, closeRelay, nil
}

func runSignCmd(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("quorumctl sign", flag.ContinueOnError)
	var h httpFlags
	var q quorumFlags
	h.register(fs, 2*time.Minute)
	q.register(fs)
	keyIDs := fs.String("key-ids", "", "comma-separated key ids, one per daemon (as printed by import)")
	msgHex := fs.String("msg", "", "message to sign, hex")
	signers := fs.String("signers", "", "comma-separated indexes in -daemons of the signers (default: all)")
	path := fs.String("derivation-path", "", "BIP32 unhardened derivation path, e.g. m/0/1")
	tweak := fs.String("tweak", "", "x-only tweak, 64 hex")
	relayAddr := fs.String("relay-address", "", "relay host:port for the ceremony (must be on the users' policy allowlist)")
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	n := len(splitList(q.daemons))
	parties, err := q.parties(&h, n)
	if err != nil {
		return err
	}
	ids := splitList(*keyIDs)
	if len(ids) != len(parties) {
		return usagef("%d key ids for %d daemons", len(ids), len(parties))
	}
	msg, err := hex.DecodeString(*msgHex)
	if err != nil || *msgHex == "" {
		return usagef("-msg must be non-empty hex")
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
	res, err := qu.Sign(ctx, ids, msg, client.SignOptions{Signers: idx, DerivationPath: *path, Tweak: *tweak})
	if err != nil {
		return err
	}
	return out.result(res, func(w io.Writer) {
		fmt.Fprintf(w, "message: %s\n", res.Message)
		fmt.Fprintf(w, "signature: %s\n", res.Signature)
	})
}

func runVerifyCmd(_ context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("quorumctl verify", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	pubHex := fs.String("pubkey", "", "x-only public key, 64 hex")
	msgHex := fs.String("msg", "", "message, hex")
	sigHex := fs.String("sig", "", "signature, 128 hex")
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	pub, err := client.DecodeHex(*pubHex, 32)
	if err != nil {
		return usagef("-pubkey: %v", err)
	}
	msg, err := hex.DecodeString(*msgHex)
	if err != nil {
		return usagef("-msg: not hex")
	}
	sig, err := client.DecodeHex(*sigHex, 64)
	if err != nil {
		return usagef("-sig: %v", err)
	}
	if err := client.VerifySignature(pub, msg, sig); err != nil {
		return err
	}
	p := &printer{w: c.stdout, json: *asJSON}
	return p.result(map[string]any{"valid": true, "pubkey": *pubHex, "message": *msgHex, "signature": *sigHex},
		func(w io.Writer) { fmt.Fprintln(w, "valid: the BIP340 signature verifies") })
}
