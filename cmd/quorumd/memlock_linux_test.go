package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quorumd/quorumd/daemon/secmem"
	"github.com/quorumd/quorumd/internal/apispec"
	"github.com/quorumd/quorumd/internal/proclog"
	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/policy"
)

// capIPCLock is CAP_IPC_LOCK's bit in /proc/<pid>/status CapEff.
const capIPCLock = 14

// buildQuorumd builds this command into a temporary directory.
func buildQuorumd(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build quorumd: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "quorumd")
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// daemonProcess is a quorumd running as a real process; its JSON log lines
// are kept and "quorumd serving" yields its address.
type daemonProcess struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs strings.Builder
	addr <-chan string
	done chan error
}

// startUnprivileged starts quorumd through setpriv without CAP_IPC_LOCK, so
// RLIMIT_MEMLOCK binds it as it binds a systemd service
// (CapabilityBoundingSet= is empty in quorumd.service).
func startUnprivileged(t *testing.T, setpriv, bin, cfgPath string, env []string) *daemonProcess {
	t.Helper()
	return startProcess(t, env, setpriv, "--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock", bin, "-config", cfgPath)
}

// startProcess starts argv as a daemonProcess, killed at the end of the test
// if still running.
func startProcess(t *testing.T, env []string, argv ...string) *daemonProcess {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &daemonProcess{cmd: cmd, done: make(chan error, 1)}
	var read <-chan struct{}
	p.addr, read = proclog.Follow(stderr, "quorumd serving", func(line []byte) {
		p.mu.Lock()
		p.logs.Write(line)
		p.logs.WriteByte('\n')
		p.mu.Unlock()
	})
	go func() {
		<-read
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *daemonProcess) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// procStatus returns the named fields of /proc/<pid>/status.
func procStatus(t *testing.T, pid int, names ...string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		for _, n := range names {
			if ok && k == n {
				out[n] = strings.TrimSpace(v)
			}
		}
	}
	return out
}

func vmLck(t *testing.T, pid int) int {
	t.Helper()
	v := strings.TrimSuffix(procStatus(t, pid, "VmLck")["VmLck"], " kB")
	kb, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		t.Fatalf("VmLck %q: %v", v, err)
	}
	return kb
}

// memlockLimit reads the soft "Max locked memory" of /proc/<pid>/limits.
func memlockLimit(t *testing.T, pid int) (uint64, bool) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max locked memory"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 && f[0] == "unlimited" {
				return 0, false
			}
			n, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				t.Fatalf("limits line %q: %v", line, err)
			}
			return n, true
		}
	}
	t.Fatal("no Max locked memory in limits")
	return 0, false
}

