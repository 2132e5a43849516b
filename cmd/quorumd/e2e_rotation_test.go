package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ThalesGroup/crypto11"

	"github.com/quorumd/quorumd/internal/testkit"
)

// TestE2EWrappingKeyRotation rotates a daemon's wrapping key without losing
// a key: restart with a new key_label and the old one in read_key_labels,
// let the background re-seal finish, destroy the old key in the token, and
// the daemon still signs with the share sealed before the rotation.
func TestE2EWrappingKeyRotation(t *testing.T) {
	relayAddr := testkit.Relay(t)
	q := newQuorum(t, relayAddr, 0, 3)
	ids, pub, _ := q.importAndCheck(q.nodes, 2)
	n := q.nodes[0]

	n.stop()
	raw, err := os.ReadFile(n.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(raw), "key_label: "+e2eKeyLabel+"\n",
		"key_label: wrap-2\n  read_key_labels: ["+e2eKeyLabel+"]\n", 1)
	if err := os.WriteFile(n.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	n.start()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(n.logs.String(), "re-seal pass finished") {
		if time.Now().After(deadline) {
			t.Fatalf("no re-seal logged:\n%s", n.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Destroy the old key: nothing may still need it.
	ctx, err := crypto11.Configure(&crypto11.Config{Path: n.tok.Module, TokenLabel: n.tok.Label, Pin: n.tok.PIN})
	if err != nil {
		t.Fatal(err)
	}
	old, err := ctx.FindKey(nil, []byte(e2eKeyLabel))
	if err != nil || old == nil {
		t.Fatalf("old wrapping key: %v", err)
	}
	if err := old.Delete(); err != nil {
		t.Fatal(err)
	}
	ctx.Close()

	// Restart on the new key alone and sign with the re-sealed share.
	n.stop()
	cfg = strings.Replace(cfg, "  read_key_labels: ["+e2eKeyLabel+"]\n", "", 1)
	if err := os.WriteFile(n.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	n.start()
	q.signAndCheck(pick(q.nodes, 0, 1), pick(ids, 0, 1), pub)
}
