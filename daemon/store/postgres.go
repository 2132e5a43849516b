package store

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrUnavailable: the database cannot be reached (connection refused or
// lost, server restarting). The operation did not happen, or — for a write
// whose commit was cut off — happened entirely or not at all.
var ErrUnavailable = errors.New("store: database unavailable")

// PostgresOptions tune a Postgres store.
type PostgresOptions struct {
	// MaxConns bounds the connection pool; 0 means 16. Key locks use one
	// more connection of their own.
	MaxConns int32
}

// Postgres is a Store on a PostgreSQL database that several replicas of
// one party share. Each write is one transaction; a record's JSON is the
// bbolt store's encoding, so the two backends hold and check the very same
// records. It also implements KeyLocker across replicas.
type Postgres struct {
	pool   *pgxpool.Pool
	locks  *pgLocks
	now    func() time.Time
	closed atomic.Bool
}

var (
	_ Store     = (*Postgres)(nil)
	_ KeyLocker = (*Postgres)(nil)
)

// OpenPostgres connects a pool to dsn (a libpq URL or key=value string),
// applies the pending schema migrations and checks the connection.
func OpenPostgres(ctx context.Context, dsn string, opts PostgresOptions) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx redacts the password from its parse errors.
		return nil, fmt.Errorf("store: postgres DSN: %w", err)
	}
	cfg.MaxConns = opts.MaxConns
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 16
	}
	// Dead connections (a restarted server) are found and replaced between
	// requests rather than by a failed request each.
	cfg.HealthCheckPeriod = 5 * time.Second
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "quorumd"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres pool: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, classify("migrating the schema", err)
	}
	return &Postgres{
		pool:  pool,
		locks: newPGLocks(cfg.ConnConfig.Copy()),
		now:   func() time.Time { return time.Now().UTC() },
	}, nil
}

// Close closes the pool and the lock session (releasing its locks).
func (s *Postgres) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.locks.close()
	s.pool.Close()
	return nil
}

// Ping checks that the database answers (for /readyz).
func (s *Postgres) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return classify("ping", s.pool.Ping(ctx))
}

// classify wraps a database error: lost or refused connections become
// ErrUnavailable, context errors stay themselves, the rest is reported as
// a failed operation.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, ErrSchemaVersion), errors.Is(err, ErrClosed):
		return fmt.Errorf("store: %s: %w", op, err)
	case errors.As(err, &pe) && !isShutdown(pe):
		return fmt.Errorf("store: %s: %w", op, err)
	default:
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
}

// isShutdown tells the server-side errors of a stopping or starting server
// (SQLSTATE class 57P: admin_shutdown, crash_shutdown, cannot_connect_now)
// and lost connections (class 08) from errors in the request.
func isShutdown(pe *pgconn.PgError) bool {
	return len(pe.Code) == 5 && (pe.Code[:3] == "57P" || pe.Code[:2] == "08")
}

func (s *Postgres) check(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

// inTx runs fn in one transaction, committed if fn returns nil.
func (s *Postgres) inTx(ctx context.Context, op string, fn func(pgx.Tx) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	var fnErr error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		fnErr = fn(tx)
		return fnErr
	})
	if fnErr != nil {
		return fnErr // the store's own verdict, not a database failure
	}
	return classify(op, err)
}

const selectRow = `SELECT key_id, owner, state, record FROM quorumd_keys `

// scanRecord decodes a row; owner and state columns that disagree with the
// record are corruption, like a bbolt owner index that disagrees.
func scanRecord(row pgx.Row) (Record, error) {
	var keyID, owner, state string
	var raw []byte
	if err := row.Scan(&keyID, &owner, &state, &raw); err != nil {
		return Record{}, err
	}
	r, err := decode([]byte(keyID), raw)
	if err != nil {
		return Record{}, err
	}
	if r.Owner != owner || string(r.State) != state {
		return Record{}, fmt.Errorf("%w: columns of %q (owner, state) disagree with its record", ErrCorrupt, keyID)
	}
	return r, nil
}

