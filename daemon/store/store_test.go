package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/hsm"
	"github.com/quorumd/quorumd/internal/testkit"
)

var hsmToken testkit.SoftHSMToken

// pg is the package's one PostgreSQL cluster, started by the first test
// that needs it (so -run filters without PostgreSQL tests never start it)
// and stopped by TestMain; every test opens its own schema in it.
var (
	pg     *testkit.Postgres
	pgErr  error
	pgOnce sync.Once
)

const pgDatabase = "store_test"

func TestMain(m *testing.M) {
	// The crash test re-executes this binary as the writer it kills.
	if path := os.Getenv(crashChildEnv); path != "" {
		os.Exit(crashChild(path))
	}
	dir, err := os.MkdirTemp("", "quorumd-store-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	toks, err := testkit.NewSoftHSMTokens(dir, "store")
	if err != nil {
		fmt.Fprintln(os.Stderr, "SoftHSM set-up:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	hsmToken = toks[0]
	code := m.Run()
	for _, f := range storeCleanups {
		f()
	}
	if pg != nil {
		pg.Close()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

var ctx = context.Background()

// modes are bbolt's write paths.
var modes = []struct {
	name string
	opts store.Options
}{
	{"fsync-per-commit", store.Options{SerialCommit: true}},
	{"group-commit", store.Options{}},
	{"bbolt-batch", store.WithBoltBatch(store.Options{SerialCommit: true})},
}

// A backend opens an empty store for a test, and a reopen function that
// closes a store and opens the same data again.
type backend struct {
	name string
	open func(t testing.TB) (s store.Store, reopen func(testing.TB, store.Store) store.Store)
}

// backends are every Store implementation the contract suite holds to the
// same behaviour: bbolt in each write mode, and PostgreSQL.
func backends() []backend {
	var out []backend
	for _, mode := range modes {
		out = append(out, backend{"bolt/" + mode.name, func(t testing.TB) (store.Store, func(testing.TB, store.Store) store.Store) {
			s, path := openStore(t, mode.opts)
			return s, func(t testing.TB, old store.Store) store.Store {
				closeStore(t, old)
				s, err := store.Open(path, mode.opts)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
		}})
	}
	return append(out, backend{"postgres", func(t testing.TB) (store.Store, func(testing.TB, store.Store) store.Store) {
		dsn := pgSchema(t)
		return openPG(t, dsn), func(t testing.TB, old store.Store) store.Store {
			closeStore(t, old)
			return openPG(t, dsn)
		}
	}})
}

func closeStore(t testing.TB, s store.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func openStore(t testing.TB, opts store.Options) (*store.Bolt, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := store.OpenDir(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, filepath.Join(dir, store.DefaultFileName)
}

var pgSchemas atomic.Int64

// pgSchema makes a fresh schema in the package's cluster and returns a DSN
// using it; it skips t when PostgreSQL is not installed.
func pgSchema(t testing.TB) string {
	t.Helper()
	pgOnce.Do(func() {
		if pg, pgErr = testkit.StartPostgres(); pgErr == nil {
			_, pgErr = pg.CreateDatabase(context.Background(), pgDatabase)
		}
	})
	if errors.Is(pgErr, testkit.ErrNoPostgres) {
		testkit.SkipNoPostgres(t, pgErr)
	}
	if pgErr != nil {
		t.Fatalf("PostgreSQL cluster: %v", pgErr)
	}
	dsn, err := pg.CreateSchema(ctx, pgDatabase, fmt.Sprintf("t%d", pgSchemas.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

func openPG(t testing.TB, dsn string) *store.Postgres {
	t.Helper()
	s, err := store.OpenPostgres(ctx, dsn, store.PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestContract runs the one contract suite against every backend.
func TestContract(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { contractSuite(t, b) })
	}
}

// contractSuite is the Store contract: what the daemon relies on, checked
// identically for each implementation.
func contractSuite(t *testing.T, b backend) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, backend)
	}{
		{"Lifecycle", testLifecycle},
		{"Validation", testValidation},
		{"OwnerIndexIsolation", testOwnerIndexIsolation},
		{"ConcurrentWriters", testConcurrentWriters},
		{"CorruptionIsReported", testCorruptionIsReported},
		{"Reseal", testReseal},
		{"SealCommitOpen", testSealCommitOpen},
		{"PendingLifecycle", testPendingLifecycle},
		{"QuotaIsAtomic", testQuotaIsAtomic},
		{"Blobs", testBlobs},
		{"BlobRace", testBlobRace},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, b) })
	}
}

func testLifecycle(t *testing.T, b backend) {
	s, reopen := b.open(t)
	k := "key-1"
	sl := fxSlot(k)
	owner := sl.Owner
	if err := s.CreateSlot(ctx, sl); err != nil {
		t.Fatal(err)
	}
	r, err := s.GetOwned(ctx, owner, k)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != store.StateCreated || fxCheck(r) != nil {
		t.Fatalf("created record: %+v / %v", r.State, fxCheck(r))
	}
	// Another owner's key and an absent key look the same.
	_, errOther := s.GetOwned(ctx, owner+"-x", k)
	_, errAbsent := s.GetOwned(ctx, owner, "no-such-key")
	if errOther != store.ErrNotFound || errAbsent != store.ErrNotFound {
		t.Fatalf("other owner: %v, absent: %v; both must be exactly ErrNotFound", errOther, errAbsent)
	}
	if err := s.CreateSlot(ctx, sl); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("duplicate CreateSlot: %v", err)
	}
	if err := s.Commit(ctx, owner+"-x", k, fxCommitment(k)); err != store.ErrNotFound {
		t.Fatalf("Commit by another owner: %v", err)
	}
	if err := s.Commit(ctx, owner, k, fxCommitment(k)); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, owner, k, fxCommitment(k)); !errors.Is(err, store.ErrAlreadyCommitted) {
		t.Fatalf("second Commit: %v", err)
	}
	r, err = s.Get(ctx, k)
	if err != nil || r.State != store.StateReady || fxCheck(r) != nil {
		t.Fatalf("ready record: %v %v / %v", r.State, err, fxCheck(r))
	}

	// A second key of the same owner and one of another owner.
	k2, k3 := "key-2", "key-3-other"
	for _, kk := range []string{k2, k3} {
		s2 := fxSlot(kk)
		if kk == k2 {
			s2.Owner = owner
		} else {
			s2.Owner = owner + "-other"
		}
		if err := s.CreateSlot(ctx, s2); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListByOwner(ctx, owner)
	if err != nil || len(list) != 2 || list[0].KeyID != k || list[1].KeyID != k2 {
		t.Fatalf("ListByOwner: %v %v", keyIDs(list), err)
	}
	if n, err := s.CountByOwner(ctx, owner); err != nil || n != 2 {
		t.Fatalf("CountByOwner: %d %v", n, err)
	}
	all, err := s.ListAll(ctx)
	if err != nil || len(all) != 3 {
		t.Fatalf("ListAll: %v %v", keyIDs(all), err)
	}

	// Persisted: reopen and read back.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, k); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	s = reopen(t, s)
	if r, err := s.GetOwned(ctx, owner, k); err != nil || fxCheck(r) != nil {
		t.Fatalf("after reopen: %v %v", err, fxCheck(r))
	}

	// Delete: gone for every reader, key_id stays reserved, sealed
	// material no longer in the stored record.
	if err := s.Delete(ctx, owner+"-x", k); err != store.ErrNotFound {
		t.Fatalf("Delete by another owner: %v", err)
	}
	if err := s.Delete(ctx, owner, k); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"Get":      second(s.Get(ctx, k)),
		"GetOwned": second(s.GetOwned(ctx, owner, k)),
		"Delete":   s.Delete(ctx, owner, k),
		"Commit":   s.Commit(ctx, owner, k, fxCommitment(k)),
	} {
		if err != store.ErrNotFound {
			t.Errorf("%s after Delete: %v", name, err)
		}
	}
	if err := s.CreateSlot(ctx, fxSlot(k)); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("CreateSlot reusing a deleted key_id: %v", err)
	}
	raw, err := store.RawValue(s, k)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(`"sealed_`)) || !bytes.Contains(raw, []byte(`"state":"deleted"`)) {
		t.Fatalf("tombstone still holds sealed material: %s", raw)
	}
	list, _ = s.ListByOwner(ctx, owner)
	all, _ = s.ListAll(ctx)
	if len(list) != 1 || list[0].KeyID != k2 || len(all) != 2 {
		t.Fatalf("lists after delete: %v %v", keyIDs(list), keyIDs(all))
	}
	if n, _ := s.CountByOwner(ctx, owner); n != 1 {
		t.Fatalf("CountByOwner after delete: %d", n)
	}
	// A created (never committed) slot can be deleted too.
	if err := s.Delete(ctx, owner, k2); err != nil {
		t.Fatal(err)
	}
}

func TestBoltFileMode(t *testing.T) {
	_, path := openStore(t, store.Options{})
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("store file mode: %v %v", st.Mode(), err)
	}
}

