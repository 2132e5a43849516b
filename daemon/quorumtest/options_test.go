package quorumtest_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/quorumd/quorumd/daemon/client"
	"github.com/quorumd/quorumd/daemon/quorumtest"
	"github.com/quorumd/quorumd/daemon/quorumtest/hsmtest"
	"github.com/quorumd/quorumd/internal/testkit/paths"
	"github.com/quorumd/quorumd/mpc/bip340"
)

// importAndSignDriver imports a fresh key through q's Driver at q's
// threshold, signs with every party and verifies with the pure-Go verifier.
func importAndSignDriver(t *testing.T, q *quorumtest.Quorum) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	priv := make([]byte, 32)
	rand.Read(priv)
	pub, err := client.XOnlyPubkey(priv)
	if err != nil {
		t.Fatal(err)
	}
	imp, err := q.Driver().Import(ctx, priv, client.ImportOptions{Threshold: q.Threshold()})
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("quorumtest options")
	res, err := q.Driver().Sign(ctx, imp.KeyIDs, msg, client.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := hex.DecodeString(res.Signature)
	if err := bip340.VerifyReference(pub[:], msg, sig); err != nil {
		t.Fatal(err)
	}
}

// TestPostgresStore: Store "postgres" puts every party's keys in its own
// database of a throwaway cluster (skipped without PostgreSQL).
func TestPostgresStore(t *testing.T) {
	q := quorumtest.Start(t, quorumtest.Options{Parties: 2, Store: "postgres"})
	importAndSignDriver(t, q)
	if logs := q.Daemons[0].Logs(); !strings.Contains(logs, `"store":"postgres"`) {
		t.Fatalf("daemon 0 does not use PostgreSQL:\n%s", logs)
	}
}

// TestTLS: with TLS the daemons serve HTTPS only and require a client
// certificate of the test PKI, which the Quorum's clients present: an
// import and a signature go through; URL is then the daemon's https URL.
func TestTLS(t *testing.T) {
	q := quorumtest.Start(t, quorumtest.Options{Parties: 2, TLS: true})
	if q.PKI == nil || !strings.HasPrefix(q.URL(0), "https://") || q.URL(0) != q.DirectURL(0) {
		t.Fatalf("PKI %v, URL %s, DirectURL %s", q.PKI, q.URL(0), q.DirectURL(0))
	}
	importAndSignDriver(t, q)
	if _, err := http.Get(q.URL(1) + "/healthz"); err == nil {
		t.Fatal("a client without the test CA and certificate was served")
	}
}

// TestQuorumdBinary: with QuorumdBinary the daemons are processes of that
// executable (built here once; quorumtest itself builds nothing).
func TestQuorumdBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/quorumd; not in -short")
	}
	bin := filepath.Join(t.TempDir(), "quorumd")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "./cmd/quorumd")
	build.Dir = paths.ModuleRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	q := quorumtest.Start(t, quorumtest.Options{Parties: 2, QuorumdBinary: bin})
	importAndSignDriver(t, q)
	if logs := q.Daemons[1].Logs(); !strings.Contains(logs, `"version":"dev"`) {
		t.Fatalf("daemon 1 is not the binary's (version dev):\n%s", logs)
	}
}

// TestSkipsWithoutSoftHSM: without softhsm2 a test using Start is skipped,
// and the message names the Debian package to install.
func TestSkipsWithoutSoftHSM(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("SOFTHSM2_MODULE", filepath.Join(t.TempDir(), "libsofthsm2.so"))
	var started bool
	inner := &testing.T{}
	done := make(chan struct{})
	go func() { // Skip ends the goroutine, as it ends a test's
		defer close(done)
		quorumtest.Start(inner, quorumtest.Options{})
		started = true
	}()
	<-done
	if started || !inner.Skipped() {
		t.Fatalf("Start without SoftHSM: started %v, skipped %v", started, inner.Skipped())
	}
	// The skip message is Available's error.
	if err := hsmtest.Available(); err == nil || !strings.Contains(err.Error(), "apt-get install softhsm2") {
		t.Fatalf("Available: %v", err)
	}
}
