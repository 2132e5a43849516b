package boot

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestLockSecrets: 0 disables locking with a warning; otherwise the arena
// is locked and logged.
func TestLockSecrets(t *testing.T) {
	cases := []struct {
		slots      int
		wantArena  bool
		wantLevel  string
		wantInLogs string
	}{
		{0, false, "WARN", "NOT locked in memory"},
		{2, true, "INFO", "secrets locked in memory"},
		{512, true, "INFO", `"locked_bytes":32768`},
	}
	for _, c := range cases {
		var logs bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&logs, nil))
		a, err := lockSecrets(c.slots, log)
		if err != nil {
			t.Fatalf("%d slots: %v", c.slots, err)
		}
		if (a != nil) != c.wantArena {
			t.Fatalf("%d slots: arena %v", c.slots, a)
		}
		if a != nil {
			if a.Slots() != c.slots {
				t.Errorf("arena of %d slots, want %d", a.Slots(), c.slots)
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if out := logs.String(); !strings.Contains(out, `"level":"`+c.wantLevel+`"`) || !strings.Contains(out, c.wantInLogs) {
			t.Errorf("%d slots: logs %q, want level %s with %q", c.slots, out, c.wantLevel, c.wantInLogs)
		}
	}
}