func second[T any](_ T, err error) error { return err }

func keyIDs(rs []store.Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.KeyID)
	}
	return out
}

func testValidation(t *testing.T, b backend) {
	s, _ := b.open(t)
	k := "valid-key"
	if err := s.CreateSlot(ctx, fxSlot(k)); err != nil {
		t.Fatal(err)
	}
	slot := func(f func(*store.Slot)) store.Slot { sl := fxSlot("other"); f(&sl); return sl }
	for _, tc := range []struct {
		name string
		sl   store.Slot
	}{
		{"no key_id", slot(func(s *store.Slot) { s.KeyID = "" })},
		{"long key_id", slot(func(s *store.Slot) { s.KeyID = string(make([]byte, store.MaxIDLen+1)) })},
		{"no owner", slot(func(s *store.Slot) { s.Owner = "" })},
		{"no scheme", slot(func(s *store.Slot) { s.Scheme = "" })},
		{"no keygen_id", slot(func(s *store.Slot) { s.KeygenID = nil })},
		{"no sealed identity", slot(func(s *store.Slot) { s.SealedIdentityKey = nil })},
		{"huge sealed identity", slot(func(s *store.Slot) { s.SealedIdentityKey = make([]byte, store.MaxSealedLen+1) })},
	} {
		t.Run("slot/"+tc.name, func(t *testing.T) {
			if err := s.CreateSlot(ctx, tc.sl); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("CreateSlot: %v", err)
			}
		})
	}
	commit := func(f func(*store.Commitment)) store.Commitment { c := fxCommitment(k); f(&c); return c }
	for _, tc := range []struct {
		name string
		c    store.Commitment
	}{
		{"unknown source", commit(func(c *store.Commitment) { c.Source = "magic" })},
		{"t zero", commit(func(c *store.Commitment) { c.T = 0 })},
		{"t above n", commit(func(c *store.Commitment) { c.T = c.N + 1 })},
		{"n zero", commit(func(c *store.Commitment) { c.N, c.T = 0, 0 })},
		{"own id negative", commit(func(c *store.Commitment) { c.OwnID = -1 })},
		{"own id = n", commit(func(c *store.Commitment) { c.OwnID = c.N })},
		{"keygen_ids short", commit(func(c *store.Commitment) { c.KeygenIDs = c.KeygenIDs[1:] })},
		{"public shares short", commit(func(c *store.Commitment) { c.PublicShares = c.PublicShares[1:] })},
		{"empty public share", commit(func(c *store.Commitment) { c.PublicShares[0] = nil })},
		{"own keygen_id elsewhere", commit(func(c *store.Commitment) { c.OwnID = (c.OwnID + 1) % c.N })},
		{"no public key", commit(func(c *store.Commitment) { c.PublicKey = nil })},
		{"no sealed share", commit(func(c *store.Commitment) { c.SealedShare = nil })},
	} {
		t.Run("commit/"+tc.name, func(t *testing.T) {
			if err := s.Commit(ctx, fxOwner(k), k, tc.c); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("Commit: %v", err)
			}
			if r, err := s.Get(ctx, k); err != nil || r.State != store.StateCreated {
				t.Fatalf("rejected commit changed the slot: %v %v", r.State, err)
			}
		})
	}
}

