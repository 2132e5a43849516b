// Command quorum-relay runs the untrusted ceremony relay (DESIGN §8): one-time
// rooms of fixed size with a TTL, authenticated seats, ordered envelope
// delivery by long-poll, /healthz and /metrics, optional TLS with optional
// client certificates; rooms in memory, or in NATS JetStream (-nats-url) so
// several instances serve them.
//
// Every flag can also be set in the environment as QUORUM_RELAY_<FLAG>, with
// dashes as underscores (e.g. QUORUM_RELAY_MAX_ROOMS=500); flags win over the
// environment. Logs are JSON on stderr. SIGTERM or SIGINT shuts down
// gracefully: pending long-polls are answered at once and in-flight requests
// get -shutdown-timeout to finish.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/quorumd/quorumd/mpc/relay"
)

const envPrefix = "QUORUM_RELAY_"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "quorum-relay:", err)
		os.Exit(1)
	}
}

type options struct {
	listen          string
	logLevel        string
	tlsCert         string
	tlsKey          string
	tlsClientCA     string
	shutdownTimeout time.Duration
	natsURL         string
	natsPrefix      string
	natsMemory      bool
	natsReplicas    int
	cfg             relay.Config
}

// parseOptions reads flags over environment over defaults.
func parseOptions(args []string, getenv func(string) string, out io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("quorum-relay", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8790", "listen address host:port")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate PEM file (enables HTTPS)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "TLS private key PEM file")
	fs.StringVar(&o.tlsClientCA, "tls-client-ca", "", "CA PEM file; when set, clients must present a certificate it signed")
	fs.StringVar(&o.natsURL, "nats-url", "", "NATS server(s) with JetStream: keep rooms there so several relays serve them (needs -name)")
	fs.StringVar(&o.natsPrefix, "nats-prefix", "QUORUM_RELAY", "names of the JetStream stream, bucket and subjects")
	fs.BoolVar(&o.natsMemory, "nats-memory", false, "JetStream memory storage instead of files")
	fs.IntVar(&o.natsReplicas, "nats-replicas", 1, "copies of the JetStream stream and bucket in a NATS cluster")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 20*time.Second, "time allowed for in-flight requests on shutdown")
	c := &o.cfg
	fs.IntVar(&c.MaxEnvelopeBytes, "max-envelope-bytes", relay.DefaultMaxEnvelopeBytes, "largest envelope accepted")
	fs.IntVar(&c.MaxRoomMessages, "max-room-messages", relay.DefaultMaxRoomMessages, "envelopes stored per room")
	fs.IntVar(&c.MaxRoomBytes, "max-room-bytes", relay.DefaultMaxRoomBytes, "heap held per room (envelopes with their overhead, seats)")
	fs.IntVar(&c.MaxRooms, "max-rooms", relay.DefaultMaxRooms, "rooms open at once")
	fs.Int64Var(&c.MaxTotalBytes, "max-total-bytes", relay.DefaultMaxTotalBytes, "heap held across all rooms (envelopes with their overhead, seats)")
	fs.IntVar(&c.MaxRoomSize, "max-room-size", relay.DefaultMaxRoomSize, "largest room (parties)")
	fs.DurationVar(&c.DefaultRoomTTL, "default-ttl", relay.DefaultRoomTTL, "room lifetime when the creator gives none")
	fs.DurationVar(&c.MaxRoomTTL, "max-ttl", relay.DefaultMaxRoomTTL, "longest room lifetime a creator may ask for")
	fs.DurationVar(&c.MaxWait, "max-wait", relay.DefaultMaxWait, "longest long-poll wait (≤ 30s); longer client waits are capped")
	fs.DurationVar(&c.ForgetAfter, "forget-after", relay.DefaultForgetAfter, "ended rooms answer 410 this long, then 404")
	fs.IntVar(&c.MaxTombstones, "max-tombstones", relay.DefaultMaxTombstones, "ended rooms remembered at most")
	fs.DurationVar(&c.GCInterval, "gc-interval", relay.DefaultGCInterval, "how often expired rooms are swept")
	fs.StringVar(&c.Name, "name", "", "relay name that seat claims are signed for; relays of one deployment share it (default: random per process)")
	fs.IntVar(&c.MaxTotalMessages, "max-total-messages", relay.DefaultMaxTotalMessages, "envelopes held across all rooms")
	fs.IntVar(&c.MaxSetsPerRoom, "max-sets-per-room", relay.DefaultMaxSetsPerRoom, "distinct member sets one room may hold")
	fs.DurationVar(&c.MaxClockSkew, "max-clock-skew", relay.DefaultMaxClockSkew, "how far a seat claim's time may be from the relay's clock")
	fs.IntVar(&c.MaxRoomsPerClient, "max-rooms-per-client", relay.DefaultMaxRoomsPerClient, "open rooms per client (TLS client certificate, else IP address)")
	fs.Float64Var(&c.ClientRoomRate, "client-room-rate", relay.DefaultClientRoomRate, "rooms per second one client may create on average")
	fs.IntVar(&c.ClientRoomBurst, "client-room-burst", relay.DefaultClientRoomBurst, "rooms one client may create at once")
	fs.IntVar(&c.MaxConcurrentConns, "max-conns", relay.DefaultMaxConcurrentConns, "connections served at once")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", relay.DefaultReadTimeout, "time to read one request")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", relay.DefaultWriteTimeout, "time to write one response")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", relay.DefaultIdleTimeout, "keep-alive idle time")

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("environment %s: %w", name, err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return nil, errors.New("-tls-cert and -tls-key go together")
	}
	if o.tlsClientCA != "" && o.tlsCert == "" {
		return nil, errors.New("-tls-client-ca needs -tls-cert and -tls-key")
	}
	if o.natsURL != "" {
		if o.cfg.Name == "" {
			return nil, errors.New("-nats-url needs -name, shared by every relay of the deployment")
		}
		o.cfg.NATS = &relay.NATSConfig{URL: o.natsURL, Prefix: o.natsPrefix, Memory: o.natsMemory, Replicas: o.natsReplicas}
	}
	if o.shutdownTimeout <= 0 {
		return nil, errors.New("-shutdown-timeout must be positive")
	}
	return o, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log level %q: %w", s, err)
	}
	return l, nil
}

