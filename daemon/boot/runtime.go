package boot

import (
	"log/slog"
	"runtime/debug"

	"github.com/quorumd/quorumd/daemon"
)

// applyRuntime sets the collector from the runtime section (process-wide:
// daemons sharing a test process share it). Zero values leave Go's own
// settings, including $GOGC and $GOMEMLIMIT, alone.
func applyRuntime(c daemon.RuntimeConfig, log *slog.Logger) {
	if c.GCPercent != 0 {
		debug.SetGCPercent(c.GCPercent)
	}
	if c.MemoryLimitMiB != 0 {
		debug.SetMemoryLimit(int64(c.MemoryLimitMiB) << 20)
	}
	if c.GCPercent != 0 || c.MemoryLimitMiB != 0 {
		log.Info("go runtime", "gc_percent", c.GCPercent, "memory_limit_mib", c.MemoryLimitMiB)
	}
}
