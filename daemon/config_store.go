package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Key store backends (the top-level store key).
const (
	StoreBolt     = "bbolt"    // one file in state_dir; the embedded default
	StorePostgres = "postgres" // a PostgreSQL database that replicas share
)

// PostgresConfig is the key store of store: postgres. The DSN may carry a
// password, so it is never in this file: it is read from DSNFile or from
// the systemd credential DSNCredential ($CREDENTIALS_DIRECTORY/<name>, set
// with LoadCredential=).
type PostgresConfig struct {
	DSNFile       string `yaml:"dsn_file"`
	DSNCredential string `yaml:"dsn_credential"`
	// MaxConns bounds the daemon's connection pool (one pool per daemon,
	// plus one connection for key locks); 0 means 16.
	MaxConns int `yaml:"max_conns"`
}

func (c *Config) validateStore() []error {
	var errs []error
	p := c.Postgres
	switch c.Store {
	case StoreBolt:
		if p.DSNFile != "" || p.DSNCredential != "" {
			errs = append(errs, errors.New("postgres: settings given but store is bbolt (set store: postgres)"))
		}
	case StorePostgres:
		if (p.DSNFile == "") == (p.DSNCredential == "") {
			errs = append(errs, errors.New("postgres: set exactly one of dsn_file and dsn_credential"))
		}
		if p.DSNFile != "" && !filepath.IsAbs(p.DSNFile) {
			errs = append(errs, fmt.Errorf("postgres.dsn_file %q must be an absolute path", p.DSNFile))
		}
		if strings.ContainsAny(p.DSNCredential, "/\x00") {
			errs = append(errs, fmt.Errorf("postgres.dsn_credential %q: a credential name, not a path", p.DSNCredential))
		}
	default:
		errs = append(errs, fmt.Errorf("store %q: want %s or %s", c.Store, StoreBolt, StorePostgres))
	}
	if p.MaxConns < 0 || p.MaxConns > 1000 {
		errs = append(errs, fmt.Errorf("postgres.max_conns %d: want 0 (default 16) or 1..1000", p.MaxConns))
	}
	return errs
}

// DSNPath is where the PostgreSQL DSN is read from: dsn_file, or the
// credential in $CREDENTIALS_DIRECTORY.
func (p PostgresConfig) DSNPath(lookupEnv func(string) (string, bool)) (string, error) {
	if p.DSNFile != "" {
		return p.DSNFile, nil
	}
	dir, ok := lookupEnv("CREDENTIALS_DIRECTORY")
	if !ok || dir == "" {
		return "", fmt.Errorf("postgres.dsn_credential %q: CREDENTIALS_DIRECTORY is not set (run under systemd with LoadCredential=%s:…)", p.DSNCredential, p.DSNCredential)
	}
	return filepath.Join(dir, p.DSNCredential), nil
}

// maxDSNSize bounds the DSN file (a DSN with several hosts and TLS paths
// is well under 1 KiB).
const maxDSNSize = 16 << 10

// ReadDSN reads the DSN (surrounding white space trimmed). Errors name the
// file, never its contents.
func (p PostgresConfig) ReadDSN(lookupEnv func(string) (string, bool)) (string, error) {
	path, err := p.DSNPath(lookupEnv)
	if err != nil {
		return "", err
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("postgres DSN: %w", err)
	}
	defer f.Close()
	// The same rule as hsm.pin_file: a regular file other users cannot read.
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("postgres DSN: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("postgres DSN: %s is not a regular file", path)
	}
	if st.Mode().Perm()&0o007 != 0 {
		return "", fmt.Errorf("postgres DSN: %s is accessible to other users (mode %04o); chmod o-rwx it", path, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxDSNSize+1))
	if err != nil {
		return "", fmt.Errorf("postgres DSN: reading %s: %w", path, err)
	}
	if len(b) > maxDSNSize {
		return "", fmt.Errorf("postgres DSN: %s is larger than %d bytes", path, maxDSNSize)
	}
	dsn := strings.TrimSpace(string(b))
	if dsn == "" {
		return "", fmt.Errorf("postgres DSN: %s is empty", path)
	}
	return dsn, nil
}
