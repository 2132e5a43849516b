package quorum

import (
	"crypto/tls"
	"fmt"
	"sync"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/mpc/relay"
)

// RelayPool keeps one client per relay address. Which addresses a caller
// may name is the policy's decision, made before a request gets here.
type RelayPool struct {
	Default string      // the configured default relay (host:port or URL)
	TLS     *tls.Config // nil: plain HTTP

	mu      sync.Mutex
	clients map[string]*relay.Client
}

// Client returns the client for address ("" = the default relay).
func (p *RelayPool) Client(address string) (*relay.Client, error) {
	if address == "" {
		address = p.Default
	}
	if address == "" {
		return nil, daemon.Errorf(daemon.ErrTypeRoomCreationProblem, "no relay configured")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.clients[address]; c != nil {
		return c, nil
	}
	c, err := relay.NewClient(address, relay.ClientConfig{TLS: p.TLS})
	if err != nil {
		return nil, fmt.Errorf("relay client for %s: %w", address, err)
	}
	if p.clients == nil {
		p.clients = map[string]*relay.Client{}
	}
	p.clients[address] = c
	return c, nil
}

// Close closes every client.
func (p *RelayPool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.clients {
		c.Close()
	}
	p.clients = nil
}
