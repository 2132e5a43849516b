package boot

import (
	"io"
	"log/slog"
	"runtime/debug"
	"testing"

	"github.com/quorumd/quorumd/daemon"
)

func TestApplyRuntime(t *testing.T) {
	gc, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(gc); debug.SetMemoryLimit(limit) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	applyRuntime(daemon.RuntimeConfig{}, log)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("zero config changed gc percent to %d", got)
	}
	applyRuntime(daemon.RuntimeConfig{GCPercent: 300, MemoryLimitMiB: 512}, log)
	if got := debug.SetGCPercent(100); got != 300 {
		t.Fatalf("gc percent %d, want 300", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 512<<20 {
		t.Fatalf("memory limit %d, want %d", got, 512<<20)
	}
}
