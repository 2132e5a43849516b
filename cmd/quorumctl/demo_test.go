package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2/schnorr"

	"github.com/quorumd/quorumd/internal/apispec"
	"github.com/quorumd/quorumd/mpc/bip340"
	"github.com/quorumd/quorumd/policy"
	"github.com/quorumd/quorumd/policy/vaulttest"
)

var (
	demoPubkeyRE    = regexp.MustCompile(`(?m)^pubkey: ([0-9a-f]{64})$`)
	demoMessageRE   = regexp.MustCompile(`(?m)^message: ((?:[0-9a-f]{2})+)$`)
	demoSignatureRE = regexp.MustCompile(`(?m)^signature: ([0-9a-f]{128})$`)
	demoPidsRE      = regexp.MustCompile(`(?m)^started pids: ([0-9 ]+)$`)
	demoWorkRE      = regexp.MustCompile(`(?m)^==> SoftHSM: (?:three|[0-9]+) tokens in (\S+)/softhsm$`)
	demoPrefixRE    = regexp.MustCompile(`one prefix per daemon \((quorumd-demo-[A-Za-z0-9]+)-dN\)`)
)

// runDemo runs `bash cmd/quorumctl/demo.sh` from the repository root with
// env added to (or, for empty values, removed from) this process's
// environment. It fails the test, never skips: a missing tool is a failure.
func runDemo(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	root := repoRoot(t)
	// Every daemon the script starts is reached through a validating proxy:
	// each exchange of quorumctl and curl is checked against the OpenAPI
	// document, and a violation fails the test.
	env = maps.Clone(env)
	env["QUORUM_DEMO_PROXY"] = apispec.Factory(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join("cmd", "quorumctl", "demo.sh")}, args...)...)
	cmd.Dir = root
	// On timeout, SIGTERM to the script's whole process group ends the
	// command it waits on, and its trap then stops what it started; a
	// SIGKILL to the group after WaitDelay is the last resort.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, override := env[k]; !override {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		if v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("demo.sh ran %s", time.Since(start).Round(time.Millisecond))
	if ctx.Err() != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		t.Fatalf("demo.sh: %v\n%s", err, out.String())
	}
	return out.String()
}

// checkDemoOutput checks the result lines: groups triples of pubkey,
// message and signature lines (import, then keygen; or the lifecycle's
// signatures, any number when groups is 0), each signature verifying under
// its pubkey; and that every
// process the demo started is gone and its work dir removed. It returns
// the pubkeys in order.
func checkDemoOutput(t *testing.T, out string, groups int) []string {
	t.Helper()
	one := func(re *regexp.Regexp, what string) string {
		m := re.FindAllStringSubmatch(out, -1)
		if len(m) != 1 {
			t.Fatalf("%d %q lines, want exactly 1:\n%s", len(m), what, out)
		}
		return m[0][1]
	}
	all := func(re *regexp.Regexp, what string) []string {
		m := re.FindAllStringSubmatch(out, -1)
		if len(m) != groups && (groups > 0 || len(m) == 0) {
			t.Fatalf("%d %q lines, want %d:\n%s", len(m), what, groups, out)
		}
		var v []string
		for _, x := range m {
			v = append(v, x[1])
		}
		return v
	}
	pubs := all(demoPubkeyRE, "pubkey: <64 hex>")
	msgs := all(demoMessageRE, "message: <hex>")
	sigs := all(demoSignatureRE, "signature: <128 hex>")
	for i := range pubs {
		pub, _ := hex.DecodeString(pubs[i])
		msg, _ := hex.DecodeString(msgs[i])
		sig, _ := hex.DecodeString(sigs[i])
		if err := bip340.Verify(pub, msg, sig); err != nil {
			t.Errorf("the demo's signature %d does not verify: %v", i, err)
		}
		pk, err := schnorr.ParsePubKey(pub)
		if err != nil {
			t.Fatalf("pubkey: %v", err)
		}
		s, err := schnorr.ParseSignature(sig)
		if err != nil {
			t.Fatalf("signature: %v", err)
		}
		if len(msg) != 32 || !s.Verify(msg, pk) {
			t.Errorf("btcec/schnorr rejects the demo's signature %d (message of %d bytes)", i, len(msg))
		}
	}

	// The last line lists every process started (the lifecycle starts a
	// fourth daemon later).
	m := demoPidsRE.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		t.Fatalf("no started pids line:\n%s", out)
	}
	pids := strings.Fields(m[len(m)-1][1])
	if len(pids) < 4 {
		t.Errorf("%d processes started, want a relay and 3 daemons", len(pids))
	}
	for _, p := range pids {
		pid, err := strconv.Atoi(p)
		if err != nil {
			t.Fatalf("pid %q", p)
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d the demo started is still running (kill -0: %v)", pid, err)
		}
	}
	work := one(demoWorkRE, "work dir")
	if _, err := os.Stat(work); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("work dir %s left behind (%v)", work, err)
	}
	return pubs
}

// TestDemoScript runs `make demo`'s script end to end: SoftHSM tokens, a
// relay, three real daemons, admin bootstrap, users, a 2-of-3 import and a
// 2-party signature.
func TestDemoScript(t *testing.T) {
	t.Run("embedded policy source", func(t *testing.T) {
		out := runDemo(t, map[string]string{"VAULT_ADDR": "", "VAULT_TOKEN": "", "QUORUM_DEMO_KEEP": ""})
		if !strings.Contains(out, "==> policy source: the embedded JSON file source") {
			t.Errorf("the demo does not say which policy source it uses:\n%s", out)
		}
		pubs := checkDemoOutput(t, out, 2)
		if pubs[0] == pubs[1] {
			t.Error("the generated key is the imported one")
		}
		if !strings.Contains(out, "==> keygen: a fresh key 2-of-3 with ChillDKG") {
			t.Errorf("the demo does not say it runs a keygen:\n%s", out)
		}
	})

	// With VAULT_ADDR set the daemons and quorumctl use Vault; here the
	// Vault is policy/vaulttest (Vault's KV v2 and token API in-process).
	t.Run("vault policy source", func(t *testing.T) {
		srv, err := vaulttest.New()
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		out := runDemo(t, map[string]string{"VAULT_ADDR": srv.Addr(), "VAULT_TOKEN": srv.RootToken(), "QUORUM_DEMO_KEEP": ""})
		if !strings.Contains(out, "==> policy source: Vault at "+srv.Addr()) {
			t.Errorf("the demo does not say it uses Vault:\n%s", out)
		}
		checkDemoOutput(t, out, 2)
		m := demoPrefixRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no Vault prefix in the output:\n%s", out)
		}
		// Each daemon's users live in Vault under its own prefix.
		for i := range 3 {
			vc := policy.DefaultVaultConfig()
			vc.Address, vc.Prefix = srv.Addr(), m[1]+"-d"+strconv.Itoa(i)
			vc.Auth = policy.VaultAuthConfig{Method: "token", Token: srv.RootToken()}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			src, err := policy.OpenVault(ctx, vc)
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			users, err := src.ListUsers(ctx)
			src.Close()
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, u := range users {
				names = append(names, u.Name)
			}
			if strings.Join(names, ",") != "admin,demo" {
				t.Errorf("daemon %d: users %v in Vault, want admin and demo", i, names)
			}
		}
	})
}