// getRow reads one record with q; no row is ErrNotFound.
func getRow(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, op, where string, args ...any) (Record, error) {
	r, err := scanRecord(q.QueryRow(ctx, selectRow+where, args...))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Record{}, ErrNotFound
	case errors.Is(err, ErrCorrupt):
		return Record{}, err
	case err != nil:
		return Record{}, classify(op, err)
	}
	return r, nil
}

// putRow rewrites an existing record inside tx.
func putRow(ctx context.Context, tx pgx.Tx, r *Record) error {
	raw, err := encode(r)
	if err != nil {
		return fmt.Errorf("store: encoding %q: %w", r.KeyID, err)
	}
	_, err = tx.Exec(ctx, `UPDATE quorumd_keys SET owner = $2, state = $3, record = $4, updated_at = now() WHERE key_id = $1`,
		r.KeyID, r.Owner, string(r.State), raw)
	return classify("writing a key", err)
}

// modifyOwned applies fn to the owner's live record, read and written back
// in one transaction with its row locked; fn reporting no change writes
// nothing.
func (s *Postgres) modifyOwned(ctx context.Context, op, owner, keyID string, fn func(*Record) (changed bool, err error)) error {
	return s.inTx(ctx, op, func(tx pgx.Tx) error {
		r, err := getRow(ctx, tx, "reading a key", `WHERE key_id = $1 AND owner = $2 AND state <> 'deleted' FOR UPDATE`, keyID, owner)
		if err != nil {
			return err
		}
		if changed, err := fn(&r); err != nil || !changed {
			return err
		}
		return putRow(ctx, tx, &r)
	})
}

// ownerLockClass is the first int4 of the transaction advisory locks that
// serialise one owner's quota-checked insertions ("qrmo").
const ownerLockClass = 0x71726d6f

// CreateSlot implements Store. With a quota, the owner's live records are
// counted and the slot inserted under a transaction lock on the owner, so
// replicas creating at once cannot overshoot it.
func (s *Postgres) CreateSlot(ctx context.Context, sl Slot) error {
	if err := sl.validate(); err != nil {
		return err
	}
	r := newSlot(sl, s.now())
	raw, err := encode(&r)
	if err != nil {
		return fmt.Errorf("store: encoding %q: %w", r.KeyID, err)
	}
	return s.inTx(ctx, "creating a key slot", func(tx pgx.Tx) error {
		if sl.Quota > 0 {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, int32(ownerLockClass), lockKeyOf(r.Owner)); err != nil {
				return classify("locking the owner", err)
			}
			var n int
			err := tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM quorumd_keys WHERE owner = $1 AND state <> 'deleted' LIMIT $2) live`,
				r.Owner, sl.Quota).Scan(&n)
			if err != nil {
				return classify("counting keys", err)
			}
			if n >= sl.Quota {
				return fmt.Errorf("%w: %d live keys", ErrQuotaExceeded, sl.Quota)
			}
		}
		tag, err := tx.Exec(ctx, `INSERT INTO quorumd_keys (key_id, owner, state, record) VALUES ($1, $2, $3, $4) ON CONFLICT (key_id) DO NOTHING`,
			r.KeyID, r.Owner, string(r.State), raw)
		if err != nil {
			return classify("creating a key slot", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: %q", ErrDuplicate, r.KeyID)
		}
		return nil
	})
}

// Commit implements Store.
func (s *Postgres) Commit(ctx context.Context, owner, keyID string, c Commitment) error {
	now := s.now()
	return s.modifyOwned(ctx, "committing a share", owner, keyID, func(r *Record) (bool, error) { return true, commitTo(r, c, now) })
}

// Prepare implements Store.
func (s *Postgres) Prepare(ctx context.Context, owner, keyID string, c Commitment) error {
	now := s.now()
	return s.modifyOwned(ctx, "storing a pending share", owner, keyID, func(r *Record) (bool, error) { return true, prepareTo(r, c, now) })
}

// MarkReady implements Store (durably: a commit is one fsync either way).
func (s *Postgres) MarkReady(ctx context.Context, owner, keyID string, transcript, recoveryData []byte) error {
	now := s.now()
	return s.modifyOwned(ctx, "marking a key ready", owner, keyID, func(r *Record) (bool, error) {
		return markReady(r, transcript, recoveryData, now)
	})
}

// MarkRefused implements Store.
func (s *Postgres) MarkRefused(ctx context.Context, owner, keyID string, transcript, by []byte) error {
	return s.modifyOwned(ctx, "noting a refusal", owner, keyID, func(r *Record) (bool, error) { return markRefused(r, transcript, by) })
}

// Discard implements Store; the discarded share's row version is vacuumed
// as in Delete.
func (s *Postgres) Discard(ctx context.Context, owner, keyID string, transcript []byte) error {
	if err := s.modifyOwned(ctx, "discarding a pending share", owner, keyID, func(r *Record) (bool, error) { return true, discard(r, transcript) }); err != nil {
		return err
	}
	return s.vacuum(ctx)
}

// Get implements Store.
func (s *Postgres) Get(ctx context.Context, keyID string) (Record, error) {
	if err := s.check(ctx); err != nil {
		return Record{}, err
	}
	r, err := getRow(ctx, s.pool, "reading a key", `WHERE key_id = $1`, keyID)
	if err == nil && r.State == StateDeleted {
		return Record{}, ErrNotFound
	}
	return r, err
}

// GetOwned implements Store.
func (s *Postgres) GetOwned(ctx context.Context, owner, keyID string) (Record, error) {
	if err := s.check(ctx); err != nil {
		return Record{}, err
	}
	return getRow(ctx, s.pool, "reading a key", `WHERE key_id = $1 AND owner = $2 AND state <> 'deleted'`, keyID, owner)
}

func (s *Postgres) list(ctx context.Context, where string, args ...any) ([]Record, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, selectRow+where+` ORDER BY key_id`, args...)
	if err != nil {
		return nil, classify("listing keys", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			if errors.Is(err, ErrCorrupt) {
				return nil, err
			}
			return nil, classify("listing keys", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("listing keys", err)
	}
	return out, nil
}

// ListByOwner implements Store.
func (s *Postgres) ListByOwner(ctx context.Context, owner string) ([]Record, error) {
	return s.list(ctx, `WHERE owner = $1 AND state <> 'deleted'`, owner)
}

// ListAll implements Store.
func (s *Postgres) ListAll(ctx context.Context) ([]Record, error) {
	return s.list(ctx, `WHERE state <> 'deleted'`)
}

// CountByOwner implements Store: an index-only count, decoding nothing.
func (s *Postgres) CountByOwner(ctx context.Context, owner string) (int, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM quorumd_keys WHERE owner = $1 AND state <> 'deleted'`, owner).Scan(&n)
	return n, classify("counting keys", err)
}

