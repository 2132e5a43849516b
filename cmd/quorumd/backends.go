package main

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/quorumd/quorumd/daemon"
)

// errNotWired is what openBackends answers until the real parts are
// connected here; the daemon then refuses to start rather than serve
// without an HSM, store or policy source.
var errNotWired = errors.New("this build does not wire the HSM, key store, policy source, relay client and ceremonies into the daemon")

// openBackends is the single seam between configuration and the real
// parts: it must open the HSM (cfg.HSM), the key store under cfg.StateDir,
// the policy source (cfg.Policy), the relay client (cfg.Relay) and the
// ceremony runner, and return them as daemon.Backends with /readyz checks
// for the HSM session and the policy source. The closer releases them in
// reverse order after the server has stopped.
func openBackends(ctx context.Context, cfg *daemon.Config, log *slog.Logger) (daemon.Backends, io.Closer, error) {
	return daemon.Backends{}, nil, errNotWired
}
