package boot

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/store"
)

// openStore opens the configured key store: the bbolt file in state_dir,
// or the PostgreSQL database that replicas of this party share (then also
// a /readyz check that the database answers).
func openStore(ctx context.Context, cfg *daemon.Config, log *slog.Logger) (store.Store, []daemon.ReadinessCheck, error) {
	if cfg.Store != daemon.StorePostgres {
		st, err := store.OpenDir(cfg.StateDir, store.Options{})
		if err != nil {
			return nil, nil, fmt.Errorf("opening the key store in %s: %w", cfg.StateDir, err)
		}
		log.Info("key store ready", "store", daemon.StoreBolt, "path", cfg.StateDir)
		return st, nil, nil
	}
	dsn, err := cfg.Postgres.ReadDSN(os.LookupEnv)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the key store: %w", err)
	}
	// A database still starting (or a failover) gets a while to answer.
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := store.OpenPostgres(octx, dsn, store.PostgresOptions{MaxConns: int32(cfg.Postgres.MaxConns)})
	if err != nil {
		return nil, nil, fmt.Errorf("opening the PostgreSQL key store: %w", err)
	}
	log.Info("key store ready", "store", daemon.StorePostgres, "schema_version", store.SchemaVersion())
	return st, []daemon.ReadinessCheck{{Name: "store", Check: st.Ping}}, nil
}
