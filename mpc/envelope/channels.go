package envelope

import (
	"fmt"
	"sync"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/secp"
)

// Channels holds one party's ECDH secrets with its peers for one ceremony:
// the (me, peer) secret is the same for envelopes in both directions, so a
// peer costs one constant-time ECDH per ceremony however many encrypted
// envelopes pass between the two (a signature's round 2 sends one each
// way). Only the derived channel keys differ per direction and session.
//
// The secrets are as sensitive as the identity key they come from (each
// opens every channel between the two identities) and live no longer: a
// ceremony holds its identity key in memory for its whole run, and zeroes
// its Channels when it ends (Zero). Safe for concurrent use.
type Channels struct {
	mu      sync.Mutex
	secrets map[Party]*[32]byte
}

// NewChannels returns an empty cache for one identity's channels (the
// Sender and Inbox given it must belong to that identity). Zero it when the
// ceremony ends.
func NewChannels() *Channels {
	return &Channels{secrets: map[Party]*[32]byte{}}
}

// shared copies the ECDH secret of id with peer into out, computing it on
// first use (outside the lock, so channels to different peers are derived
// in parallel). With a nil Channels it is computed every time.
func (c *Channels) shared(id *Identity, peer Party, out *[32]byte) error {
	if c == nil {
		return ecdh(id.priv, peer, out)
	}
	c.mu.Lock()
	s, ok := c.secrets[peer]
	if ok {
		*out = *s
	}
	c.mu.Unlock()
	if ok {
		return nil
	}
	if err := ecdh(id.priv, peer, out); err != nil {
		return err
	}
	c.mu.Lock()
	if _, ok := c.secrets[peer]; !ok {
		s := new([32]byte)
		*s = *out
		c.secrets[peer] = s
	}
	c.mu.Unlock()
	return nil
}

// Zero wipes every cached secret; the Channels stays usable (it derives
// again on demand).
func (c *Channels) Zero() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, s := range c.secrets {
		clear(s[:])
		delete(c.secrets, p)
	}
}

// ecdh sets out to the x coordinate of priv·peer, constant time in priv.
func ecdh(priv *btcec.ModNScalar, peer Party, out *[32]byte) error {
	pub, err := partyPoint(peer[:])
	if err != nil {
		return fmt.Errorf("envelope: peer key: %w", err)
	}
	shared, err := secp.ECDH(priv, pub)
	if err != nil {
		return fmt.Errorf("envelope: ECDH: %w", err)
	}
	*out = shared
	clear(shared[:])
	return nil
}
