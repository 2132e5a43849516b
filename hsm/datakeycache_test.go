package hsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/quorumd/quorumd/hsm"
)

// cachedKey makes a data key on h, seals a secret under it and opens it
// (so its handle is cached), and returns the blob.
func cachedKey(t *testing.T, h *hsm.HSM, prefix string) (keyID string, blob []byte) {
	t.Helper()
	keyID = fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
	if err := h.CreateNewDataKey(keyID); err != nil {
		t.Fatal(err)
	}
	blob, err := h.SealFor(keyID, cacheSecret, cacheAAD)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := h.Open(blob, cacheAAD); err != nil || !bytes.Equal(pt, cacheSecret) {
		t.Fatalf("open: %v", err)
	}
	return keyID, blob
}

var cacheSecret, cacheAAD = bytes.Repeat([]byte{7}, 32), []byte("aad")

// requireGone checks that a's cached handle of a destroyed key fails closed
// with ErrNoDataKey, for opens and seals, without dropping a's token
// context, and that a's other cached key still works.
func requireGone(t *testing.T, a *hsm.HSM, keyID string, blob []byte, otherID string, otherBlob []byte) {
	t.Helper()
	ctx := a.TokenContext()
	if _, err := a.Open(blob, cacheAAD); !errors.Is(err, hsm.ErrNoDataKey) {
		t.Fatalf("open after the key was destroyed elsewhere: %v, want ErrNoDataKey", err)
	}
	if _, err := a.SealFor(keyID, cacheSecret, cacheAAD); !errors.Is(err, hsm.ErrNoDataKey) {
		t.Fatalf("seal after the key was destroyed elsewhere: %v, want ErrNoDataKey", err)
	}
	if pt, err := a.Open(otherBlob, cacheAAD); err != nil || !bytes.Equal(pt, cacheSecret) {
		t.Fatalf("another key after the destroy: %v", err)
	}
	if a.TokenContext() != ctx {
		t.Fatal("a stale data-key handle dropped the whole token context")
	}
}

// TestDataKeyDestroyedByReplica: two *HSM on one token, as replicas sharing
// it; one has the data key cached (from its creation and an open), the
// other destroys it. SoftHSM answers CKR_OBJECT_HANDLE_INVALID for the
// cached handle: the key must read as deleted, not as a token failure.
func TestDataKeyDestroyedByReplica(t *testing.T) {
	a := mustOpen(t, cfgFor(tok.main, "wrap-a"))
	b := mustOpen(t, cfgFor(tok.main, "wrap-a"))
	keyID, blob := cachedKey(t, a, "dk-replica")
	otherID, otherBlob := cachedKey(t, a, "dk-replica-other")
	defer a.DestroyDataKey(otherID)
	if pt, err := b.Open(blob, cacheAAD); err != nil || !bytes.Equal(pt, cacheSecret) {
		t.Fatalf("replica open: %v", err)
	}
	if err := b.DestroyDataKey(keyID); err != nil {
		t.Fatal(err)
	}
	requireGone(t, a, keyID, blob, otherID, otherBlob)
}

// TestDataKeyDestroyedByOtherProcess: the same with the replica in another
// process, whose destruction this process's module learns only from the
// token's files.
func TestDataKeyDestroyedByOtherProcess(t *testing.T) {
	a := mustOpen(t, cfgFor(tok.main, "wrap-a"))
	keyID, blob := cachedKey(t, a, "dk-proc")
	otherID, otherBlob := cachedKey(t, a, "dk-proc-other")
	defer a.DestroyDataKey(otherID)
	destroyInOtherProcess(t, keyID)
	requireGone(t, a, keyID, blob, otherID, otherBlob)
}

