package policy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFileLayout(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "policy.json")
	s, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v %v, want 0600", fi.Mode().Perm(), err)
	}
	key, _, err := s.CreateUser(context.Background(), "alice", true, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), key[lookupIDLen+1:]) {
		t.Fatal("the API key secret is stored in the file")
	}
	if !strings.Contains(string(b), `"version": 1`) || !strings.Contains(string(b), key[:lookupIDLen]) {
		t.Fatalf("unexpected content: %s", b)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("temp file left behind: %s", e.Name())
		}
	}
	if fi, err := os.Stat(p + ".lock"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v %v", fi, err)
	}
	if _, err := OpenFile(filepath.Join(dir, "missing-dir", "p.json")); err == nil {
		t.Fatal("opened a file in a missing directory")
	}
	if _, err := OpenFile(""); !errors.Is(err, ErrConfig) {
		t.Fatalf("empty path: %v", err)
	}
}

func TestFilePermissions(t *testing.T) {
	p := filepath.Join(t.TempDir(), "policy.json")
	s, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFile(p); !errors.Is(err, ErrConfig) {
		t.Fatalf("world-readable file opened: %v", err)
	}
	if err := s.Ping(context.Background()); !errors.Is(err, ErrConfig) {
		t.Fatalf("ping with a world-readable file: %v", err)
	}
}

// TestFileConcurrentWriters: two instances (as the daemon and quorumctl
// would be) writing at once lose no update.
func TestFileConcurrentWriters(t *testing.T) {
	p := filepath.Join(t.TempDir(), "policy.json")
	var srcs []*FileSource
	for i := 0; i < 2; i++ {
		s, err := OpenFile(p)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, s)
	}
	const n = 16
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, _, err := srcs[i%2].CreateUser(context.Background(), fmt.Sprintf("u%d", i), false, ""); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	for _, s := range srcs {
		us, err := s.ListUsers(context.Background())
		if err != nil || len(us) != n {
			t.Fatalf("%d users, want %d (%v)", len(us), n, err)
		}
	}
}

// TestFileFailures: a corrupt file fails closed; a vanished file counts as
// an unavailable source (stale window applies) and recovers.
func TestFileFailures(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "policy.json")
	s, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutPolicy(ctx, signerPolicy); err != nil {
		t.Fatal(err)
	}
	key, _ := mustCreate(t, s, "u", false, "signer")
	good, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	a := newTestAuthorizer(t, s, clock)
	if _, err := a.Authorize(ctx, key, OpSign, Params{}); err != nil {
		t.Fatal(err)
	}

	for _, bad := range []string{"{", `{"version":1,"users":{},"surprise":1}`, `{"version":2}`, `{"version":1,"users":{"x":null}}`} {
		if err := os.WriteFile(p, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		clock.Advance(a.cfg.TTL + time.Millisecond)
		if _, err := a.Authorize(ctx, key, OpSign, Params{}); errType(err) != ErrTypeInternalProblem || !errors.Is(err, ErrSourceInvalid) {
			t.Fatalf("corrupt file %q: %v", bad, err)
		}
		if err := s.Ping(ctx); !errors.Is(err, ErrSourceInvalid) {
			t.Fatalf("ping corrupt: %v", err)
		}
	}
	if err := os.WriteFile(p, good, 0o600); err != nil {
		t.Fatal(err)
	}
	clock.Advance(a.cfg.TTL + time.Millisecond)
	if _, err := a.Authorize(ctx, key, OpSign, Params{}); err != nil {
		t.Fatalf("restored file: %v", err)
	}

	if err := os.Rename(p, p+".away"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(a.cfg.TTL + time.Millisecond)
	if _, err := a.Authorize(ctx, key, OpSign, Params{}); err != nil {
		t.Fatalf("file gone, inside the stale window: %v", err)
	}
	clock.Advance(a.cfg.StaleWindow)
	if _, err := a.Authorize(ctx, key, OpSign, Params{}); !errors.Is(err, ErrSourceUnavailable) {
		t.Fatalf("file gone, beyond the window: %v", err)
	}
	if err := os.Rename(p+".away", p); err != nil {
		t.Fatal(err)
	}
	clock.Advance(a.cfg.RetryAfter)
	if _, err := a.Authorize(ctx, key, OpSign, Params{}); err != nil {
		t.Fatalf("file back: %v", err)
	}
}
