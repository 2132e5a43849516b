package importkey_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/daemon/importkey"
	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/hsm"
	"github.com/quorumd/quorumd/internal/testkit"
)

var ctx = context.Background()

// One PostgreSQL cluster for the package, started by the first test that
// needs it and stopped by TestMain.
var (
	pg     *testkit.Postgres
	pgErr  error
	pgOnce sync.Once
	pgN    atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if pg != nil {
		pg.Close()
	}
	os.Exit(code)
}

func openHSM(t testing.TB) *hsm.HSM {
	t.Helper()
	tok := testkit.SoftHSM(t, "importkey")
	h, err := hsm.Open(hsm.Config{ModulePath: tok.Module, TokenLabel: tok.Label, PIN: tok.PIN, KeyLabel: "wrap", CreateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func openBolt(t testing.TB) store.Store {
	t.Helper()
	s, err := store.OpenDir(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// pgDSN is a fresh schema in the package's cluster; it skips t without
// PostgreSQL (unless QUORUMD_REQUIRE_POSTGRES is set).
func pgDSN(t testing.TB) string {
	t.Helper()
	pgOnce.Do(func() {
		if pg, pgErr = testkit.StartPostgres(); pgErr == nil {
			_, pgErr = pg.CreateDatabase(ctx, "importkey_test")
		}
	})
	if pgErr != nil {
		testkit.SkipNoPostgres(t, pgErr)
		t.Fatal(pgErr)
	}
	dsn, err := pg.CreateSchema(ctx, "importkey_test", fmt.Sprintf("t%d", pgN.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

func openPG(t testing.TB, dsn string) store.Store {
	t.Helper()
	s, err := store.OpenPostgres(ctx, dsn, store.PostgresOptions{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A backend gives n replicas' views of one shared store: for bbolt the one
// store (a file has one opener), for PostgreSQL n stores on one database.
type backend struct {
	name     string
	replicas func(t *testing.T, n int) []store.Store
}

var backends = []backend{
	{"bolt", func(t *testing.T, n int) []store.Store {
		s := openBolt(t)
		out := make([]store.Store, n)
		for i := range out {
			out[i] = s
		}
		return out
	}},
	{"postgres", func(t *testing.T, n int) []store.Store {
		dsn := pgDSN(t)
		out := make([]store.Store, n)
		for i := range out {
			out[i] = openPG(t, dsn)
		}
		return out
	}},
}

func open(t testing.TB, st store.Blobs, h *hsm.HSM, o importkey.Options) *importkey.Keys {
	t.Helper()
	k, err := importkey.Open(ctx, st, h, o)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// roundTrip encrypts a fresh private key to pub (from the replica a client
// fetched it from) and decrypts it at k (the replica the import lands on).
func roundTrip(k *importkey.Keys, pub importkey.Public) error {
	priv, _ := btcec.NewPrivateKey()
	x := priv.Key.Bytes()
	info := importkey.Info(pub.Label, priv.PubKey().SerializeCompressed(), "key", "room")
	ct, err := importkey.Encrypt(pub, info, x[:])
	if err != nil {
		return err
	}
	var d btcec.ModNScalar
	if err := k.Decrypt(ctx, pub.Label, info, ct, &d); err != nil {
		return err
	}
	if !d.Equals(&priv.Key) {
		return errors.New("decrypted another key")
	}
	return nil
}

// TestEncryptDecrypt: a key encrypted to the published import key (each
// KEM) decrypts into the caller's scalar; a wrong binding, a tampered
// ciphertext, an unknown label and a plaintext that is no private key are
// refused with ErrDecrypt / ErrUnknownKey and leave dst zero; the private
// halves are stored sealed, and the previous generation still decrypts
// after a rotation, the one before it not.
func TestEncryptDecrypt(t *testing.T) {
	h := openHSM(t)
	st := openBolt(t)
	k := open(t, st, h, importkey.Options{})
	priv, _ := btcec.NewPrivateKey()
	x := priv.Key.Bytes()
	keygen := priv.PubKey().SerializeCompressed()
	otherSlot := bytes.Clone(keygen)
	otherSlot[32] ^= 1
	for _, kem := range []string{"", importkey.KEMXWing, importkey.KEMP256} {
		pub, err := k.Public(kem)
		if err != nil {
			t.Fatal(err)
		}
		info := importkey.Info(pub.Label, keygen, "key-1", "room-1")
		ct, err := importkey.Encrypt(pub, info, x[:])
		if err != nil {
			t.Fatal(err)
		}
		var dst btcec.ModNScalar
		if err := k.Decrypt(ctx, pub.Label, info, ct, &dst); err != nil || !dst.Equals(&priv.Key) {
			t.Fatalf("%s: decrypt: %v", pub.KEM, err)
		}
		for name, c := range map[string]struct {
			label string
			info  []byte
			ct    []byte
			want  error
		}{
			"other key_id":  {pub.Label, importkey.Info(pub.Label, keygen, "key-2", "room-1"), ct, importkey.ErrDecrypt},
			"other room":    {pub.Label, importkey.Info(pub.Label, keygen, "key-1", "room-2"), ct, importkey.ErrDecrypt},
			"other slot":    {pub.Label, importkey.Info(pub.Label, otherSlot, "key-1", "room-1"), ct, importkey.ErrDecrypt},
			"tampered":      {pub.Label, info, append(ct[:len(ct)-1:len(ct)-1], ct[len(ct)-1]^1), importkey.ErrDecrypt},
			"truncated":     {pub.Label, info, ct[:10], importkey.ErrDecrypt},
			"unknown label": {"nope", info, ct, importkey.ErrUnknownKey},
		} {
			var d btcec.ModNScalar
			if err := k.Decrypt(ctx, c.label, c.info, c.ct, &d); !errors.Is(err, c.want) || !d.IsZero() {
				t.Errorf("%s %s: %v (dst zero %t), want %v", pub.KEM, name, err, d.IsZero(), c.want)
			}
		}
		var n [32]byte // zero is no private key
		ct0, _ := importkey.Encrypt(pub, info, n[:])
		var d btcec.ModNScalar
		if err := k.Decrypt(ctx, pub.Label, info, ct0, &d); !errors.Is(err, importkey.ErrDecrypt) {
			t.Errorf("%s: zero key: %v", pub.KEM, err)
		}
	}
	raw, _, err := st.GetBlob(ctx, importkey.BlobName)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("sealed_private_key")) {
		t.Fatal("no sealed private key in the store")
	}

	old, _ := k.Public("")
	oldInfo := importkey.Info(old.Label, keygen, "k", "r")
	oldCT, _ := importkey.Encrypt(old, oldInfo, x[:])
	if err := k.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	// Reopened from the store: the same keys, nothing re-written.
	_, ver, _ := st.GetBlob(ctx, importkey.BlobName)
	k = open(t, st, h, importkey.Options{})
	if _, ver2, _ := st.GetBlob(ctx, importkey.BlobName); ver2 != ver {
		t.Fatalf("a plain reopen rewrote the keys (version %d → %d)", ver, ver2)
	}
	if cur, _ := k.Public(""); cur.Label == old.Label || bytes.Equal(cur.PublicKey, old.PublicKey) {
		t.Fatal("rotation did not change the published key")
	}
	var d btcec.ModNScalar
	if err := k.Decrypt(ctx, old.Label, oldInfo, oldCT, &d); err != nil || !d.Equals(&priv.Key) {
		t.Fatalf("previous generation after one rotation: %v", err)
	}
	if err := k.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := k.Decrypt(ctx, old.Label, oldInfo, oldCT, &d); !errors.Is(err, importkey.ErrUnknownKey) {
		t.Fatalf("two generations back: %v, want ErrUnknownKey", err)
	}
}

// TestReplicasShareKeys: replicas on one store publish the same key; a
// ciphertext to the key fetched from one decrypts at another, also after a
// rotation on the first that the second has not seen (it reloads on the
// newer label), and in the other direction.
func TestReplicasShareKeys(t *testing.T) {
	h := openHSM(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			sts := b.replicas(t, 2)
			a, c := open(t, sts[0], h, importkey.Options{}), open(t, sts[1], h, importkey.Options{})
			for _, kem := range []string{importkey.KEMXWing, importkey.KEMP256} {
				pa, _ := a.Public(kem)
				pc, _ := c.Public(kem)
				if pa.Label != pc.Label || !bytes.Equal(pa.PublicKey, pc.PublicKey) {
					t.Fatalf("%s: replicas publish %s and %s", kem, pa.Label, pc.Label)
				}
				if err := roundTrip(c, pa); err != nil {
					t.Fatalf("%s: fetched from a, decrypted at c: %v", kem, err)
				}
			}
			if err := a.Rotate(ctx); err != nil {
				t.Fatal(err)
			}
			pa, _ := a.Public("")
			if pc, _ := c.Public(""); pc.Label == pa.Label {
				t.Fatal("c saw a's rotation without reloading (test is blind)")
			}
			if err := roundTrip(c, pa); err != nil {
				t.Fatalf("rotated on a, decrypted at c: %v", err)
			}
			if pc, _ := c.Public(""); pc.Label != pa.Label || c.Generation() != 2 {
				t.Fatalf("c after its reload publishes %s (generation %d), a %s", pc.Label, c.Generation(), pa.Label)
			}
			if err := c.Rotate(ctx); err != nil {
				t.Fatal(err)
			}
			pc, _ := c.Public("")
			if err := roundTrip(a, pc); err != nil {
				t.Fatalf("rotated on c, decrypted at a: %v", err)
			}
			if a.Generation() != 3 || c.Generation() != 3 {
				t.Fatalf("generations %d and %d, want 3", a.Generation(), c.Generation())
			}
		})
	}
}

// TestRotationRace: replicas rotating at the same moment make exactly one
// generation per round, and every replica then serves it; replicas opening
// at once on an empty store, or on keys that aged out, make one too.
func TestRotationRace(t *testing.T) {
	h := openHSM(t)
	const n, rounds = 4, 3
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			sts := b.replicas(t, n)
			t0 := time.Now()
			clock := func() time.Time { return t0 }
			ks := make([]*importkey.Keys, n)
			parallel(t, n, func(i int) (err error) {
				ks[i], err = importkey.Open(ctx, sts[i], h, importkey.Options{Now: clock})
				return err
			})
			want := 1
			check := func(what string) {
				t.Helper()
				p0, _ := ks[0].Public("")
				for i, k := range ks {
					p, _ := k.Public("")
					if k.Generation() != want || p.Label != p0.Label {
						t.Fatalf("%s: replica %d serves generation %d (%s), want %d (%s)", what, i, k.Generation(), p.Label, want, p0.Label)
					}
				}
				if err := roundTrip(ks[n-1], p0); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
			}
			check("first open")
			for round := range rounds {
				parallel(t, n, func(i int) error { return ks[i].Rotate(ctx) })
				want++
				check(fmt.Sprintf("round %d", round))
			}
			// Aged out: replicas starting at once rotate once.
			later := func() time.Time { return t0.Add(importkey.Lifetime + time.Hour) }
			parallel(t, n, func(i int) (err error) {
				ks[i], err = importkey.Open(ctx, sts[i], h, importkey.Options{Now: later})
				return err
			})
			want++
			check("aged out")
		})
	}
}

func parallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() { <-start; errs[i] = f(i) })
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// countingStore counts blob reads, to show which labels cause a reload.
type countingStore struct {
	store.Blobs
	reads atomic.Int64
}

func (c *countingStore) GetBlob(ctx context.Context, name string) ([]byte, int64, error) {
	c.reads.Add(1)
	return c.Blobs.GetBlob(ctx, name)
}

// TestReloadOnlyForNewerLabels: an unknown label reloads the keys only if
// it names a newer generation than the replica serves, so made-up or
// retired labels cost no store read.
func TestReloadOnlyForNewerLabels(t *testing.T) {
	h := openHSM(t)
	cs := &countingStore{Blobs: openBolt(t)}
	k := open(t, cs, h, importkey.Options{})
	var d btcec.ModNScalar
	for _, label := range []string{"nope", "qd-import-0-xwing-00", "qd-import-1-xwing-00", "qd-import-x-xwing"} {
		before := cs.reads.Load()
		if err := k.Decrypt(ctx, label, []byte("i"), []byte("ct"), &d); !errors.Is(err, importkey.ErrUnknownKey) {
			t.Fatalf("%s: %v", label, err)
		}
		if cs.reads.Load() != before {
			t.Fatalf("%s caused a reload", label)
		}
	}
	before := cs.reads.Load()
	if err := k.Decrypt(ctx, "qd-import-7-xwing-00", []byte("i"), []byte("ct"), &d); !errors.Is(err, importkey.ErrUnknownKey) {
		t.Fatal(err)
	}
	if cs.reads.Load() != before+1 {
		t.Fatalf("a newer generation's label made %d reads, want 1", cs.reads.Load()-before)
	}
}

// TestMaintainPicksUpRotation: a replica's Maintain loop serves another
// replica's rotation without any request naming it, and rotates keys that
// age out while it runs.
func TestMaintainPicksUpRotation(t *testing.T) {
	h := openHSM(t)
	st := openBolt(t)
	var now atomic.Pointer[time.Time]
	t0 := time.Now()
	now.Store(&t0)
	clock := func() time.Time { return *now.Load() }
	a, c := open(t, st, h, importkey.Options{}), open(t, st, h, importkey.Options{Now: clock})
	mctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); c.Maintain(mctx, 10*time.Millisecond) }()
	defer func() { stop(); <-done }()
	if err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c serves a's rotation", func() bool { return c.Generation() == 2 })
	later := t0.Add(importkey.Lifetime + time.Minute)
	now.Store(&later)
	waitFor(t, "c rotates aged keys", func() bool { return c.Generation() == 3 })
	if err := a.Refresh(ctx); err != nil || a.Generation() != 3 {
		t.Fatalf("a after refresh: generation %d, %v", a.Generation(), err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMigrateLegacyFile: a state directory's import-keys.json (keys before
// they lived in the store) moves into an empty store, keeping its labels so
// clients' ciphertexts still decrypt, and the file is removed; a replica
// whose store already holds keys drops its own file and serves the store's.
func TestMigrateLegacyFile(t *testing.T) {
	h := openHSM(t)
	src := openBolt(t)
	old := open(t, src, h, importkey.Options{})
	raw, _, err := src.GetBlob(ctx, importkey.BlobName)
	if err != nil {
		t.Fatal(err)
	}
	legacy := func() string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, importkey.FileName), raw, 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	pub, _ := old.Public("")

	st := openBolt(t)
	dir := legacy()
	k := open(t, st, h, importkey.Options{StateDir: dir})
	if p, _ := k.Public(""); p.Label != pub.Label {
		t.Fatalf("migrated keys publish %s, the file held %s", p.Label, pub.Label)
	}
	if err := roundTrip(k, pub); err != nil {
		t.Fatalf("a ciphertext to the file's key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, importkey.FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the legacy file is still there: %v", err)
	}

	other := openBolt(t)
	mine := open(t, other, h, importkey.Options{})
	dir = legacy()
	k = open(t, other, h, importkey.Options{StateDir: dir})
	if p, _ := k.Public(""); p.Label == pub.Label {
		t.Fatal("a replica's file replaced the store's keys")
	}
	if p, _ := mine.Public(""); roundTrip(k, p) != nil {
		t.Fatal("the store's keys do not decrypt after the file was dropped")
	}
	if _, err := os.Stat(filepath.Join(dir, importkey.FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the dropped legacy file is still there: %v", err)
	}
}

// BenchmarkDecrypt is the daemon's cost per encrypted import: unsealing the
// import key through the HSM, HPKE decapsulation and decryption.
func BenchmarkDecrypt(b *testing.B) {
	h := openHSM(b)
	k := open(b, openBolt(b), h, importkey.Options{})
	priv, _ := btcec.NewPrivateKey()
	x := priv.Key.Bytes()
	for _, kem := range []string{importkey.KEMXWing, importkey.KEMP256} {
		pub, _ := k.Public(kem)
		info := importkey.Info(pub.Label, []byte{2}, "k", "r")
		ct, _ := importkey.Encrypt(pub, info, x[:])
		b.Run(kem, func(b *testing.B) {
			var d btcec.ModNScalar
			for b.Loop() {
				if err := k.Decrypt(ctx, pub.Label, info, ct, &d); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(kem+"/client-encrypt", func(b *testing.B) {
			for b.Loop() {
				if _, err := importkey.Encrypt(pub, info, x[:]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestResealOnWrappingKeyRotation: opened with a new active wrapping key
// (the old one still readable), the stored private halves are re-sealed
// under the new key in one write, so they open where only the new key is
// configured; a second open writes nothing.
func TestResealOnWrappingKeyRotation(t *testing.T) {
	tok := testkit.SoftHSM(t, "importkey-reseal")
	openWith := func(label string, read ...string) *hsm.HSM {
		h, err := hsm.Open(hsm.Config{ModulePath: tok.Module, TokenLabel: tok.Label, PIN: tok.PIN, KeyLabel: label, ReadKeyLabels: read, CreateKey: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	st := openBolt(t)
	old := open(t, st, openWith("wrap-1"), importkey.Options{})
	pub, _ := old.Public("")
	labels := func() map[string]bool {
		raw, _, err := st.GetBlob(ctx, importkey.BlobName)
		if err != nil {
			t.Fatal(err)
		}
		var set struct {
			Keys []struct {
				Sealed []byte `json:"sealed_private_key"`
			} `json:"keys"`
		}
		if err := json.Unmarshal(raw, &set); err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, k := range set.Keys {
			l, err := hsm.BlobKeyLabel(k.Sealed)
			if err != nil {
				t.Fatal(err)
			}
			out[l] = true
		}
		return out
	}
	if l := labels(); !l["wrap-1"] || len(l) != 1 {
		t.Fatalf("sealed under %v", l)
	}
	open(t, st, openWith("wrap-2", "wrap-1"), importkey.Options{})
	if l := labels(); !l["wrap-2"] || len(l) != 1 {
		t.Fatalf("after the re-seal, sealed under %v", l)
	}
	_, ver, _ := st.GetBlob(ctx, importkey.BlobName)
	k := open(t, st, openWith("wrap-2"), importkey.Options{})
	if _, v2, _ := st.GetBlob(ctx, importkey.BlobName); v2 != ver {
		t.Fatalf("a second open re-wrote the keys (version %d → %d)", ver, v2)
	}
	if err := roundTrip(k, pub); err != nil {
		t.Fatalf("with only the new wrapping key: %v", err)
	}
}

// BenchmarkRefreshRotate: a reload from the store (what a replica pays per
// label of a newer generation, and once a minute) and a rotation (two key
// pairs, two HSM seals, the compare-and-swap, the scrub or VACUUM).
func BenchmarkRefreshRotate(b *testing.B) {
	h := openHSM(b)
	for _, be := range []struct {
		name string
		open func(b *testing.B) store.Store
	}{
		{"bolt", func(b *testing.B) store.Store { return openBolt(b) }},
		{"postgres", func(b *testing.B) store.Store { return openPG(b, pgDSN(b)) }},
	} {
		b.Run(be.name, func(b *testing.B) {
			k := open(b, be.open(b), h, importkey.Options{})
			b.Run("refresh", func(b *testing.B) {
				for b.Loop() {
					if err := k.Refresh(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("rotate", func(b *testing.B) {
				for b.Loop() {
					if err := k.Rotate(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