// Reseal implements Store. fn runs once, with the row locked, inside the
// transaction that stores its result.
func (s *Postgres) Reseal(ctx context.Context, keyID string, fn ResealFunc) error {
	return s.inTx(ctx, "resealing a key", func(tx pgx.Tx) error {
		r, err := getRow(ctx, tx, "reading a key", `WHERE key_id = $1 AND state <> 'deleted' FOR UPDATE`, keyID)
		if err != nil {
			return err
		}
		share, ident, err := fn(r)
		if err != nil {
			return err
		}
		if err := resealTo(&r, share, ident); err != nil {
			return err
		}
		return putRow(ctx, tx, &r)
	})
}

// Delete implements Store: the row is rewritten in place as the tombstone,
// then VACUUM reclaims the old row version (and its TOAST data) so that
// later writes reuse its space. Until they do, and in WAL, on standbys and
// in backups, the old bytes can outlive the row: what makes the blobs
// unrecoverable is the per-key data key the caller destroys next
// (daemon/quorum/seal.go).
func (s *Postgres) Delete(ctx context.Context, owner, keyID string) error {
	now := s.now()
	err := s.modifyOwned(ctx, "deleting a key", owner, keyID, func(r *Record) (bool, error) { *r = tombstone(*r, now); return true, nil })
	if err != nil {
		return err
	}
	return s.vacuum(ctx)
}

// vacuum reclaims dead row versions of the key table (it cannot run inside
// a transaction, so it follows the write).
func (s *Postgres) vacuum(ctx context.Context) error {
	_, err := s.pool.Exec(context.WithoutCancel(ctx), `VACUUM quorumd_keys`)
	return classify("vacuuming the key table", err)
}
