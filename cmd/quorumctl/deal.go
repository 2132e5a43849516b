package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/ceremony"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/relay"
)

// localDealer is quorumctl as the import's dealer (DESIGN §3, import
// -deal-locally): it deals x itself from an ephemeral identity through the
// relay, and every daemon is a recipient, so x never reaches any daemon.
type localDealer struct {
	relay *relay.Client
	addr  string
	id    *envelope.Identity
}

// newLocalDealer returns a dealer with a fresh identity on the relay at
// addr (host:port), which the daemons must reach too (-relay-address).
func newLocalDealer(addr string) (*localDealer, func(), error) {
	rc, err := relay.NewClient("http://"+addr, relay.ClientConfig{})
	if err != nil {
		return nil, nil, fmt.Errorf("relay client: %w", err)
	}
	id, err := envelope.GenerateIdentity()
	if err != nil {
		rc.Close()
		return nil, nil, fmt.Errorf("dealer identity: %w", err)
	}
	return &localDealer{relay: rc, addr: addr, id: id}, func() { id.Zero(); rc.Close() }, nil
}

// dealerID is the dealer's identity as the daemons' dealer_id.
func (d *localDealer) dealerID() string {
	p := d.id.Public()
	return hex.EncodeToString(p[:])
}

// room makes the ceremony's room on the dealer's relay: N+1 seats, the
// dealer's included.
func (d *localDealer) room(ctx context.Context, n int) (string, string, error) {
	room, err := d.relay.CreateRoom(ctx, n+1)
	return room, fmt.Sprintf("on relay %s (N+1 seats: the dealer's too)", d.addr), err
}

// deal runs the dealer's side in room for the parties of keygenIDs and
// returns once every daemon prepared (the success certificate). key is
// wiped as soon as it is copied for dealing; the copy, once dealt.
func (d *localDealer) deal(ctx context.Context, room string, keygenIDs []string, t int, key *privateKey) error {
	var x btcec.ModNScalar
	x.SetBytes(&key.b)
	key.wipe()
	defer x.Zero()
	parties := make([]envelope.Party, len(keygenIDs))
	for i, s := range keygenIDs {
		b, err := hex.DecodeString(s)
		if err == nil {
			parties[i], err = envelope.ParseParty(b)
		}
		if err != nil {
			return fmt.Errorf("daemon %d answered keygen_id %q: %v: %w", i, s, err, errMismatch)
		}
	}
	seated := append(append([]envelope.Party(nil), parties...), d.id.Public())
	_, _, err := ceremony.Deal(ctx, ceremony.DealParams{
		Room: room, Identity: d.id, Parties: parties, Threshold: t,
		Transport:  ceremony.RelayTransport(d.relay, room, d.id, seated),
		PrivateKey: &x,
	})
	return err
}

// flagSet reports whether flag name was given (on the command line or in
// the environment).
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
