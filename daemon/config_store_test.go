package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStoreConfig: bbolt by default; store: postgres needs exactly one DSN
// source; the DSN is read from a file or a systemd credential.
func TestStoreConfig(t *testing.T) {
	cfg, _, err := LoadConfig(writeConfig(t, minimalConfig), nil)
	if err != nil || cfg.Store != StoreBolt {
		t.Fatalf("default store: %q %v", cfg.Store, err)
	}
	dir := t.TempDir()
	dsnFile := filepath.Join(dir, "dsn")
	const dsn = "postgres://quorumd:s3cret@db.internal:5432/quorumd?sslmode=verify-full"
	if err := os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, yaml string
		env        []string
		bad        string // a fragment of the error, "" when valid
	}{
		{"file", "store: postgres\npostgres:\n  dsn_file: " + dsnFile + "\n  max_conns: 32\n", nil, ""},
		{"credential", "store: postgres\npostgres:\n  dsn_credential: pg-dsn\n", nil, ""},
		{"env", "", []string{"QUORUMD_STORE=postgres", "QUORUMD_POSTGRES_DSN_FILE=" + dsnFile}, ""},
		{"no dsn", "store: postgres\n", nil, "exactly one of dsn_file and dsn_credential"},
		{"both", "store: postgres\npostgres:\n  dsn_file: " + dsnFile + "\n  dsn_credential: x\n", nil, "exactly one"},
		{"relative", "store: postgres\npostgres:\n  dsn_file: dsn\n", nil, "absolute"},
		{"credential path", "store: postgres\npostgres:\n  dsn_credential: ../dsn\n", nil, "not a path"},
		{"unknown store", "store: sqlite\n", nil, `store "sqlite"`},
		{"dsn for bbolt", "postgres:\n  dsn_file: " + dsnFile + "\n", nil, "store is bbolt"},
		{"max_conns", "store: postgres\npostgres:\n  dsn_file: " + dsnFile + "\n  max_conns: -1\n", nil, "postgres.max_conns"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, _, err := LoadConfig(writeConfig(t, minimalConfig+c.yaml), c.env)
			if c.bad != "" {
				if err == nil || !strings.Contains(err.Error(), c.bad) {
					t.Fatalf("accepted or unclear error: %v", err)
				}
				return
			}
			if err != nil || cfg.Store != StorePostgres {
				t.Fatalf("%q %v", cfg.Store, err)
			}
		})
	}

	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	if got, err := (PostgresConfig{DSNFile: dsnFile}).ReadDSN(env(nil)); err != nil || got != dsn {
		t.Fatalf("dsn_file: %q %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pg-dsn"), []byte(dsn), 0o600); err != nil {
		t.Fatal(err)
	}
	cred := PostgresConfig{DSNCredential: "pg-dsn"}
	if got, err := cred.ReadDSN(env(map[string]string{"CREDENTIALS_DIRECTORY": dir})); err != nil || got != dsn {
		t.Fatalf("dsn_credential: %q %v", got, err)
	}
	if _, err := cred.ReadDSN(env(nil)); err == nil || !strings.Contains(err.Error(), "CREDENTIALS_DIRECTORY") {
		t.Fatalf("credential without systemd: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	if _, err := (PostgresConfig{DSNFile: empty}).ReadDSN(env(nil)); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("empty DSN file: %v", err)
	}
	shared := filepath.Join(dir, "shared")
	os.WriteFile(shared, []byte(dsn), 0o644)
	if _, err := (PostgresConfig{DSNFile: shared}).ReadDSN(env(nil)); err == nil || !strings.Contains(err.Error(), "other users") {
		t.Fatalf("world-readable DSN file: %v", err)
	}
	if _, err := (PostgresConfig{DSNFile: dir}).ReadDSN(env(nil)); err == nil {
		t.Fatal("a directory accepted as the DSN file")
	}
	// --check-config opens the DSN's file or credential.
	for _, c := range []struct {
		p    PostgresConfig
		env  map[string]string
		want string // "" when the check passes
	}{
		{PostgresConfig{DSNFile: dsnFile}, nil, ""},
		{PostgresConfig{DSNFile: filepath.Join(dir, "absent")}, nil, "postgres DSN"},
		{cred, map[string]string{"CREDENTIALS_DIRECTORY": dir}, ""},
		{cred, nil, "CREDENTIALS_DIRECTORY"},
	} {
		cfg := DefaultConfig()
		cfg.StateDir, cfg.Store, cfg.Postgres = dir, StorePostgres, c.p
		err := cfg.CheckFiles(env(c.env))
		if (c.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckFiles(%+v): %v, want %q", c.p, err, c.want)
		}
	}
	// The rendered configuration never holds the DSN itself.
	cfg, _, err = LoadConfig(writeConfig(t, minimalConfig+"store: postgres\npostgres:\n  dsn_file: "+dsnFile+"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := cfg.YAML()
	if strings.Contains(string(out), "s3cret") || !strings.Contains(string(out), "store: postgres") {
		t.Fatalf("rendered config:\n%s", out)
	}
}
