package client

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/ceremony"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/relay"
)

// LocalDealer is the client itself as an import's dealer (DESIGN §3,
// quorumctl import -deal-locally): it deals the key from an ephemeral
// identity through the relay, and every daemon is a recipient, so the
// private key never reaches any daemon.
type LocalDealer struct {
	relay *relay.Client
	addr  string
	id    *envelope.Identity
}

// NewLocalDealer returns a dealer with a fresh identity on the relay at
// addr (host:port), which the daemons must reach too (Quorum.RelayAddress).
// Close it when done.
func NewLocalDealer(addr string) (*LocalDealer, error) {
	rc, err := relay.NewClient("http://"+addr, relay.ClientConfig{})
	if err != nil {
		return nil, fmt.Errorf("relay client: %w", err)
	}
	id, err := envelope.GenerateIdentity()
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("dealer identity: %w", err)
	}
	return &LocalDealer{relay: rc, addr: addr, id: id}, nil
}

// Close zeroes the dealer's identity and releases its relay client.
func (d *LocalDealer) Close() { d.id.Zero(); d.relay.Close() }

// ID is the dealer's identity as the daemons' dealer_id (hex).
func (d *LocalDealer) ID() string {
	p := d.id.Public()
	return hex.EncodeToString(p[:])
}

// room makes the ceremony's room on the dealer's relay: N+1 seats, the
// dealer's included.
func (d *LocalDealer) room(ctx context.Context, n int) (string, string, error) {
	room, err := d.relay.CreateRoom(ctx, n+1)
	return room, fmt.Sprintf("on relay %s (N+1 seats: the dealer's too)", d.addr), err
}

// deal runs the dealer's side in room for the parties of keygenIDs and
// returns once every daemon prepared (the success certificate). Its copy
// of the key is zeroed once dealt; key stays the caller's to wipe.
func (d *LocalDealer) deal(ctx context.Context, room string, keygenIDs []string, t int, key []byte) error {
	var x btcec.ModNScalar
	var kb [32]byte
	copy(kb[:], key)
	x.SetBytes(&kb)
	clear(kb[:])
	defer x.Zero()
	parties := make([]envelope.Party, len(keygenIDs))
	for i, s := range keygenIDs {
		b, err := hex.DecodeString(s)
		if err == nil {
			parties[i], err = envelope.ParseParty(b)
		}
		if err != nil {
			return fmt.Errorf("daemon %d answered keygen_id %q: %v: %w", i, s, err, ErrMismatch)
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
