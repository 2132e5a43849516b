package daemon

import (
	"strings"
	"testing"
)

// TestFairShareConfig: derived defaults of the budgets and the checks on
// explicit values, through the environment as an operator would set them.
func TestFairShareConfig(t *testing.T) {
	p := writeConfig(t, minimalConfig)
	for _, c := range []struct {
		env                               []string
		requests, ceremonies, user, userC int
		err                               string
	}{
		{nil, 256, 128, 128, 64, ""},
		{[]string{"QUORUMD_SERVER_LOCKED_SECRET_SLOTS=40"}, 256, 20, 128, 10, ""},
		{[]string{"QUORUMD_SERVER_LOCKED_SECRET_SLOTS=0"}, 256, 128, 128, 64, ""},
		{[]string{"QUORUMD_SERVER_MAX_CONCURRENT_REQUESTS=1"}, 1, 128, 1, 64, ""},
		{[]string{"QUORUMD_SERVER_MAX_CONCURRENT_CEREMONIES=10", "QUORUMD_SERVER_USER_MAX_CEREMONIES=3", "QUORUMD_SERVER_USER_MAX_REQUESTS=7"}, 256, 10, 7, 3, ""},
		{[]string{"QUORUMD_SERVER_MAX_CONCURRENT_CEREMONIES=300"}, 0, 0, 0, 0, "locked secret slots"},
		{[]string{"QUORUMD_SERVER_USER_MAX_CEREMONIES=200"}, 0, 0, 0, 0, "must not exceed"},
		{[]string{"QUORUMD_SERVER_ADMIN_RESERVED_REQUESTS=-1"}, 0, 0, 0, 0, "must not be negative"},
		{[]string{"QUORUMD_LIMITS_USER_ROOMS=0"}, 0, 0, 0, 0, "limits: user_rooms"},
		{[]string{"QUORUMD_LIMITS_ROOM_WINDOW=0s"}, 0, 0, 0, 0, "limits: user_rooms"},
	} {
		cfg, _, err := LoadConfig(p, c.env)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v: want an error about %q, got %v", c.env, c.err, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", c.env, err)
		}
		s := cfg.Server
		if s.MaxConcurrentRequests != c.requests || s.Ceremonies() != c.ceremonies || s.UserRequests() != c.user || s.UserCeremonies() != c.userC {
			t.Errorf("%v: budgets %d/%d, user %d/%d", c.env, s.MaxConcurrentRequests, s.Ceremonies(), s.UserRequests(), s.UserCeremonies())
		}
	}
}