// run serves until ctx ends. ready, if non-nil, receives the bound address.
func run(ctx context.Context, args []string, getenv func(string) string, logOut io.Writer, ready chan<- string) error {
	o, err := parseOptions(args, getenv, logOut)
	if err != nil {
		return err
	}
	level, err := parseLevel(o.logLevel)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: level}))
	o.cfg.Logger = log
	if o.tlsCert != "" {
		if o.cfg.TLS, err = relay.ServerTLSConfig(o.tlsCert, o.tlsKey, o.tlsClientCA); err != nil {
			return err
		}
	}
	srv, err := relay.New(o.cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	eff := srv.Config()
	log.Info("listening", "addr", ln.Addr().String(), "tls", eff.TLS != nil,
		"client_certs", o.tlsClientCA != "", "max_rooms", eff.MaxRooms, "max_room_size", eff.MaxRoomSize,
		"max_envelope_bytes", eff.MaxEnvelopeBytes, "max_total_bytes", eff.MaxTotalBytes, "max_room_messages", eff.MaxRoomMessages,
		"default_ttl", eff.DefaultRoomTTL.String(), "max_ttl", eff.MaxRoomTTL.String(), "max_wait", eff.MaxWait.String(),
		"name", eff.Name, "nats", o.natsURL != "", "max_rooms_per_client", eff.MaxRoomsPerClient, "client_room_rate", eff.ClientRoomRate)
	if ready != nil {
		ready <- ln.Addr().String()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", o.shutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	shutErr := srv.Shutdown(sctx)
	if err := <-errc; err != nil && shutErr == nil {
		shutErr = fmt.Errorf("serve: %w", err)
	}
	if shutErr != nil {
		log.Error("shutdown incomplete", "err", shutErr.Error())
		return shutErr
	}
	log.Info("stopped")
	return nil
}
