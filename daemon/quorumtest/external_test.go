package quorumtest_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/testkit/paths"
)

// TestExternalModule is what a custodian does: a module of its own
// (example.com/custodian, in a temporary directory) requires quorumd,
// replaced by this checkout, and its test imports daemon/client and
// daemon/quorumtest, starts a quorum, imports a key, signs and verifies.
// Its program is docs/clients.md's Go example, extracted verbatim. The
// inner `go test` shares this process's build and module caches and runs
// offline when they hold everything (GOFLAGS=-mod=mod, GOTOOLCHAIN=local).
func TestExternalModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a test binary of another module; not in -short")
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		t.Skipf("no go command beside this test's GOROOT: %v", err)
	}
	root := paths.ModuleRoot(t)
	goMod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go \S+$`).Find(goMod)
	if goLine == nil {
		t.Fatal("quorumd's go.mod has no go directive")
	}
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", fmt.Sprintf("module example.com/custodian\n\n%s\n\nrequire github.com/quorumd/quorumd v0.0.0\n\nreplace github.com/quorumd/quorumd => %s\n", goLine, root))
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	write("go.sum", string(sum))
	write("main.go", docExample(t, "main.go"))
	inner, err := os.ReadFile(filepath.Join("testdata", "custodian", "main_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	write("main_test.go", string(inner))

	args := []string{"test", "-count=1", "-v", "-timeout", "20m"}
	if raceEnabled {
		args = append(args, "-race") // the packages this run just built, from the cache
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, append(args, ".")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local", "GOWORK=off")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	t.Logf("go %s in the custodian module: %v", strings.Join(args, " "), time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("go test in the custodian module: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "--- PASS: TestImportAndSign") {
		t.Fatalf("the custodian's test did not pass:\n%s", out.String())
	}
}
