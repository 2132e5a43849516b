package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/policy"
	"github.com/quorumd/quorumd/policy/vaulttest"
)

// writeDaemonConfig writes a daemon configuration whose policy section is
// policyYAML (indented under "policy:").
func writeDaemonConfig(t *testing.T, dir, policyYAML string) string {
	t.Helper()
	cfg := fmt.Sprintf(`state_dir: %s
hsm:
  module: /usr/lib/softhsm/libsofthsm2.so
  token_label: test
  pin_env: QUORUMD_HSM_PIN
  key_label: wrap
policy:
%s
relay:
  default_address: 127.0.0.1:7000
`, dir, policyYAML)
	path := filepath.Join(dir, "quorumd.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func outputField(out, name string) string {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, name+": "); ok {
			return v
		}
	}
	return ""
}

// assertAdminKey checks through a policy.Authorizer on src that key is an
// admin's API key.
func assertAdminKey(t *testing.T, src policy.Source, key, userID string) {
	t.Helper()
	a, err := policy.NewAuthorizer(src, policy.DefaultAuthorizerConfig())
	if err != nil {
		t.Fatal(err)
	}
	u, err := a.Authorize(context.Background(), key, policy.OpCreateUser, policy.Params{})
	if err != nil {
		t.Fatalf("the printed admin key is not accepted: %v", err)
	}
	if !u.Admin || u.ID != userID {
		t.Errorf("user %+v, want admin %s", u, userID)
	}
}

const testPolicyJSON = `{"allowed_operations": ["create_room", "create_key", "import_key_importer", "import_key_recipient", "sign", "get_key"],
 "max_n": 5, "min_threshold": 1, "max_threshold": 5, "allowed_relay_addresses": ["relay.example:7443"], "key_quota": 10}`

func TestBootstrapAdminEmbedded(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.json")
	cfg := writeDaemonConfig(t, dir, "  source: embedded\n  embedded:\n    file: "+file)

	code, stdout, stderr := runCLI(t, nil, "bootstrap-admin", "-config", cfg, "-name", "root")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	key, id := outputField(stdout, "api_key"), outputField(stdout, "user_id")
	if key == "" || id == "" || outputField(stdout, "policy source") != "file:"+file {
		t.Fatalf("output:\n%s", stdout)
	}
	src, err := policy.OpenFile(file)
	if err != nil {
		t.Fatal(err)
	}
	assertAdminKey(t, src, key, id)

	// Once only.
	code, _, stderr = runCLI(t, nil, "bootstrap-admin", "-config", cfg)
	if code != exitFailure || !strings.Contains(stderr, "already exists") {
		t.Errorf("second bootstrap: exit %d, stderr %q", code, stderr)
	}

	// The daemon's QUORUMD_* overrides apply: the file moves.
	other := filepath.Join(dir, "other.json")
	code, stdout, stderr = runCLI(t, map[string]string{"QUORUMD_POLICY_EMBEDDED_FILE": other, "QUORUMCTL_JSON": "true"},
		"bootstrap-admin", "-config", cfg)
	if code != exitOK {
		t.Fatalf("bootstrap with an override: exit %d: %s", code, stderr)
	}
	var res map[string]string
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("JSON output: %v\n%s", err, stdout)
	}
	if res["policy_source"] != "file:"+other || res["api_key"] == "" {
		t.Errorf("JSON result %v", res)
	}

	// Policies.
	pf := filepath.Join(dir, "p.json")
	os.WriteFile(pf, []byte(testPolicyJSON), 0o600)
	if code, _, stderr := runCLI(t, nil, "put-policy", "-config", cfg, "-name", "signer", "-file", pf); code != exitOK {
		t.Fatalf("put-policy: exit %d: %s", code, stderr)
	}
	p, err := src.GetPolicy(context.Background(), "signer")
	if err != nil {
		t.Fatal(err)
	}
	if p.MaxN != 5 || p.KeyQuota != 10 || !slices.Contains(p.AllowedOperations, policy.OpSign) ||
		!slices.Equal(p.AllowedRelayAddresses, []string{"relay.example:7443"}) {
		t.Errorf("stored policy %+v", p)
	}

	bad := []struct{ name, body string }{
		{"unknown field", `{"allowed_operations": [], "max_nn": 3}`},
		{"unknown operation", `{"allowed_operations": ["launch"], "max_n": 3}`},
		{"admin operation", `{"allowed_operations": ["create_user"]}`},
		{"min above max", `{"allowed_operations": [], "min_threshold": 3, "max_threshold": 2}`},
		{"not JSON", `allowed_operations: []`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(pf, []byte(tc.body), 0o600)
			if code, _, stderr := runCLI(t, nil, "put-policy", "-config", cfg, "-name", "bad", "-file", pf); code != exitUsage {
				t.Errorf("exit %d, want %d: %s", code, exitUsage, stderr)
			}
		})
	}
	if code, _, _ := runCLI(t, nil, "bootstrap-admin", "-config", cfg, "-vault-token-file", pf); code != exitUsage {
		t.Errorf("-vault-token-file with the embedded source: exit %d, want %d", code, exitUsage)
	}
	if code, _, _ := runCLI(t, nil, "bootstrap-admin", "-config", filepath.Join(dir, "missing.yaml")); code != exitFailure {
		t.Errorf("missing config: exit %d, want %d", code, exitFailure)
	}
}