// Owner "a" with key "bc" and owner "ab" with key "c" must not see each
// other's keys through a naive prefix scan of the owner index.
func testOwnerIndexIsolation(t *testing.T, b backend) {
	s, _ := b.open(t)
	for _, p := range [][2]string{{"a", "bc"}, {"ab", "c"}, {"a", "b"}, {"", "x"}} {
		sl := fxSlot(p[1])
		sl.Owner = p[0]
		err := s.CreateSlot(ctx, sl)
		if p[0] == "" {
			if !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("empty owner accepted: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for owner, want := range map[string][]string{"a": {"b", "bc"}, "ab": {"c"}, "abc": nil, "b": nil} {
		got, err := s.ListByOwner(ctx, owner)
		if err != nil || fmt.Sprint(keyIDs(got)) != fmt.Sprint(want) {
			t.Errorf("ListByOwner(%q) = %v, %v; want %v", owner, keyIDs(got), err, want)
		}
	}
	if _, err := s.GetOwned(ctx, "ab", "bc"); err != store.ErrNotFound {
		t.Fatalf("GetOwned across owners: %v", err)
	}
}

func testConcurrentWriters(t *testing.T, b backend) {
	s, _ := b.open(t)
	const workers, perWorker = 16, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				k := fmt.Sprintf("w%02d-%02d", w, i)
				if err := s.CreateSlot(ctx, fxSlot(k)); err != nil {
					errs <- err
					return
				}
				if err := s.Commit(ctx, fxOwner(k), k, fxCommitment(k)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	// Races on one key: exactly one CreateSlot and one Commit win.
	var created, committed, dupes, already atomic.Int32
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := "contended"
			switch err := s.CreateSlot(ctx, fxSlot(k)); {
			case err == nil:
				created.Add(1)
			case errors.Is(err, store.ErrDuplicate):
				dupes.Add(1)
			default:
				errs <- err
			}
			for {
				err := s.Commit(ctx, fxOwner(k), k, fxCommitment(k))
				switch {
				case err == nil:
					committed.Add(1)
				case errors.Is(err, store.ErrAlreadyCommitted):
					already.Add(1)
				case errors.Is(err, store.ErrNotFound):
					continue // the winning CreateSlot is not done yet
				default:
					errs <- err
				}
				return
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if created.Load() != 1 || dupes.Load() != 7 || committed.Load() != 1 || already.Load() != 7 {
		t.Fatalf("contended key: created %d dup %d committed %d already %d",
			created.Load(), dupes.Load(), committed.Load(), already.Load())
	}
	all, err := s.ListAll(ctx)
	if err != nil || len(all) != workers*perWorker+1 {
		t.Fatalf("ListAll: %d records, %v", len(all), err)
	}
	for _, r := range all {
		if err := fxCheck(r); err != nil || r.State != store.StateReady {
			t.Fatalf("%v (state %s)", err, r.State)
		}
	}
}

func TestLockedByAnotherOpener(t *testing.T) {
	_, path := openStore(t, store.Options{})
	if _, err := store.Open(path, store.Options{LockTimeout: 100 * time.Millisecond}); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second Open: %v", err)
	}
}

func testCorruptionIsReported(t *testing.T, b backend) {
	s, _ := b.open(t)
	for _, k := range []string{"torn", "lost-index", "renamed"} {
		if err := s.CreateSlot(ctx, fxSlot(k)); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx, fxOwner(k), k, fxCommitment(k)); err != nil {
			t.Fatal(err)
		}
	}
	raw, _ := store.RawValue(s, "torn")
	if err := store.PutRaw(s, "torn", raw[:len(raw)/2]); err != nil {
		t.Fatal(err)
	}
	raw, _ = store.RawValue(s, "renamed")
	if err := store.PutRaw(s, "renamed", bytes.Replace(raw, []byte(`"key_id":"renamed"`), []byte(`"key_id":"other"`), 1)); err != nil {
		t.Fatal(err)
	}
	r, _ := s.Get(ctx, "lost-index")
	if err := store.DeleteOwnerIndex(s, r.Owner, "lost-index"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"torn", "renamed"} {
		if _, err := s.Get(ctx, k); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("Get(%s): %v", k, err)
		}
	}
	if _, err := s.ListAll(ctx); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("ListAll over corrupt records: %v", err)
	}
	// Without its index entry the key is invisible to its owner, not leaked.
	if _, err := s.GetOwned(ctx, r.Owner, "lost-index"); err != store.ErrNotFound {
		t.Errorf("GetOwned without index: %v", err)
	}
	// Stripping the share from a ready record makes it incomplete.
	raw, _ = store.RawValue(s, "lost-index")
	noShare := bytes.Replace(raw, []byte(`"sealed_share"`), []byte(`"sealed_shore"`), 1)
	if err := store.PutRaw(s, "lost-index", noShare); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "lost-index"); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("Get of ready record without share: %v", err)
	}
}

