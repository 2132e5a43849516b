package store

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// KeyLocker is implemented by stores that several replicas share: LockKey
// serialises a key's ceremonies across all of them (within one process an
// in-memory lock suffices). The caller must call unlock exactly once.
type KeyLocker interface {
	LockKey(ctx context.Context, keyID string) (unlock func(), err error)
}

// keyLockClass is the first int4 of every key lock's advisory-lock key
// ("qrmd"), keeping them apart from other users of advisory locks.
const keyLockClass = 0x71726d64

// pgLocks holds a replica's key locks as session advisory locks on one
// dedicated connection. A lock is taken with pg_try_advisory_lock and
// retried with backoff while held elsewhere, so waiters hold no connection
// and one session serves every ceremony in flight. When a replica dies its
// session ends and the server releases its locks at once.
//
// Advisory locks are re-entrant within a session, so the locks this
// replica holds are also kept in held: a second local caller waits like a
// remote one.
type pgLocks struct {
	cfg *pgx.ConnConfig

	mu   sync.Mutex
	conn *pgx.Conn // nil until first use and after a lost session
	held map[int32]bool
	done bool
}

// lockQueryTimeout bounds one lock or unlock statement; it is cut from the
// caller's context so a cancelled request cannot break the shared session.
const lockQueryTimeout = 10 * time.Second

func newPGLocks(cfg *pgx.ConnConfig) *pgLocks {
	return &pgLocks{cfg: cfg, held: map[int32]bool{}}
}

func lockKeyOf(keyID string) int32 {
	h := fnv.New32a()
	h.Write([]byte(keyID))
	return int32(h.Sum32())
}

// LockKey implements KeyLocker: it waits until no replica holds keyID's
// lock (or ctx ends). Keys whose hashes collide share a lock, which only
// serialises them.
func (s *Postgres) LockKey(ctx context.Context, keyID string) (func(), error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	k := lockKeyOf(keyID)
	backoff := 5 * time.Millisecond
	for {
		ok, err := s.locks.try(ctx, k)
		if err != nil {
			return nil, classify("locking a key", err)
		}
		if ok {
			var once sync.Once
			return func() { once.Do(func() { s.locks.unlock(k) }) }, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("store: waiting for the lock of key %q: %w", keyID, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// session returns the live lock connection, reconnecting after a loss.
// Called with mu held.
func (l *pgLocks) session(ctx context.Context) (*pgx.Conn, error) {
	if l.done {
		return nil, ErrClosed
	}
	if l.conn != nil && !l.conn.IsClosed() {
		return l.conn, nil
	}
	c, err := pgx.ConnectConfig(ctx, l.cfg)
	if err != nil {
		return nil, err
	}
	l.conn = c
	return c, nil
}

func (l *pgLocks) try(ctx context.Context, k int32) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[k] {
		return false, nil
	}
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockQueryTimeout)
	defer cancel()
	c, err := l.session(qctx)
	if err != nil {
		return false, err
	}
	var ok bool
	if err := c.QueryRow(qctx, `SELECT pg_try_advisory_lock($1, $2)`, int32(keyLockClass), k).Scan(&ok); err != nil {
		c.Close(qctx)
		return false, err
	}
	if ok {
		l.held[k] = true
	}
	return ok, nil
}

// unlock releases k. If the session was lost meanwhile the server has
// released it already, and the new session does not hold it.
func (l *pgLocks) unlock(k int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held, k)
	if l.conn == nil || l.conn.IsClosed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), lockQueryTimeout)
	defer cancel()
	if _, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1, $2)`, int32(keyLockClass), k); err != nil {
		// A session in doubt may still hold the lock: end it.
		l.conn.Close(ctx)
	}
}

func (l *pgLocks) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done = true
	if l.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), lockQueryTimeout)
		defer cancel()
		l.conn.Close(ctx)
	}
}
