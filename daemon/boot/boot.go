// Package boot wires a quorumd daemon from its configuration: it opens the
// backends (locked memory, HSM, key store, policy source, relay clients),
// serves the REST API until its context ends and shuts down gracefully.
// cmd/quorumd calls it after parsing flags and hardening the process;
// quorumtest calls the same code to run daemons inside a test binary.
package boot

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/quorumd/quorumd/daemon"
)

// OpenFunc connects the backends the HTTP layer calls; the returned closer
// releases them after the server stopped.
type OpenFunc func(ctx context.Context, cfg *daemon.Config, log *slog.Logger) (daemon.Backends, io.Closer, error)

// Options are Run's optional parts.
type Options struct {
	// Version is logged when the daemon serves.
	Version string
	// Open connects the backends; nil means OpenBackends (the real parts).
	Open OpenFunc
	// Ready, if not nil, receives the bound listen address once the daemon
	// serves (it must have room for one value or a reader).
	Ready chan<- string
	// Listener, if not nil, is served instead of listening on
	// cfg.Server.Listen; Run closes it.
	Listener net.Listener
}

// Run connects the backends, serves until ctx ends and shuts down
// gracefully within cfg.Server.ShutdownTimeout, then releases the backends.
// It does not harden the process (core dumps, ptrace): that is main's.
func Run(ctx context.Context, cfg *daemon.Config, log *slog.Logger, o Options) error {
	applyRuntime(cfg.Runtime, log)
	open := o.Open
	if open == nil {
		open = OpenBackends
	}
	b, closer, err := open(ctx, cfg, log)
	if err != nil {
		if o.Listener != nil {
			o.Listener.Close()
		}
		return fmt.Errorf("backends: %w", err)
	}
	defer func() {
		if closer != nil {
			if err := closer.Close(); err != nil {
				log.Warn("closing backends", "error", err.Error())
			}
		}
	}()
	srv, err := daemon.New(cfg, b, log)
	if err != nil {
		if o.Listener != nil {
			o.Listener.Close()
		}
		return err
	}
	defer srv.Close()
	ln := o.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Server.Listen); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("quorumd serving", "version", o.Version, "addr", ln.Addr().String(), "tls", cfg.Server.TLS.Enabled(),
		"client_auth", cfg.Server.TLS.ClientAuth, "policy_source", cfg.Policy.Source, "max_parties", cfg.Limits.MaxParties,
		"ceremony_timeout", cfg.Ceremony.Timeout.String())
	if err := sdNotify("READY=1"); err != nil {
		log.Warn("sd_notify", "error", err.Error())
	}
	if every := watchdogInterval(); every > 0 {
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		go watchdog(wctx, every, log)
	}
	if o.Ready != nil {
		o.Ready <- ln.Addr().String()
	}

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", cfg.Server.ShutdownTimeout.String())
	if err := sdNotify("STOPPING=1"); err != nil {
		log.Warn("sd_notify", "error", err.Error())
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("grace period over; remaining requests were cancelled", "error", err.Error())
	}
	if err := <-served; err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("quorumd stopped")
	return nil
}

// NewLogger is the daemon's logger: JSON lines on w at the configured
// level (log.level), each tagged service=quorumd.
func NewLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, err
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})).With("service", "quorumd"), nil
}