func testReseal(t *testing.T, b backend) {
	s, _ := b.open(t)
	for _, k := range []string{"r-ready", "r-created"} {
		if err := s.CreateSlot(ctx, fxSlot(k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit(ctx, fxOwner("r-ready"), "r-ready", fxCommitment("r-ready")); err != nil {
		t.Fatal(err)
	}
	wrap := func(b []byte) []byte { return append([]byte("v2:"), b...) }
	err := s.Reseal(ctx, "r-ready", func(r store.Record) ([]byte, []byte, error) {
		return wrap(r.SealedShare), wrap(r.SealedIdentityKey), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := s.Get(ctx, "r-ready")
	if !bytes.Equal(r.SealedShare, wrap(fxBlob("r-ready", "share"))) || !bytes.Equal(r.SealedIdentityKey, wrap(fxBlob("r-ready", "identity"))) {
		t.Fatal("Reseal did not store the new blobs")
	}
	for _, tc := range []struct {
		key  string
		fn   store.ResealFunc
		want error
	}{
		{"r-created", func(r store.Record) ([]byte, []byte, error) { return nil, wrap(r.SealedIdentityKey), nil }, nil},
		{"r-created", func(r store.Record) ([]byte, []byte, error) { return []byte("x"), []byte("y"), nil }, store.ErrInvalid},
		{"r-ready", func(r store.Record) ([]byte, []byte, error) { return nil, []byte("y"), nil }, store.ErrInvalid},
		{"r-ready", func(r store.Record) ([]byte, []byte, error) { return nil, nil, hsm.ErrUnavailable }, hsm.ErrUnavailable},
		{"absent", func(r store.Record) ([]byte, []byte, error) { return []byte("x"), []byte("y"), nil }, store.ErrNotFound},
	} {
		if err := s.Reseal(ctx, tc.key, tc.fn); !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
			t.Errorf("Reseal(%s): %v, want %v", tc.key, err, tc.want)
		}
	}
	// Failed reseals left the record as it was.
	if r2, _ := s.Get(ctx, "r-ready"); !bytes.Equal(r2.SealedShare, r.SealedShare) {
		t.Fatal("a failed Reseal changed the record")
	}
}

// TestSealCommitOpen is the daemon's path end to end against SoftHSM: seal
// the share with AAD binding it to its record, commit, reopen the store and
// the HSM, open the share.
func testSealCommitOpen(t *testing.T, b backend) {
	cfg := hsm.Config{ModulePath: hsmToken.Module, TokenLabel: hsmToken.Label, PIN: hsmToken.PIN, KeyLabel: "store-wrap", CreateKey: true}
	h, err := hsm.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	s, reopen := b.open(t)
	k := "sealed-key"
	share := bytes.Repeat([]byte{0x42}, 32)
	c := fxCommitment(k)
	aad := shareAAD(k, fxOwner(k), c.OwnID)
	c.SealedShare, err = h.Seal(share, aad)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSlot(ctx, fxSlot(k)); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, fxOwner(k), k, c); err != nil {
		t.Fatal(err)
	}
	s.Close()
	h.Close()

	s2 := reopen(t, s)
	h2, err := hsm.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	r, err := s2.GetOwned(ctx, fxOwner(k), k)
	if err != nil {
		t.Fatal(err)
	}
	got, err := h2.Open(r.SealedShare, shareAAD(r.KeyID, r.Owner, r.OwnID))
	if err != nil || !bytes.Equal(got, share) {
		t.Fatalf("open committed share: %v", err)
	}
	clear(got)
	// The AAD binds the share to its record: another owner or id fails.
	if _, err := h2.Open(r.SealedShare, shareAAD(r.KeyID, r.Owner+"x", r.OwnID)); !errors.Is(err, hsm.ErrAuth) {
		t.Fatalf("open with another owner's AAD: %v", err)
	}
}

// shareAAD mimics the daemon's binding of a sealed share to its record.
func shareAAD(keyID, owner string, ownID int) []byte {
	return []byte(fmt.Sprintf("quorumd/share/v1|%d:%s|%d:%s|%d", len(keyID), keyID, len(owner), owner, ownID))
}

// FuzzStoredRecord writes arbitrary bytes as a stored record: reads must
// answer ErrCorrupt or a record complete for its state, never panic or
// return a half-valid record.
func FuzzStoredRecord(f *testing.F) {
	s, err := store.Open(filepath.Join(f.TempDir(), store.DefaultFileName), store.WithNoSync(store.Options{}))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	k := "fuzz-key"
	if err := s.CreateSlot(ctx, fxSlot(k)); err != nil {
		f.Fatal(err)
	}
	created, _ := store.RawValue(s, k)
	if err := s.Commit(ctx, fxOwner(k), k, fxCommitment(k)); err != nil {
		f.Fatal(err)
	}
	ready, _ := store.RawValue(s, k)
	f.Add(created)
	f.Add(ready)
	f.Add([]byte(`{"v":1,"key_id":"fuzz-key","state":"deleted"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		if err := store.PutRaw(s, k, v); err != nil {
			t.Fatal(err)
		}
		r, err := s.Get(ctx, k)
		switch {
		case err == nil:
			if r.KeyID != k || (r.State != store.StateCreated && r.State != store.StateReady) {
				t.Fatalf("Get returned %q in state %q", r.KeyID, r.State)
			}
			if r.State == store.StateReady && (len(r.SealedShare) == 0 || len(r.KeygenIDs) != r.N || r.OwnID >= r.N) {
				t.Fatalf("Get returned an incomplete ready record: %+v", r)
			}
		case errors.Is(err, store.ErrCorrupt), err == store.ErrNotFound:
		default:
			t.Fatalf("unclassified error: %v", err)
		}
	})
}