// TestBootstrapAdminVault runs bootstrap-admin and put-policy against
// policy/vaulttest, a server with Vault's KV v2 and token API.
func TestBootstrapAdminVault(t *testing.T) {
	srv, err := vaulttest.New()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(srv.RootToken()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeDaemonConfig(t, dir, fmt.Sprintf("  source: vault\n  vault:\n    address: %s\n    prefix: qctl-test\n    token_file: %s",
		srv.Addr(), tokenFile))
	code, stdout, stderr := runCLI(t, nil, "bootstrap-admin", "-config", cfg)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.HasPrefix(outputField(stdout, "policy source"), "vault ") {
		t.Errorf("policy source line in:\n%s", stdout)
	}
	pf := filepath.Join(dir, "p.json")
	os.WriteFile(pf, []byte(testPolicyJSON), 0o600)
	if code, _, stderr := runCLI(t, nil, "put-policy", "-config", cfg, "-name", "signer", "-file", pf, "-vault-token-file", tokenFile); code != exitOK {
		t.Fatalf("put-policy: exit %d: %s", code, stderr)
	}

	vc := policy.DefaultVaultConfig()
	vc.Address, vc.Prefix = srv.Addr(), "qctl-test"
	vc.Auth = policy.VaultAuthConfig{Method: "token", TokenFile: tokenFile}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src, err := policy.OpenVault(ctx, vc)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	assertAdminKey(t, src, outputField(stdout, "api_key"), outputField(stdout, "user_id"))
	if p, err := src.GetPolicy(ctx, "signer"); err != nil || p.KeyQuota != 10 {
		t.Errorf("policy in Vault: %+v, %v", p, err)
	}
	if code, _, _ := runCLI(t, nil, "bootstrap-admin", "-config", cfg); code != exitFailure {
		t.Errorf("second bootstrap: exit %d, want %d", code, exitFailure)
	}
}

func TestCreateUserAndRoom(t *testing.T) {
	q := newFakeQuorum(t, 1)
	d := q.daemons[0]
	code, stdout, stderr := runCLI(t, map[string]string{"QUORUMCTL_ADMIN_KEY": d.apiKey}, "create-user", "-daemon", d.srv.URL, "-name", "alice")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if outputField(stdout, "api_key") == "" || !daemon.ValidKeyID(outputField(stdout, "user_id")) {
		t.Errorf("output:\n%s", stdout)
	}
	code, _, stderr = runCLI(t, nil, "create-user", "-daemon", d.srv.URL, "-admin-key", "0000000000000000.wrong", "-name", "bob")
	if code != exitFailure || !strings.Contains(stderr, "401 access_denied") {
		t.Errorf("wrong admin key: exit %d, stderr %q", code, stderr)
	}
	if strings.Contains(stderr, "0000000000000000.wrong") {
		t.Error("the API key was echoed")
	}
	if code, _, _ := runCLI(t, nil, "create-user", "-daemon", d.srv.URL, "-name", "bob"); code != exitUsage {
		t.Errorf("no admin key: exit %d, want %d", code, exitUsage)
	}

	code, stdout, stderr = runCLI(t, map[string]string{"QUORUMCTL_KEY": d.apiKey}, "create-room", "-daemon", d.srv.URL, "-size", "3", "-json")
	if code != exitOK {
		t.Fatalf("create-room: exit %d: %s", code, stderr)
	}
	var room struct {
		RoomUUID string `json:"room_uuid"`
		Size     int    `json:"room_size"`
	}
	if err := json.Unmarshal([]byte(stdout), &room); err != nil || !daemon.ValidKeyID(room.RoomUUID) || room.Size != 3 {
		t.Errorf("create-room output %q (%v)", stdout, err)
	}
	if r := q.rooms[room.RoomUUID]; r == nil || r.size != 3 {
		t.Errorf("the daemon has no room %s of size 3", room.RoomUUID)
	}
}

func TestWait(t *testing.T) {
	q := newFakeQuorum(t, 2)
	if code, stdout, stderr := runCLI(t, nil, "wait", "-daemons", q.urls()); code != exitOK || strings.Count(stdout, ": ready") != 2 {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// A closed port never becomes ready: the wait ends at its timeout.
	dead := newFakeQuorum(t, 1)
	url := dead.daemons[0].srv.URL
	dead.daemons[0].srv.Close()
	start := time.Now()
	code, _, stderr := runCLI(t, nil, "wait", "-daemons", url, "-timeout", "500ms")
	if code != exitFailure || !strings.Contains(stderr, "not ready") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("wait took %s with a 500ms timeout", time.Since(start))
	}
}
