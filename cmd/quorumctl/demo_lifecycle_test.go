package main

import (
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/quorumd/quorumd/mpc/bip340"
)

// TestDemoLifecycle runs `demo.sh lifecycle`: after the import and first
// signature, a refresh, a reshare to a fourth daemon and a removal, each
// followed by a signature; every signature verifies under one unchanged
// pubkey, and everything the demo started is gone.
func TestDemoLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("four daemons and four ceremonies: not in -short")
	}
	out := runDemo(t, map[string]string{"VAULT_ADDR": "", "VAULT_TOKEN": "", "QUORUM_DEMO_KEEP": ""}, "lifecycle")
	pubs := demoPubkeyRE.FindAllStringSubmatch(out, -1)
	msgs := demoMessageRE.FindAllStringSubmatch(out, -1)
	sigs := demoSignatureRE.FindAllStringSubmatch(out, -1)
	if len(pubs) != 4 || len(msgs) != 4 || len(sigs) != 4 {
		t.Fatalf("%d pubkey, %d message, %d signature lines, want 4 each (import, refresh, add, remove):\n%s", len(pubs), len(msgs), len(sigs), out)
	}
	for i := range pubs {
		if pubs[i][1] != pubs[0][1] {
			t.Errorf("signature %d: pubkey %s, the key is %s", i, pubs[i][1], pubs[0][1])
		}
		pub, _ := hex.DecodeString(pubs[i][1])
		msg, _ := hex.DecodeString(msgs[i][1])
		sig, _ := hex.DecodeString(sigs[i][1])
		if err := bip340.Verify(pub, msg, sig); err != nil {
			t.Errorf("signature %d does not verify: %v", i, err)
		}
	}
	if !strings.Contains(out, "removed: ") || !strings.Contains(out, "threshold: 2 of 4") {
		t.Errorf("the demo did not add a party and remove one:\n%s", out)
	}
	for _, p := range strings.Fields(demoPidsRE.FindStringSubmatch(out)[1]) {
		pid, _ := strconv.Atoi(p)
		if proc, err := os.FindProcess(pid); err == nil && proc.Signal(nil) == nil {
			t.Errorf("process %d the demo started is still running", pid)
		}
	}
	if m := demoWorkRE.FindStringSubmatch(out); m == nil {
		t.Error("no work dir line")
	} else if _, err := os.Stat(m[1]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("work dir %s left behind", m[1])
	}
}
