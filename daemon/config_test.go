package daemon

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "quorumd.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const minimalConfig = `
state_dir: /var/lib/quorumd
hsm:
  module: /usr/lib/softhsm/libsofthsm2.so
  pin_file: /run/credentials/quorumd.service/hsm-pin
policy:
  source: embedded
  embedded:
    file: /etc/quorumd/policy.yaml
relay:
  default_address: relay.internal:7000
`

func TestLoadConfigFileAndEnv(t *testing.T) {
	p := writeConfig(t, minimalConfig+`
server:
  listen: 0.0.0.0:9000
  read_timeout: 3s
`)
	cfg, warnings, err := LoadConfig(p, []string{
		"QUORUMD_SERVER_LISTEN=127.0.0.1:9100",
		"QUORUMD_SERVER_MAX_BODY_BYTES=32768",
		"QUORUMD_CEREMONY_TIMEOUT=90s",
		"QUORUMD_SERVER_SHUTDOWN_TIMEOUT=95s",
		"QUORUMD_HSM_CREATE_KEY=true",
		"QUORUMD_HSM_SLOT_NUMBER=3",
		"QUORUMD_HSM_READ_KEY_LABELS=old-1, old-2",
		"QUORUMD_SERVER_TLS_CLIENT_AUTH=none",
		"QUORUMD_TYPO=1",
		"PATH=/usr/bin",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Listen != "127.0.0.1:9100" || cfg.Server.MaxBodyBytes != 32768 || cfg.Ceremony.Timeout != 90*time.Second ||
		!cfg.HSM.CreateKey || cfg.HSM.SlotNumber == nil || *cfg.HSM.SlotNumber != 3 ||
		!slices.Equal(cfg.HSM.ReadKeyLabels, []string{"old-1", "old-2"}) || cfg.Server.ReadTimeout != 3*time.Second {
		t.Fatalf("effective config %+v", cfg)
	}
	if cfg.Server.WriteTimeout != DefaultConfig().Server.WriteTimeout {
		t.Fatal("defaults not kept")
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "QUORUMD_TYPO") {
		t.Fatalf("warnings %v", warnings)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	cases := []struct {
		name, file string
		env        []string
		want       string
	}{
		{"unknown key", minimalConfig + "server:\n  listen_addr: x\n", nil, "listen_addr"},
		{"bad duration", minimalConfig + "ceremony:\n  timeout: soon\n", nil, "soon"},
		{"bad env int", minimalConfig, []string{"QUORUMD_SERVER_MAX_BODY_BYTES=big"}, "QUORUMD_SERVER_MAX_BODY_BYTES"},
		{"bad env bool", minimalConfig, []string{"QUORUMD_HSM_CREATE_KEY=maybe"}, "QUORUMD_HSM_CREATE_KEY"},
		{"no module", strings.Replace(minimalConfig, "module: /usr/lib/softhsm/libsofthsm2.so", "module: ''", 1), nil, "hsm.module"},
		{"two PIN sources", minimalConfig, []string{"QUORUMD_HSM_PIN_ENV=PIN"}, "exactly one of pin_file and pin_env"},
		{"relative state dir", minimalConfig, []string{"QUORUMD_STATE_DIR=state"}, "state_dir"},
		{"body limit", minimalConfig, []string{"QUORUMD_SERVER_MAX_BODY_BYTES=10"}, "max_body_bytes"},
		{"max parties", minimalConfig, []string{"QUORUMD_LIMITS_MAX_PARTIES=1"}, "max_parties"},
		{"batch size zero", minimalConfig, []string{"QUORUMD_LIMITS_MAX_BATCH_SIZE=0"}, "max_batch_size"},
		{"batch size too big", minimalConfig, []string{"QUORUMD_LIMITS_MAX_BATCH_SIZE=1025"}, "max_batch_size"},
		{"tls half", minimalConfig, []string{"QUORUMD_SERVER_TLS_CERT_FILE=/c.pem"}, "cert_file and key_file"},
		{"client auth without CA", minimalConfig, []string{"QUORUMD_SERVER_TLS_CERT_FILE=/c.pem", "QUORUMD_SERVER_TLS_KEY_FILE=/k.pem", "QUORUMD_SERVER_TLS_CLIENT_AUTH=require"}, "client_ca_file"},
		{"client auth mode", minimalConfig, []string{"QUORUMD_SERVER_TLS_CLIENT_AUTH=maybe"}, "client_auth"},
		{"policy source", minimalConfig, []string{"QUORUMD_POLICY_SOURCE=ldap"}, "policy.source"},
		{"vault without auth", minimalConfig, []string{"QUORUMD_POLICY_SOURCE=vault", "QUORUMD_POLICY_VAULT_ADDRESS=https://v:8200"}, "token_file or role_id_file"},
		{"vault both auths", minimalConfig, []string{"QUORUMD_POLICY_SOURCE=vault", "QUORUMD_POLICY_VAULT_ADDRESS=https://v:8200", "QUORUMD_POLICY_VAULT_TOKEN_FILE=/t", "QUORUMD_POLICY_VAULT_ROLE_ID_FILE=/r", "QUORUMD_POLICY_VAULT_SECRET_ID_FILE=/s"}, "token_file or role_id_file"},
		{"vault half approle", minimalConfig, []string{"QUORUMD_POLICY_SOURCE=vault", "QUORUMD_POLICY_VAULT_ADDRESS=https://v:8200", "QUORUMD_POLICY_VAULT_ROLE_ID_FILE=/r"}, "both role_id_file and secret_id_file"},
		{"vault credentials in URL", minimalConfig, []string{"QUORUMD_POLICY_SOURCE=vault", "QUORUMD_POLICY_VAULT_ADDRESS=https://u:p@v:8200", "QUORUMD_POLICY_VAULT_TOKEN_FILE=/t"}, "credentials"},
		{"vault address", minimalConfig, []string{"QUORUMD_POLICY_SOURCE=vault", "QUORUMD_POLICY_VAULT_ADDRESS=v:8200", "QUORUMD_POLICY_VAULT_TOKEN_FILE=/t"}, "http(s) URL"},
		{"relay address", minimalConfig, []string{"QUORUMD_RELAY_DEFAULT_ADDRESS=relay"}, "relay.default_address"},
		{"relay address list", minimalConfig, []string{"QUORUMD_RELAY_DEFAULT_ADDRESS=relay-a:7000,relay"}, "relay.default_address"},
		{"shutdown shorter than ceremony", minimalConfig, []string{"QUORUMD_SERVER_SHUTDOWN_TIMEOUT=10s"}, "shutdown_timeout"},
		{"zero timeout", minimalConfig, []string{"QUORUMD_SERVER_READ_TIMEOUT=0s"}, "server.read_timeout"},
		{"log level", minimalConfig, []string{"QUORUMD_LOG_LEVEL=loud"}, "log.level"},
		{"gc percent", minimalConfig, []string{"QUORUMD_RUNTIME_GC_PERCENT=5"}, "runtime.gc_percent"},
		{"memory limit", minimalConfig, []string{"QUORUMD_RUNTIME_MEMORY_LIMIT_MIB=1"}, "runtime.memory_limit_mib"},
		{"missing file", "", nil, "no such file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "absent.yaml")
			if c.file != "" {
				p = writeConfig(t, c.file)
			}
			_, _, err := LoadConfig(p, c.env)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want it to mention %q", err, c.want)
			}
		})
	}
}

// TestExampleConfigs: the shipped examples are valid and round-trip
// through YAML unchanged.
func TestExampleConfigs(t *testing.T) {
	for _, name := range []string{"quorumd.dev.yaml", "quorumd.prod.yaml"} {
		t.Run(name, func(t *testing.T) {
			cfg, warnings, err := LoadConfig(filepath.Join(repoRoot(t), "configs", name), nil)
			if err != nil || len(warnings) > 0 {
				t.Fatalf("%v %v", err, warnings)
			}
			out, err := cfg.YAML()
			if err != nil {
				t.Fatal(err)
			}
			again := DefaultConfig()
			if err := again.decodeYAML(out); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg, again) {
				t.Fatalf("round trip changed the config:\n%s", out)
			}
		})
	}
}

func TestEnvNamesCoverEveryField(t *testing.T) {
	names := EnvNames()
	for _, want := range []string{"QUORUMD_SERVER_LISTEN", "QUORUMD_SERVER_TLS_CLIENT_CA_FILE", "QUORUMD_STATE_DIR",
		"QUORUMD_HSM_PIN_FILE", "QUORUMD_POLICY_VAULT_ROLE_ID_FILE", "QUORUMD_POLICY_EMBEDDED_FILE",
		"QUORUMD_RELAY_TLS_SERVER_NAME", "QUORUMD_CEREMONY_TIMEOUT", "QUORUMD_LOG_LEVEL", "QUORUMD_RUNTIME_GC_PERCENT"} {
		if !slices.Contains(names, want) {
			t.Errorf("no %s", want)
		}
	}
	// Every leaf field of the YAML form has an environment name.
	var m map[string]any
	out, _ := DefaultConfig().YAML()
	if err := yaml.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	var leaves func(prefix string, v map[string]any) int
	leaves = func(prefix string, v map[string]any) int {
		n := 0
		for k, x := range v {
			if sub, ok := x.(map[string]any); ok {
				n += leaves(prefix+strings.ToUpper(k)+"_", sub)
				continue
			}
			if !slices.Contains(names, prefix+strings.ToUpper(k)) {
				t.Errorf("no environment name for %s%s", prefix, k)
			}
			n++
		}
		return n
	}
	leaves(EnvPrefix, m)
}

func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	pin := filepath.Join(dir, "pin")
	os.WriteFile(pin, []byte("1234"), 0o600)
	cfg := testConfig()
	cfg.StateDir = dir
	cfg.HSM.Module = pin // any readable file
	cfg.HSM.PINEnv = ""
	cfg.HSM.PINFile = pin
	cfg.Policy.Embedded.File = pin
	if err := cfg.CheckFiles(func(string) (string, bool) { return "", false }); err != nil {
		t.Fatal(err)
	}
	cfg.HSM.PINFile = ""
	cfg.HSM.PINEnv = "PIN_VAR"
	cfg.Policy.Embedded.File = filepath.Join(dir, "absent.yaml")
	cfg.StateDir = pin
	err := cfg.CheckFiles(func(string) (string, bool) { return "", false })
	for _, want := range []string{"PIN_VAR", "policy.embedded.file", "not a directory"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err %v lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "1234") {
		t.Fatal("file contents in an error")
	}
}
