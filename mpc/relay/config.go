package relay

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/quorumd/quorumd/internal/uuid"
)

// Defaults for Config fields left zero.
const (
	DefaultMaxEnvelopeBytes   = 1 << 20 // 1 MiB
	DefaultMaxRoomMessages    = 10000
	DefaultMaxRoomBytes       = 64 << 20
	DefaultMaxRooms           = 10000
	DefaultMaxTotalBytes      = 1 << 30
	DefaultMaxRoomSize        = 256
	DefaultRoomTTL            = 10 * time.Minute
	DefaultMaxRoomTTL         = time.Hour
	DefaultMaxWait            = 30 * time.Second
	DefaultForgetAfter        = time.Hour
	DefaultMaxTombstones      = 100000
	DefaultGCInterval         = 5 * time.Second
	DefaultMaxFetchBytes      = 8 << 20
	DefaultReadTimeout        = 15 * time.Second
	DefaultWriteTimeout       = 15 * time.Second
	DefaultIdleTimeout        = 120 * time.Second
	DefaultMaxConcurrentConns = 16384
	DefaultMaxTotalMessages   = 1000000
	DefaultMaxSetsPerRoom     = 4
	DefaultMaxClockSkew       = 5 * time.Minute
	DefaultMaxRoomsPerClient  = 2000
	DefaultClientRoomRate     = 50 // rooms per second
	DefaultClientRoomBurst    = 200
)

// InterceptFunc sees every accepted envelope before it is stored. It exists
// for fault-injection tests: it lets a test run a real relay that tampers with
// (returns a different newBody) or silently drops (drop=true) envelopes,
// modelling the untrusted relay of DESIGN §3. A nil newBody keeps the
// original. A dropped envelope is still acknowledged with a sequence number,
// as a malicious relay would do. It must be safe for concurrent use.
type InterceptFunc func(room, from, to string, body []byte) (newBody []byte, drop bool)

// Config bounds what one relay accepts. Zero fields take the Default* values.
type Config struct {
	MaxEnvelopeBytes   int           // largest POSTed envelope body
	MaxRoomMessages    int           // envelopes stored per room
	MaxRoomBytes       int           // heap held per room: envelopes with MessageOverhead each, sets and seats
	MaxRooms           int           // rooms open at once
	MaxTotalBytes      int64         // heap held across all rooms, counted as MaxRoomBytes (memory bound)
	MaxTotalMessages   int           // envelopes held across all rooms
	MaxSetsPerRoom     int           // distinct member sets one room may hold (the honest one and a few squatters)
	MaxClockSkew       time.Duration // a seat claim's time may differ this much from the relay's clock
	MaxRoomsPerClient  int           // open rooms one client (TLS client certificate, else IP address) may hold
	ClientRoomRate     float64       // rooms per second one client may create, on average
	ClientRoomBurst    int           // rooms one client may create at once
	MaxRoomSize        int           // largest allowed room size (parties)
	DefaultRoomTTL     time.Duration // room lifetime when the creator gives none
	MaxRoomTTL         time.Duration // longest room lifetime a creator may ask for
	MaxWait            time.Duration // longest long-poll wait; longer wait_ms (≤ 30000) are capped to it
	ForgetAfter        time.Duration // closed/expired rooms answer 410 this long, then 404
	MaxTombstones      int           // closed rooms remembered at most (oldest forgotten first)
	GCInterval         time.Duration // how often expired rooms are swept
	MaxFetchBytes      int           // envelope bytes returned per fetch (at least one message is always returned)
	ReadTimeout        time.Duration // reading one full request
	WriteTimeout       time.Duration // writing one response (starts after the long-poll handler returns)
	IdleTimeout        time.Duration // keep-alive idle time between requests
	MaxConcurrentConns int           // connections served at once (each long-poll holds one)

	// Name is the relay's identity inside seat claims: a claim signed for
	// one relay is void at any other. Relays serving one deployment share
	// it; empty means a random name per process.
	Name string

	// NATS, when set, keeps rooms and envelopes in NATS JetStream so that
	// several relay instances serve the same rooms (jetstream.go); Name is
	// then required. Nil keeps them in this process's memory.
	NATS *NATSConfig

	// TLS, when set, makes Serve speak HTTPS only. Set ClientAuth and
	// ClientCAs in it to require client certificates (see ServerTLSConfig).
	TLS *tls.Config
	// Logger receives JSON-friendly structured logs; nil discards them.
	// Envelope bodies are never logged.
	Logger *slog.Logger
	// Intercept is for fault-injection tests only; see InterceptFunc.
	Intercept InterceptFunc
}

