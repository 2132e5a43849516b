package relay

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"
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
	MaxRoomBytes       int           // envelope bytes stored per room
	MaxRooms           int           // rooms open at once
	MaxTotalBytes      int64         // envelope bytes held across all rooms (memory bound)
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
	} {
		if v.val < 0 {
			return c, fmt.Errorf("relay: config %s must not be negative", v.name)
		}
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
