package relay

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Per-client limits (DESIGN §9): a client may hold at most
// Config.MaxRoomsPerClient open rooms and create them at
// Config.ClientRoomRate per second (bursts of Config.ClientRoomBurst), so one
// client flooding /v1/rooms leaves the relay's room budget to the others.

// clientID names the requester: its TLS client certificate when it sent one
// (the SHA-256 of the leaf, so a client keeps its identity across
// addresses), else its IP address (not the port: reconnecting is free).
func clientID(ctx *fasthttp.RequestCtx) string {
	if cs := ctx.TLSConnectionState(); cs != nil && len(cs.PeerCertificates) > 0 {
		h := sha256.Sum256(cs.PeerCertificates[0].Raw)
		return "cert:" + hex.EncodeToString(h[:16])
	}
	addr := ctx.RemoteAddr()
	if ta, ok := addr.(*net.TCPAddr); ok {
		return "ip:" + ta.IP.String()
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "addr:" + addr.String()
	}
	return "ip:" + host
}

// clientState is one client's open rooms and room-creation token bucket.
type clientState struct {
	rooms  int
	tokens float64
	last   time.Time
}

// clientLimits tracks clientState per client identity.
type clientLimits struct {
	maxRooms int
	rate     float64 // tokens per second
	burst    float64

	mu      sync.Mutex
	clients map[string]*clientState
}

func newClientLimits(maxRooms int, rate float64, burst int) *clientLimits {
	return &clientLimits{maxRooms: maxRooms, rate: rate, burst: float64(burst), clients: make(map[string]*clientState)}
}

// admit takes one room for client if its count and rate allow, or returns
// the code to refuse with.
func (l *clientLimits) admit(client string, now time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.clients[client]
	if c == nil {
		c = &clientState{tokens: l.burst, last: now}
		l.clients[client] = c
	}
	c.tokens = min(l.burst, c.tokens+now.Sub(c.last).Seconds()*l.rate)
	c.last = now
	if c.rooms >= l.maxRooms {
		return CodeClientRoomLimit
	}
	if c.tokens < 1 {
		return CodeClientRateLimit
	}
	c.tokens--
	c.rooms++
	return ""
}

// release returns a room of client (closed, expired, or never created).
func (l *clientLimits) release(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.clients[client]; c != nil && c.rooms > 0 {
		c.rooms--
	}
}

// sweep forgets clients with no open room and a full bucket: they are
// indistinguishable from new ones.
func (l *clientLimits) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, c := range l.clients {
		if c.rooms == 0 && c.tokens+now.Sub(c.last).Seconds()*l.rate >= l.burst {
			delete(l.clients, id)
		}
	}
}

// count returns the number of clients tracked (for Stats).
func (l *clientLimits) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}
