package systemd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/hsm"
	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/policy/vaulttest"
)

const (
	quorumdUnit = "quorumd.service"
	// credDir is where systemd puts a system service's credentials (%d).
	credDir = "/run/credentials/" + quorumdUnit
)

// credentialFields maps each credential of quorumd.service to the
// configuration field that must read it.
var credentialFields = map[string]func(*daemon.Config) string{
	"hsm-pin":         func(c *daemon.Config) string { return c.HSM.PINFile },
	"vault-role-id":   func(c *daemon.Config) string { return c.Policy.Vault.RoleIDFile },
	"vault-secret-id": func(c *daemon.Config) string { return c.Policy.Vault.SecretIDFile },
}

// TestQuorumdUnitMatchesConfig loads configs/quorumd.prod.yaml with the
// unit's environment, as the daemon does under systemd, and checks that the
// two fit: every override names a real setting, every credential is read
// by the setting meant for it, the directories and the stop timeout agree.
func TestQuorumdUnitMatchesConfig(t *testing.T) {
	root := repoRoot(t)
	u := loadUnit(t, quorumdUnit)
	env, err := u.environment(specifiers(quorumdUnit, credDir, "/run"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, warnings, err := daemon.LoadConfig(filepath.Join(root, "configs", "quorumd.prod.yaml"), env)
	if err != nil {
		t.Fatalf("configs/quorumd.prod.yaml with the unit's environment: %v", err)
	}
	if len(warnings) > 0 {
		t.Errorf("the unit sets variables the daemon does not know: %q", warnings)
	}

	creds, err := u.credentials()
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, len(creds))
	for id, src := range creds {
		ids = append(ids, id)
		if !strings.HasPrefix(src, "/etc/credstore/") {
			t.Errorf("credential %s comes from %s, outside /etc/credstore (InaccessiblePaths= hides only that)", id, src)
		}
	}
	slices.Sort(ids)
	if want := []string{"hsm-pin", "vault-role-id", "vault-secret-id"}; !slices.Equal(ids, want) {
		t.Fatalf("credentials %q, want %q", ids, want)
	}
	for id, field := range credentialFields {
		if got := field(cfg); got != credDir+"/"+id {
			t.Errorf("credential %s: the configuration reads %q, want %s/%s", id, got, credDir, id)
		}
	}
	for _, kv := range env {
		if _, v, _ := strings.Cut(kv, "="); strings.HasPrefix(v, credDir+"/") {
			if _, ok := creds[strings.TrimPrefix(v, credDir+"/")]; !ok {
				t.Errorf("%s names a credential the unit does not load", kv)
			}
		}
	}
	if got := u.list("InaccessiblePaths"); !slices.Contains(got, "-/etc/credstore") {
		t.Errorf("InaccessiblePaths = %q: want -/etc/credstore", got)
	}

	if v, _ := lookup(env, "GOTRACEBACK"); v != "none" {
		t.Errorf("GOTRACEBACK=%q, want none: tracebacks print argument words, which may be secret", v)
	}
	if v, _ := u.last("Type"); v != "notify" {
		t.Errorf("Type=%s, want notify", v)
	}
	if v, _ := u.last("NotifyAccess"); v != "main" {
		t.Errorf("NotifyAccess=%s, want main", v)
	}
	stop, _ := u.last("TimeoutStopSec")
	stopAfter, err := seconds(stop)
	if err != nil {
		t.Fatal(err)
	}
	if stopAfter <= cfg.Server.ShutdownTimeout {
		t.Errorf("TimeoutStopSec=%s does not exceed server.shutdown_timeout %v: systemd would kill ceremonies the daemon still lets finish", stop, cfg.Server.ShutdownTimeout)
	}

	confDirs := u.list("ConfigurationDirectory")
	stateDirs := u.list("StateDirectory")
	inDir := func(path, base string, dirs []string) bool {
		return slices.ContainsFunc(dirs, func(d string) bool { return filepath.Dir(path) == filepath.Join(base, d) })
	}
	args, err := u.execStart()
	if err != nil {
		t.Fatal(err)
	}
	if len(args) != 3 || args[0] != "/usr/local/bin/quorumd" || args[1] != "-config" || !inDir(args[2], "/etc", confDirs) {
		t.Errorf("ExecStart=%q: want /usr/local/bin/quorumd -config <a file in the ConfigurationDirectory=>", args)
	}
	if !slices.ContainsFunc(stateDirs, func(d string) bool { return filepath.Join("/var/lib", d) == cfg.StateDir }) {
		t.Errorf("state_dir %s is not a StateDirectory= (%q)", cfg.StateDir, stateDirs)
	}
	if tmp, _ := lookup(env, "TMPDIR"); !slices.ContainsFunc(u.list("RuntimeDirectory"), func(d string) bool { return tmp == filepath.Join("/run", d) }) {
		t.Errorf("TMPDIR=%s is not the RuntimeDirectory=", tmp)
	}

	// SoftHSM: its configuration sits with the daemon's, its token store is
	// a state directory of its own, never inside the key store.
	conf, ok := lookup(env, "SOFTHSM2_CONF")
	if !ok || !inDir(conf, "/etc", confDirs) {
		t.Fatalf("SOFTHSM2_CONF=%s: want a file in the ConfigurationDirectory=", conf)
	}
	tokenDir := softhsmTokenDir(t, filepath.Join(root, "configs", "softhsm2.example.conf"))
	if !slices.ContainsFunc(stateDirs, func(d string) bool { return filepath.Join("/var/lib", d) == tokenDir }) {
		t.Errorf("SoftHSM tokendir %s is not a StateDirectory= (%q): the sandbox would make it read-only", tokenDir, stateDirs)
	}
	if rel, err := filepath.Rel(cfg.StateDir, tokenDir); err == nil && !strings.HasPrefix(rel, "..") {
		t.Errorf("SoftHSM tokendir %s lies in the key store %s: one copy would hold both blobs and wrapping key", tokenDir, cfg.StateDir)
	}
}

// softhsmTokenDir returns directories.tokendir of a softhsm2.conf.
func softhsmTokenDir(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == "directories.tokendir" {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("%s: no directories.tokendir", path)
	return ""
}

// TestQuorumdStartsUnderUnit starts the real daemon with the unit's command
// line, environment and credentials (as files in a stand-in for
// /run/credentials/quorumd.service) and configs/quorumd.prod.yaml. Only
// site-specific values are overridden: addresses, TLS files, the state
// directory and the SoftHSM store. Vault is policy/vaulttest set up with the
// AppRole steps of docs/install.md and configs/vault-policy.hcl; the HSM is
// a SoftHSM token whose wrapping key was provisioned out of band. The
// daemon must send READY=1, answer /readyz over TLS only to a client with
// a certificate, keep the secrets out of its logs, and on SIGTERM send
// STOPPING=1 and exit 0 within TimeoutStopSec=. It also settles whether
// WatchdogSec= may be set: the daemon gets WATCHDOG_USEC and must ping iff
// the unit has a watchdog.
func TestQuorumdStartsUnderUnit(t *testing.T) {
	root := repoRoot(t)
	u := loadUnit(t, quorumdUnit)
	bin := binary(t, "quorumd")
	dir := t.TempDir()
	prod := filepath.Join(root, "configs", "quorumd.prod.yaml")
	cfg, _, err := daemon.LoadConfig(prod, nil)
	if err != nil {
		t.Fatal(err)
	}

	// The HSM: a token labelled as in the production configuration, with
	// the wrapping key created beforehand (create_key stays false).
	tok := testkit.SoftHSM(t, cfg.HSM.TokenLabel)
	h, err := hsm.Open(hsm.Config{ModulePath: cfg.HSM.Module, TokenLabel: tok.Label, PIN: tok.PIN,
		KeyLabel: cfg.HSM.KeyLabel, CreateKey: true, MaxSessions: 2})
	if err != nil {
		t.Fatalf("provisioning the wrapping key: %v", err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}

	// Vault: AppRole role bound to the shipped least-privilege policy.
	vs, err := vaulttest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vs.Close)
	roleID, secretID := approleCredentials(t, vs, filepath.Join(root, "configs", "vault-policy.hcl"), cfg.Policy.Vault.AppRoleMount)

	// The credentials directory systemd would fill from /etc/credstore.
	creds := filepath.Join(dir, "credentials", quorumdUnit)
	if err := os.MkdirAll(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{"hsm-pin": tok.PIN, "vault-role-id": roleID, "vault-secret-id": secretID}
	loaded, err := u.credentials()
	if err != nil {
		t.Fatal(err)
	}
	for id := range loaded {
		v, ok := secrets[id]
		if !ok {
			t.Fatalf("the unit loads credential %s, which this test cannot provide", id)
		}
		if err := os.WriteFile(filepath.Join(creds, id), []byte(v+"\n"), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(creds, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(creds, 0o700) }) // let t.TempDir remove it as non-root
	runtimeRoot := filepath.Join(dir, "run")
	for _, d := range u.list("RuntimeDirectory") {
		if err := os.MkdirAll(filepath.Join(runtimeRoot, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	unitEnv, err := u.environment(specifiers(quorumdUnit, creds, runtimeRoot))
	if err != nil {
		t.Fatal(err)
	}

	pki := testkit.NewRelayPKI(t)
	notify := newNotifySocket(t)
	watchdog := 2 * time.Second
	wd, hasWatchdog := u.last("WatchdogSec")
	if hasWatchdog {
		if watchdog, err = seconds(wd); err != nil {
			t.Fatal(err)
		}
	}
	env := withOverrides(t, append(baseEnv(), unitEnv...), map[string]string{
		"QUORUMD_SERVER_LISTEN":             "127.0.0.1:0",
		"QUORUMD_SERVER_TLS_CERT_FILE":      pki.ServerCertFile,
		"QUORUMD_SERVER_TLS_KEY_FILE":       pki.ServerKeyFile,
		"QUORUMD_SERVER_TLS_CLIENT_CA_FILE": pki.CAFile,
		"QUORUMD_STATE_DIR":                 filepath.Join(dir, "state"),
		"QUORUMD_POLICY_VAULT_ADDRESS":      vs.Addr(),
		"QUORUMD_POLICY_VAULT_CA_CERT_FILE": "", // vaulttest speaks plain HTTP
		"QUORUMD_RELAY_TLS_CA_FILE":         pki.CAFile,
		"QUORUMD_RELAY_TLS_CERT_FILE":       pki.ClientCertFile,
		"QUORUMD_RELAY_TLS_KEY_FILE":        pki.ClientKeyFile,
		"SOFTHSM2_CONF":                     tok.ConfPath,
		"NOTIFY_SOCKET":                     notify.path,
		"WATCHDOG_USEC":                     strconv.FormatInt(watchdog.Microseconds(), 10),
	}, "QUORUMD_HSM_PIN_FILE", "QUORUMD_POLICY_VAULT_ROLE_ID_FILE", "QUORUMD_POLICY_VAULT_SECRET_ID_FILE", "TMPDIR", "GOTRACEBACK")

	args, err := u.execStart()
	if err != nil {
		t.Fatal(err)
	}
	args = slices.Clone(args[1:])
	for i := range args {
		if i > 0 && args[i-1] == "-config" {
			args[i] = prod
		}
	}
	svc := startService(t, bin, args, env)
	svc.awaitReady(t, notify, 60*time.Second)
	addr := svc.waitLog(t, "quorumd serving", "addr", 5*time.Second)

	withCert := pki.ClientTLS(true)
	if code, err := httpsGet("https://"+addr+"/readyz", withCert); err != nil || code != 200 {
		t.Errorf("/readyz with a client certificate: %d, %v\n%s", code, err, svc.logs)
	}
	if code, err := httpsGet("https://"+addr+"/healthz", pki.ClientTLS(false)); err == nil {
		t.Errorf("/healthz without a client certificate answered %d; client_auth is require", code)
	}

	_, pinged := notify.await("WATCHDOG=1", watchdog)
	switch {
	case hasWatchdog && !pinged:
		t.Errorf("WatchdogSec=%s but no WATCHDOG=1 within it: systemd would kill the daemon", wd)
	case !hasWatchdog && pinged:
		t.Error("the daemon now sends WATCHDOG=1: set WatchdogSec= in systemd/quorumd.service")
	}

	stop, _ := u.last("TimeoutStopSec")
	stopAfter, err := seconds(stop)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.stop(t, stopAfter); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, svc.logs)
	}
	if _, ok := notify.await("STOPPING=1", time.Second); !ok {
		t.Error("no STOPPING=1 on SIGTERM")
	}
	for name, v := range secrets {
		if strings.Contains(svc.logs.String(), v) {
			t.Errorf("the %s credential appears in the logs", name)
		}
	}
}

// approleCredentials follows docs/install.md's Vault steps on a test
// server: the policy from hcl, an AppRole mount, a role bound to the
// policy alone, its role_id and a fresh secret_id.
func approleCredentials(t *testing.T, vs *vaulttest.Server, hcl, mount string) (roleID, secretID string) {
	t.Helper()
	c, err := vault.NewClient(&vault.Config{Address: vs.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(vs.RootToken())
	policy, err := os.ReadFile(hcl)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	write := func(path string, data map[string]any) *vault.Secret {
		s, err := c.Logical().WriteWithContext(ctx, path, data)
		if err != nil {
			t.Fatalf("vault write %s: %v", path, err)
		}
		return s
	}
	write("sys/policies/acl/quorumd", map[string]any{"policy": string(policy)})
	write("sys/auth/"+mount, map[string]any{"type": "approle"})
	write("auth/"+mount+"/role/quorumd", map[string]any{
		"token_policies": []string{"quorumd"}, "token_no_default_policy": true,
		"token_ttl": "1h", "token_max_ttl": "24h", "secret_id_num_uses": 0, "secret_id_ttl": 0,
	})
	r, err := c.Logical().ReadWithContext(ctx, "auth/"+mount+"/role/quorumd/role-id")
	if err != nil || r == nil {
		t.Fatalf("vault read role-id: %v", err)
	}
	s := write("auth/"+mount+"/role/quorumd/secret-id", nil)
	roleID, _ = r.Data["role_id"].(string)
	secretID, _ = s.Data["secret_id"].(string)
	if roleID == "" || secretID == "" {
		t.Fatal(fmt.Sprintf("AppRole answered role_id %t, secret_id %t", roleID != "", secretID != ""))
	}
	return roleID, secretID
}