// TestDataKeyRecreatedUnderSameLabel: a replica destroys the key and makes
// a new one under the same label. The cached handle is stale; a seal uses
// the new key (the one a fresh lookup finds, so the replica opens it), and
// the old blob fails authentication under the new key.
func TestDataKeyRecreatedUnderSameLabel(t *testing.T) {
	a := mustOpen(t, cfgFor(tok.main, "wrap-a"))
	b := mustOpen(t, cfgFor(tok.main, "wrap-a"))
	keyID, blob := cachedKey(t, a, "dk-recreated")
	defer b.DestroyDataKey(keyID)
	if err := b.DestroyDataKey(keyID); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateDataKey(keyID); err != nil {
		t.Fatal(err)
	}
	ctx := a.TokenContext()
	newBlob, err := a.SealFor(keyID, cacheSecret, cacheAAD)
	if err != nil {
		t.Fatalf("seal under the re-created key: %v", err)
	}
	if pt, err := b.Open(newBlob, cacheAAD); err != nil || !bytes.Equal(pt, cacheSecret) {
		t.Fatalf("the replica opens what was sealed under the re-created key: %v", err)
	}
	if _, err := a.Open(blob, cacheAAD); !errors.Is(err, hsm.ErrAuth) {
		t.Fatalf("old blob under the re-created key: %v, want ErrAuth", err)
	}
	if pt, err := a.Open(newBlob, cacheAAD); err != nil || !bytes.Equal(pt, cacheSecret) {
		t.Fatalf("open under the re-created key: %v", err)
	}
	if a.TokenContext() != ctx {
		t.Fatal("a stale data-key handle dropped the whole token context")
	}
}

// TestDataKeyHandleReused: a cached handle that names another object (a
// module may reuse a destroyed object's handle) must neither seal under
// that object nor open with it: the seal checks the object's label first,
// an open fails authentication; both then look the key up afresh.
func TestDataKeyHandleReused(t *testing.T) {
	a := mustOpen(t, cfgFor(tok.main, "wrap-a"))
	keyID, blob := cachedKey(t, a, "dk-reused")
	otherID, _ := cachedKey(t, a, "dk-reused-other")
	defer a.DestroyDataKey(keyID)
	defer a.DestroyDataKey(otherID)

	a.CacheDataKeyAs(keyID, otherID)
	if pt, err := a.Open(blob, cacheAAD); err != nil || !bytes.Equal(pt, cacheSecret) {
		t.Fatalf("open through a reused handle: %v", err)
	}
	a.CacheDataKeyAs(keyID, otherID)
	sealed, err := a.SealFor(keyID, cacheSecret, cacheAAD)
	if err != nil {
		t.Fatal(err)
	}
	// Sealed under keyID's own object: a process that never cached anything
	// opens it, and destroying the other key does not take it along.
	if err := a.DestroyDataKey(otherID); err != nil {
		t.Fatal(err)
	}
	fresh := mustOpen(t, cfgFor(tok.main, "wrap-a"))
	if pt, err := fresh.Open(sealed, cacheAAD); err != nil || !bytes.Equal(pt, cacheSecret) {
		t.Fatalf("blob sealed through a reused handle: %v", err)
	}
}

// destroyEnv asks a re-executed test binary to destroy a data key as
// another process on the token would (a replica): "module|label|pin|keyID",
// SOFTHSM2_CONF inherited.
const destroyEnv = "QUORUMD_HSM_TEST_DESTROY"

// destroyHelper runs in the child of destroyInOtherProcess and reports
// whether it did (TestMain then exits).
func destroyHelper() bool {
	arg, ok := os.LookupEnv(destroyEnv)
	if !ok {
		return false
	}
	f := strings.Split(arg, "|")
	h, err := hsm.Open(hsm.Config{ModulePath: f[0], TokenLabel: f[1], PIN: f[2], KeyLabel: "wrap-a"})
	if err == nil {
		err = h.DestroyDataKey(f[3])
		h.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "destroy helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
	return true
}

// destroyInOtherProcess destroys keyID's data key from another process.
func destroyInOtherProcess(t *testing.T, keyID string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), destroyEnv+"="+strings.Join([]string{tok.main.Module, tok.main.Label, tok.main.PIN, keyID}, "|"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("destroying in another process: %v: %s", err, out)
	}
}
