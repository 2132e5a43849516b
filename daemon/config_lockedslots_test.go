package daemon

import (
	"strconv"
	"strings"
	"testing"
)

// TestLockedSecretSlots: the default, the environment override and the
// bounds of server.locked_secret_slots (0 = off, else 2..MaxLockedSecretSlots).
func TestLockedSecretSlots(t *testing.T) {
	p := writeConfig(t, minimalConfig)
	cfg, _, err := LoadConfig(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.LockedSecretSlots != DefaultLockedSecretSlots {
		t.Fatalf("default %d, want %d", cfg.Server.LockedSecretSlots, DefaultLockedSecretSlots)
	}
	for _, c := range []struct {
		slots int
		ok    bool
	}{
		{0, true}, {2, true}, {512, true}, {MaxLockedSecretSlots, true},
		{-1, false}, {1, false}, {MaxLockedSecretSlots + 1, false},
	} {
		cfg, _, err := LoadConfig(p, []string{"QUORUMD_SERVER_LOCKED_SECRET_SLOTS=" + strconv.Itoa(c.slots)})
		switch {
		case c.ok && (err != nil || cfg.Server.LockedSecretSlots != c.slots):
			t.Errorf("%d: %v", c.slots, err)
		case !c.ok && (err == nil || !strings.Contains(err.Error(), "server.locked_secret_slots")):
			t.Errorf("%d: accepted or unclear error: %v", c.slots, err)
		}
	}
}
