package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/quorumd/quorumd/daemon/store"
)

// Replicas starting together migrate once; a reopened database is not
// migrated again; a database from a newer build is refused.
func TestPostgresMigrations(t *testing.T) {
	dsn := pgSchema(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := store.OpenPostgres(ctx, dsn, store.PostgresOptions{MaxConns: 2})
			if err == nil {
				s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent first opens: %v", err)
	}
	openPG(t, dsn).Close()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n, max int
	if err := c.QueryRow(ctx, `SELECT count(*), max(version) FROM quorumd_schema_migrations`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != store.SchemaVersion() || max != store.SchemaVersion() {
		t.Fatalf("%d migrations recorded up to %d, want %d", n, max, store.SchemaVersion())
	}
	if _, err := c.Exec(ctx, `INSERT INTO quorumd_schema_migrations (version, name) VALUES ($1, 'from the future')`, max+1); err != nil {
		t.Fatal(err)
	}
	s, err := store.OpenPostgres(ctx, dsn, store.PostgresOptions{})
	if err == nil {
		s.Close()
		t.Fatal("opened a database migrated by a newer build")
	}
	if !errors.Is(err, store.ErrSchemaVersion) || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("newer schema: %v", err)
	}
}

// Two replicas (two stores on one database) take a key's lock in turn, a
// second caller in the same replica waits too, other keys are free, and a
// replica that goes away (its session ends) releases what it held.
func TestPostgresKeyLock(t *testing.T) {
	dsn := pgSchema(t)
	a, b := openPG(t, dsn), openPG(t, dsn)
	held := func(s *store.Postgres, key string) bool {
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		unlock, err := s.LockKey(cctx, key)
		if err == nil {
			unlock()
			return false
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("LockKey: %v", err)
		}
		return true
	}
	unlockA, err := a.LockKey(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if !held(b, "k1") || !held(a, "k1") {
		t.Fatal("k1 taken twice")
	}
	if held(b, "k2") {
		t.Fatal("k2 is not locked by anyone")
	}
	got := make(chan func())
	go func() {
		u, err := b.LockKey(ctx, "k1")
		if err != nil {
			t.Error(err)
		}
		got <- u
	}()
	select {
	case <-got:
		t.Fatal("replica b took k1 while a held it")
	case <-time.After(200 * time.Millisecond):
	}
	unlockA()
	unlockA() // idempotent
	select {
	case u := <-got:
		if u != nil {
			u()
		}
	case <-time.After(30 * time.Second):
		t.Fatal("b never took k1 after a released it")
	}

	// a dies holding k3: its session ends and b may proceed.
	if _, err := a.LockKey(ctx, "k3"); err != nil {
		t.Fatal(err)
	}
	if !held(b, "k3") {
		t.Fatal("k3 not held")
	}
	a.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	u, err := b.LockKey(cctx, "k3")
	if err != nil {
		t.Fatalf("k3 after its holder went away: %v", err)
	}
	u()
}

// Many goroutines over two replicas contend for few keys: at most one
// holder per key at any moment.
func TestPostgresKeyLockExclusive(t *testing.T) {
	dsn := pgSchema(t)
	replicas := []*store.Postgres{openPG(t, dsn), openPG(t, dsn)}
	var inside [3]atomic.Int32
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 5 {
				k := (i + j) % len(inside)
				u, err := replicas[i%2].LockKey(ctx, fmt.Sprint("key-", k))
				if err != nil {
					t.Error(err)
					return
				}
				if n := inside[k].Add(1); n != 1 {
					t.Errorf("key-%d: %d holders", k, n)
				}
				time.Sleep(time.Millisecond)
				inside[k].Add(-1)
				u()
			}
		}()
	}
	wg.Wait()
}

// PostgreSQL restarted under load: calls fail with ErrUnavailable while it
// is down and succeed again afterwards on the same Store, without reopening
// it; nothing half-written is left behind.
func TestPostgresRestartUnderLoad(t *testing.T) {
	dsn := pgSchema(t)
	s := openPG(t, dsn)
	var okBefore, unavailable, okAfter atomic.Int32
	var down atomic.Bool
	var restarted atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var unexpected []error
	var mu sync.Mutex
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("restart-%d-%d", w, i)
				err := s.CreateSlot(ctx, fxSlot(k))
				if err == nil {
					err = s.Commit(ctx, fxOwner(k), k, fxCommitment(k))
				}
				switch {
				case err == nil && restarted.Load():
					okAfter.Add(1)
				case err == nil:
					okBefore.Add(1)
				case errors.Is(err, store.ErrUnavailable):
					unavailable.Add(1)
					time.Sleep(20 * time.Millisecond)
				default:
					// Anything but success or ErrUnavailable is a bug.
					mu.Lock()
					unexpected = append(unexpected, fmt.Errorf("%s (down=%v): %w", k, down.Load(), err))
					mu.Unlock()
				}
			}
		}()
	}
	waitFor(t, "writes before the restart", func() bool { return okBefore.Load() >= 20 })
	down.Store(true)
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ErrUnavailable while down", func() bool { return unavailable.Load() >= 5 })
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	down.Store(false)
	restarted.Store(true)
	waitFor(t, "writes after the restart", func() bool { return okAfter.Load() >= 20 })
	close(stop)
	wg.Wait()
	for _, err := range unexpected {
		t.Error(err)
	}
	t.Logf("before %d, unavailable %d, after %d", okBefore.Load(), unavailable.Load(), okAfter.Load())
	// Every record is complete for its state: created (commit lost with
	// the server) or ready.
	all, err := s.ListAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if err := fxCheck(r); err != nil {
			t.Error(err)
		}
	}
	// Locks work again too.
	u, err := s.LockKey(ctx, "after-restart")
	if err != nil {
		t.Fatal(err)
	}
	u()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A bad DSN or an unreachable server is reported without the password.
func TestPostgresOpenErrorsHidePassword(t *testing.T) {
	for _, dsn := range []string{
		"postgres://quorumd:s3cret-pw@127.0.0.1:notaport/db",
		"postgres://quorumd:s3cret-pw@127.0.0.1:1/db?sslmode=disable&connect_timeout=2",
	} {
		s, err := store.OpenPostgres(ctx, dsn, store.PostgresOptions{})
		if err == nil {
			s.Close()
			t.Fatalf("opened %q", dsn)
		}
		if strings.Contains(err.Error(), "s3cret-pw") {
			t.Fatalf("error shows the password: %v", err)
		}
	}
}

// The key quota holds across replicas: 20 creations for one owner spread
// over two stores on one database, under quota 3, store exactly 3.
func TestPostgresQuotaAcrossReplicas(t *testing.T) {
	dsn := pgSchema(t)
	replicas := []*store.Postgres{openPG(t, dsn), openPG(t, dsn)}
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() {
			sl := fxSlot(fmt.Sprintf("quota-%02d", i))
			sl.Owner, sl.Quota = "carol", 3
			errs[i] = replicas[i%2].CreateSlot(ctx, sl)
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrQuotaExceeded):
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if n, err := replicas[0].CountByOwner(ctx, "carol"); ok != 3 || n != 3 || err != nil {
		t.Fatalf("%d creations succeeded, %d stored (%v), want 3", ok, n, err)
	}
}
