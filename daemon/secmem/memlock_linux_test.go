package secmem_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/quorumd/quorumd/daemon/secmem"
)

const helperEnv = "SECMEM_TEST_MEMLOCK_HELPER"

// TestMemlockLimit runs the helper below without CAP_IPC_LOCK (setpriv), so
// RLIMIT_MEMLOCK applies as to an unprivileged service.
func TestMemlockLimit(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		t.Skip("helper process")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed: cannot drop CAP_IPC_LOCK")
	}
	cmd := exec.Command(setpriv, "--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock",
		os.Args[0], "-test.run=^TestMemlockHelper$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if bytes.Contains(out, []byte("--- SKIP")) {
		t.Skipf("helper skipped:\n%s", out)
	}
	if !bytes.Contains(out, []byte("--- PASS: TestMemlockHelper")) {
		t.Fatalf("helper did not run:\n%s", out)
	}
	t.Logf("%s", out)
}

// TestMemlockHelper: an arena above RLIMIT_MEMLOCK fails with a *LockError
// naming the limit and ENOMEM; one inside it works.
func TestMemlockHelper(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("run by TestMemlockLimit")
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			if caps&(1<<14) != 0 {
				t.Fatal("setpriv did not drop CAP_IPC_LOCK: RLIMIT_MEMLOCK would not apply")
			}
		}
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(unix.RLIMIT_MEMLOCK, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur == ^uint64(0) || rl.Cur > 1<<30 {
		t.Skipf("RLIMIT_MEMLOCK is %d: too large to exceed in a test", rl.Cur)
	}
	over := int(rl.Cur)/secmem.SlotSize + os.Getpagesize()
	_, err = secmem.New(over)
	var le *secmem.LockError
	if !errors.As(err, &le) || le.Limit != rl.Cur || !errors.Is(err, syscall.ENOMEM) || le.Need <= rl.Cur {
		t.Fatalf("New(%d) above RLIMIT_MEMLOCK %d: %v", over, rl.Cur, err)
	}
	fmt.Println("over the limit:", err)
	a, err := secmem.New(64)
	if err != nil {
		t.Fatalf("a 4 KiB arena within RLIMIT_MEMLOCK %d: %v", rl.Cur, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}
