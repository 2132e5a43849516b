package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/quorumd/quorumd/daemon/client"
)

func runImportCmd(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("quorumctl import", flag.ContinueOnError)
	var h httpFlags
	var q quorumFlags
	h.register(fs, 2*time.Minute)
	q.register(fs)
	threshold := fs.Int("threshold", 0, "threshold t (1 <= t <= N)")
	importer := fs.Int("importer", 0, "index in -daemons of the importer (the party holding the private key)")
	dealLocally := fs.Bool("deal-locally", false, "deal the key from quorumctl itself (needs -relay-address): every daemon is a recipient and the private key never reaches any daemon")
	privHex := fs.String("private-key", "", "private key to import, 64 hex (prefer QUORUMCTL_PRIVATE_KEY or -private-key-file)")
	privFile := fs.String("private-key-file", "", "file holding the private key in hex (mode 0600)")
	generate := fs.Bool("generate", false, "import a freshly generated private key (it is never printed)")
	relayAddr := fs.String("relay-address", "", "relay host:port for the ceremony (must be on the users' policy allowlist); default: each daemon's default relay")
	encrypt := fs.Bool("encrypt", false, "encrypt the private key to the importer daemon's HPKE import key (encrypted_private_key) instead of sending it in the clear")
	encryptKEM := fs.String("encrypt-kem", "", "with -encrypt: MLKEM768-X25519 (the daemon's default) or DHKEM-P256")
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	sources := 0
	for _, set := range []bool{*privHex != "", *privFile != "", *generate} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return usagef("give exactly one of -private-key, -private-key-file and -generate")
	}
	parties, err := q.parties(&h, len(splitList(q.daemons)))
	if err != nil {
		return err
	}
	var key *privateKey
	switch {
	case *generate:
		key, err = generatePrivateKey()
	case *privFile != "":
		key, err = readPrivateKeyFile(*privFile)
	default:
		key, err = parsePrivateKeyHex(*privHex)
		if err != nil {
			err = usagef("-private-key: %v", err)
		}
	}
	if err != nil {
		return err
	}
	defer key.wipe()
	if *encryptKEM != "" && !*encrypt {
		return usagef("-encrypt-kem needs -encrypt")
	}
	out := h.printer(c)
	qu := &client.Quorum{Parties: parties, RelayAddress: *relayAddr, Log: out.step}
	opts := client.ImportOptions{Threshold: *threshold, Importer: *importer, Encrypt: *encrypt, EncryptKEM: *encryptKEM}
	if *dealLocally {
		switch {
		case *relayAddr == "":
			return usagef("-deal-locally needs -relay-address: quorumctl joins the ceremony's room as the dealer")
		case *encrypt || flagSet(fs, "importer"):
			return usagef("-deal-locally has no importer daemon: it excludes -encrypt and -importer")
		}
		d, err := client.NewLocalDealer(*relayAddr)
		if err != nil {
			return err
		}
		defer d.Close()
		opts.Dealer = d // its relay makes the room
	} else {
		var closeRelay func()
		if qu, closeRelay, err = newQuorum(parties, *relayAddr, out); err != nil {
			return err
		}
		defer closeRelay()
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	res, err := qu.Import(ctx, key.b[:], opts)
	if err != nil {
		return err
	}
	return out.result(res, func(w io.Writer) {
		fmt.Fprintf(w, "key_ids: %s\n", strings.Join(res.KeyIDs, ","))
		fmt.Fprintf(w, "pubkey: %s\n", res.Pubkey)
	})
}

// flagSet reports whether flag name was given (on the command line or in
// the environment).
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