// TestMemlockLimitUnprivileged runs the real binary without CAP_IPC_LOCK
// under the host's RLIMIT_MEMLOCK (8 MiB here, LimitMEMLOCK=8M in the unit):
//   - with a small arena and a small concurrency limit it keeps answering
//     while concurrent key creations (which take locked slots, and wait
//     for them) run at and beyond the limit, with VmLck > 0 and within
//     the limit;
//   - with an arena larger than the limit it refuses to start and says why.
func TestMemlockLimitUnprivileged(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed: cannot run quorumd without CAP_IPC_LOCK")
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(unix.RLIMIT_MEMLOCK, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur == ^uint64(0) || rl.Cur/secmem.SlotSize+1024 > 1<<20 {
		t.Skipf("RLIMIT_MEMLOCK is %d: the test needs a finite limit below 64 MiB", rl.Cur)
	}
	bin := buildQuorumd(t)
	tok := testkit.SoftHSM(t, "memlock")
	dir := t.TempDir()
	pinFile, err := tok.WritePINFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	policyFile := filepath.Join(dir, "policy.json")
	src, err := policy.OpenFile(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := src.PutPolicy(ctx, policy.Policy{Name: "default", AllowedOperations: []policy.Operation{policy.OpCreateKey},
		MaxN: 3, MinThreshold: 1, MaxThreshold: 3, KeyQuota: 10000}); err != nil {
		t.Fatal(err)
	}
	adminKey, _, err := policy.BootstrapAdmin(ctx, src, "admin")
	if err != nil {
		t.Fatal(err)
	}
	src.Close()
	env := []string{"PATH=/usr/bin:/bin", "SOFTHSM2_CONF=" + tok.ConfPath}
	config := func(name string, slots, concurrency int) string {
		cfg := fmt.Sprintf(`server:
  listen: 127.0.0.1:0
  max_concurrent_requests: %d
  max_connections: 256
  locked_secret_slots: %d
  shutdown_timeout: 20s
state_dir: %s
hsm:
  module: %s
  token_label: %s
  pin_file: %s
  key_label: quorumd-wrap
  create_key: true
policy:
  source: embedded
  embedded:
    file: %s
relay:
  default_address: 127.0.0.1:1
ceremony:
  timeout: 10s
`, concurrency, slots, filepath.Join(dir, "state-"+name), tok.Module, tok.Label, pinFile, policyFile)
		p := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("at the concurrency limit", func(t *testing.T) {
		const slots, limit = 4, 8
		d := startUnprivileged(t, setpriv, bin, config("small", slots, limit), env)
		var base string
		select {
		case a := <-d.addr:
			base = apispec.Proxy(t, "http://"+a) // every answer checked against docs/openapi.yaml
		case err := <-d.done:
			t.Fatalf("quorumd exited: %v\n%s", err, d)
		case <-time.After(60 * time.Second):
			t.Fatalf("quorumd did not start\n%s", d)
		}
		pid := d.cmd.Process.Pid
		caps := procStatus(t, pid, "CapEff")["CapEff"]
		if c, err := strconv.ParseUint(caps, 16, 64); err != nil || c&(1<<capIPCLock) != 0 {
			t.Fatalf("setpriv did not drop CAP_IPC_LOCK from quorumd (CapEff %s): RLIMIT_MEMLOCK would not apply", caps)
		}
		memlock, finite := memlockLimit(t, pid)
		if !finite {
			t.Fatal("quorumd runs with an unlimited RLIMIT_MEMLOCK")
		}

		hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		get := func(path, key string) (int, map[string]any, error) {
			req, _ := http.NewRequest("GET", base+path, nil)
			if key != "" {
				req.Header.Set("Authorization", key)
			}
			res, err := hc.Do(req)
			if err != nil {
				return 0, nil, err
			}
			defer res.Body.Close()
			raw, _ := io.ReadAll(res.Body)
			out := map[string]any{}
			if err := json.Unmarshal(raw, &out); err != nil && res.StatusCode != 200 {
				return res.StatusCode, nil, fmt.Errorf("non-JSON answer %q", raw)
			}
			return res.StatusCode, out, nil
		}
		st, u, err := get("/admin/create-user?name=alice", adminKey)
		if err != nil || st != 200 {
			t.Fatalf("create-user: %d %v %v", st, u, err)
		}
		userKey := u["api_key"].(string)

		// Waves of 3×limit concurrent key creations (each takes a locked
		// slot; only 4 exist, so admitted requests queue for them) with
		// health checks alongside.
		const waves, perWave = 4, 3 * limit
		var mu sync.Mutex
		created := map[string]bool{}
		busy, maxLck := 0, 0
		for range waves {
			var wg sync.WaitGroup
			for i := range perWave + 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if i >= perWave {
						st, _, err := get("/healthz", "")
						if err != nil || st != 200 {
							t.Errorf("/healthz under load: %d %v", st, err)
						}
						return
					}
					st, out, err := get("/bip340/create", userKey)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err != nil:
						t.Errorf("/bip340/create: %v", err)
					case st == 200:
						id, _ := out["key_id"].(string)
						if id == "" || created[id] {
							t.Errorf("bad or repeated key_id %q", id)
						}
						created[id] = true
					case st == 503 && out["err_type"] == "internal_problem":
						busy++
					default:
						t.Errorf("/bip340/create under load: %d %v", st, out)
					}
				}()
			}
			// VmLck while the wave runs.
			time.Sleep(5 * time.Millisecond)
			if kb := vmLck(t, pid); kb > maxLck {
				maxLck = kb
			}
			wg.Wait()
		}
		after := vmLck(t, pid)
		if after > maxLck {
			maxLck = after
		}
		t.Logf("RLIMIT_MEMLOCK %d bytes; arena %d slots = %d bytes; VmLck max %d kB, after %d kB; %d keys created, %d answered 503 busy",
			memlock, slots, slots*secmem.SlotSize, maxLck, after, len(created), busy)
		if len(created) < waves {
			t.Errorf("only %d creations succeeded in %d waves", len(created), waves)
		}
		if after < 1 || after*1024 < slots*secmem.SlotSize || uint64(maxLck)*1024 > memlock {
			t.Errorf("VmLck %d kB (max %d kB): want > 0, at least the arena (%d bytes) and at most RLIMIT_MEMLOCK %d bytes",
				after, maxLck, slots*secmem.SlotSize, memlock)
		}
		if st, _, err := get("/bip340/create", userKey); err != nil || st != 200 {
			t.Errorf("create after the load: %d %v", st, err)
		}
		if !strings.Contains(d.String(), `"msg":"secrets locked in memory"`) {
			t.Errorf("no 'secrets locked in memory' log line\n%s", d)
		}
		if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-d.done:
			if err != nil {
				t.Errorf("exit after SIGTERM: %v\n%s", err, d)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("quorumd did not stop\n%s", d)
		}
	})

	t.Run("arena above the limit", func(t *testing.T) {
		slots := int(rl.Cur)/secmem.SlotSize + 1024 // limit + 64 KiB
		d := startUnprivileged(t, setpriv, bin, config("big", slots, 8), env)
		select {
		case err := <-d.done:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitFailure {
				t.Fatalf("exit %v, want status %d\n%s", err, exitFailure, d)
			}
		case a := <-d.addr:
			t.Fatalf("quorumd served on %s with a %d-byte arena over RLIMIT_MEMLOCK %d", a, slots*secmem.SlotSize, rl.Cur)
		case <-time.After(60 * time.Second):
			t.Fatalf("quorumd neither started nor failed\n%s", d)
		}
		want := fmt.Sprintf("memlock limit too small: need %d bytes, RLIMIT_MEMLOCK is %d bytes — raise LimitMEMLOCK=", slots*secmem.SlotSize, rl.Cur)
		if !strings.Contains(d.String(), want) || !strings.Contains(d.String(), "lower server.locked_secret_slots") {
			t.Fatalf("the refusal does not say %q:\n%s", want, d)
		}
		t.Logf("refusal: %s", strings.TrimSpace(d.String()))
	})
}
