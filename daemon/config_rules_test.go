package daemon

import (
	"strings"
	"testing"
	"time"
)

// TestRuleServerTimeout: the default, the environment override and the
// bounds of policy.rule_server_timeout.
func TestRuleServerTimeout(t *testing.T) {
	p := writeConfig(t, minimalConfig)
	cfg, _, err := LoadConfig(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Policy.RuleServerTimeout != 5*time.Second {
		t.Fatalf("default %s", cfg.Policy.RuleServerTimeout)
	}
	for _, c := range []struct {
		v  string
		ok bool
	}{{"2s", true}, {"1m", true}, {"0s", false}, {"-1s", false}, {"61s", false}} {
		cfg, _, err := LoadConfig(p, []string{"QUORUMD_POLICY_RULE_SERVER_TIMEOUT=" + c.v})
		switch {
		case c.ok && err != nil:
			t.Errorf("%s: %v", c.v, err)
		case c.ok && cfg.Policy.RuleServerTimeout.String() != (func() string { d, _ := time.ParseDuration(c.v); return d.String() })():
			t.Errorf("%s: got %s", c.v, cfg.Policy.RuleServerTimeout)
		case !c.ok && (err == nil || !strings.Contains(err.Error(), "policy.rule_server_timeout")):
			t.Errorf("%s: accepted or unclear error: %v", c.v, err)
		}
	}
}