// withDefaults returns c with zero fields defaulted, or an error for values
// that cannot work together.
func (c Config) withDefaults() (Config, error) {
	setInt := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	setDur := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	setInt(&c.MaxEnvelopeBytes, DefaultMaxEnvelopeBytes)
	setInt(&c.MaxRoomMessages, DefaultMaxRoomMessages)
	setInt(&c.MaxRoomBytes, DefaultMaxRoomBytes)
	setInt(&c.MaxRooms, DefaultMaxRooms)
	if c.MaxTotalBytes == 0 {
		c.MaxTotalBytes = DefaultMaxTotalBytes
	}
	setInt(&c.MaxRoomSize, DefaultMaxRoomSize)
	setDur(&c.DefaultRoomTTL, DefaultRoomTTL)
	setDur(&c.MaxRoomTTL, DefaultMaxRoomTTL)
	setDur(&c.MaxWait, DefaultMaxWait)
	setDur(&c.ForgetAfter, DefaultForgetAfter)
	setInt(&c.MaxTombstones, DefaultMaxTombstones)
	setDur(&c.GCInterval, DefaultGCInterval)
	setInt(&c.MaxFetchBytes, DefaultMaxFetchBytes)
	setDur(&c.ReadTimeout, DefaultReadTimeout)
	setDur(&c.WriteTimeout, DefaultWriteTimeout)
	setDur(&c.IdleTimeout, DefaultIdleTimeout)
	setInt(&c.MaxConcurrentConns, DefaultMaxConcurrentConns)
	setInt(&c.MaxTotalMessages, DefaultMaxTotalMessages)
	setInt(&c.MaxSetsPerRoom, DefaultMaxSetsPerRoom)
	setDur(&c.MaxClockSkew, DefaultMaxClockSkew)
	setInt(&c.MaxRoomsPerClient, DefaultMaxRoomsPerClient)
	if c.ClientRoomRate == 0 {
		c.ClientRoomRate = DefaultClientRoomRate
	}
	setInt(&c.ClientRoomBurst, DefaultClientRoomBurst)
	if c.Name == "" {
		c.Name = "quorum-relay/" + uuid.New()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}

	for _, v := range []struct {
		name string
		val  int64
	}{
		{"MaxEnvelopeBytes", int64(c.MaxEnvelopeBytes)},
		{"MaxRoomMessages", int64(c.MaxRoomMessages)},
		{"MaxRoomBytes", int64(c.MaxRoomBytes)},
		{"MaxRooms", int64(c.MaxRooms)},
		{"MaxTotalBytes", c.MaxTotalBytes},
		{"MaxRoomSize", int64(c.MaxRoomSize)},
		{"DefaultRoomTTL", int64(c.DefaultRoomTTL)},
		{"MaxRoomTTL", int64(c.MaxRoomTTL)},
		{"MaxWait", int64(c.MaxWait)},
		{"ForgetAfter", int64(c.ForgetAfter)},
		{"MaxTombstones", int64(c.MaxTombstones)},
		{"GCInterval", int64(c.GCInterval)},
		{"MaxFetchBytes", int64(c.MaxFetchBytes)},
		{"ReadTimeout", int64(c.ReadTimeout)},
		{"WriteTimeout", int64(c.WriteTimeout)},
		{"IdleTimeout", int64(c.IdleTimeout)},
		{"MaxConcurrentConns", int64(c.MaxConcurrentConns)},
		{"MaxTotalMessages", int64(c.MaxTotalMessages)},
		{"MaxSetsPerRoom", int64(c.MaxSetsPerRoom)},
		{"MaxClockSkew", int64(c.MaxClockSkew)},
		{"MaxRoomsPerClient", int64(c.MaxRoomsPerClient)},
		{"ClientRoomBurst", int64(c.ClientRoomBurst)},
	} {
		if v.val < 0 {
			return c, fmt.Errorf("relay: config %s must not be negative", v.name)
		}
	}
	if c.ClientRoomRate < 0 {
		return c, fmt.Errorf("relay: config ClientRoomRate must not be negative")
	}
	if len(c.Name) > 255 {
		return c, fmt.Errorf("relay: config Name is longer than 255 bytes")
	}
	if c.DefaultRoomTTL > c.MaxRoomTTL {
		return c, fmt.Errorf("relay: config DefaultRoomTTL %v exceeds MaxRoomTTL %v", c.DefaultRoomTTL, c.MaxRoomTTL)
	}
	if c.MaxRoomBytes < c.MaxEnvelopeBytes {
		return c, fmt.Errorf("relay: config MaxRoomBytes %d is below MaxEnvelopeBytes %d", c.MaxRoomBytes, c.MaxEnvelopeBytes)
	}
	if c.MaxTotalBytes < int64(c.MaxEnvelopeBytes) {
		return c, fmt.Errorf("relay: config MaxTotalBytes %d is below MaxEnvelopeBytes %d", c.MaxTotalBytes, c.MaxEnvelopeBytes)
	}
	if c.MaxWait > time.Duration(maxWaitMsCap)*time.Millisecond {
		return c, fmt.Errorf("relay: config MaxWait %v exceeds the wire limit of %d ms", c.MaxWait, maxWaitMsCap)
	}
	return c, nil
}
