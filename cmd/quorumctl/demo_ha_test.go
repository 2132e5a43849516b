package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/apispec"
	"github.com/quorumd/quorumd/internal/testkit"
)

var demoPGDirRE = regexp.MustCompile(`(?m)^==> PostgreSQL \(.*\): throwaway cluster in (\S+), `)

// TestDemoHAScript runs `demo.sh ha` end to end: a real PostgreSQL cluster,
// nats-server, two quorum-relay processes over JetStream and two quorumd
// replicas per party; a replica and a relay are SIGKILLed around the import,
// another replica and the other relay around the signature, and the
// results must still come out, verify, and leave no process or directory behind.
func TestDemoHAScript(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 3 parties × 2 replicas, 2 relays, nats-server and PostgreSQL (~30s)")
	}
	if _, err := testkit.PostgresBinDir(); err != nil {
		testkit.SkipNoPostgres(t, err)
	}
	if _, err := exec.LookPath("nats-server"); err != nil {
		t.Fatalf("nats-server not installed (run .ci/deps): %v", err)
	}
	root := repoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join("cmd", "quorumctl", "demo.sh"), "ha")
	cmd.Dir = root
	// As runDemo: on timeout, SIGTERM to the script's group lets its trap
	// stop what it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 60 * time.Second
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "QUORUM_DEMO_KEEP=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "QUORUM_DEMO_PROXY="+apispec.Factory(t)) // as runDemo

	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("demo.sh ha ran %s", time.Since(start).Round(time.Millisecond))
	if ctx.Err() != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		t.Fatalf("demo.sh ha: %v\n%s", err, out.String())
	}
	s := out.String()
	checkDemoOutput(t, s, 1)
	for _, want := range []string{
		"killed quorumd-1-1 (pid ", // before the import: party 1 served by replica 0 only
		"killed relay-0 (pid ",     // once the import's room exists: relay 1 carries it
		"party 1 replica 1: pid ",  // restarted, it serves the key replica 0 stored
		"killed quorumd-0-0 (pid ", // before the signature: party 0 via replica 1
		"killed relay-1 (pid ",     // once the signature's room exists: relay 0, restarted, carries it
		"daemon 0: signed", "daemon 1: signed",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if n := len(regexp.MustCompile(`(?m)^started pids: (\d+ ){9}\d+$`).FindString(s)); n == 0 {
		t.Errorf("want postgres, nats-server, 2 relays and 6 replicas started:\n%s", s)
	}
	// Whether relay 0 died before the importer finished depends on the
	// scheduler; the output says which.
	for _, m := range regexp.MustCompile(`the (\w+) was in flight when (relay \d) died: (\w+)`).FindAllStringSubmatch(s, -1) {
		t.Logf("%s in flight when %s was killed: %s", m[1], m[2], m[3])
	}
	m := demoPGDirRE.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no PostgreSQL directory in the output:\n%s", s)
	}
	if _, err := os.Stat(m[1]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("PostgreSQL directory %s left behind (%v)", m[1], err)
	}
}
