package main

import (
	"bytes"
	"context"
	"flag"
	"sort"
	"strings"
	"testing"

	"github.com/quorumd/quorumd/internal/testkit"
)

// runCLI runs quorumctl in-process with exactly env as its environment.
func runCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var environ []string
	for _, k := range sortedKeys(env) {
		environ = append(environ, k+"="+env[k])
	}
	var out, errb bytes.Buffer
	code = run(context.Background(), args, environ, &out, &errb)
	return code, out.String(), errb.String()
}

// repoRoot is the module root.
func repoRoot(t testing.TB) string { return testkit.ModuleRoot(t) }

func TestCommandDispatch(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		want     int
		inStderr string
	}{
		{"no command", nil, exitUsage, "usage: quorumctl COMMAND"},
		{"help", []string{"help"}, exitOK, "bench"},
		{"unknown command", []string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"command help", []string{"sign", "-h"}, exitOK, "-key-ids"},
		{"unknown flag", []string{"verify", "-nope"}, exitUsage, "flag provided but not defined"},
		{"stray argument", []string{"verify", "extra"}, exitUsage, "unexpected arguments"},
		{"bench without mode", []string{"bench"}, exitUsage, "bench import|sign"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, nil, tc.args...)
			if code != tc.want {
				t.Errorf("exit %d, want %d", code, tc.want)
			}
			if !strings.Contains(stderr, tc.inStderr) {
				t.Errorf("stderr %q lacks %q", stderr, tc.inStderr)
			}
		})
	}
}

func TestEnvironmentFlags(t *testing.T) {
	var c cli
	tests := []struct {
		name    string
		environ []string
		args    []string
		want    map[string]string
		wantErr bool
	}{
		{"env fills unset flags", []string{"QUORUMCTL_DAEMONS=a,b", "QUORUMCTL_KEY_IDS=x"}, nil,
			map[string]string{"daemons": "a,b", "key-ids": "x", "c": "32"}, false},
		{"flags win over env", []string{"QUORUMCTL_DAEMONS=a"}, []string{"-daemons", "b"},
			map[string]string{"daemons": "b"}, false},
		{"last definition wins", []string{"QUORUMCTL_C=4", "QUORUMCTL_C=8"}, nil,
			map[string]string{"c": "8"}, false},
		{"other prefixes ignored", []string{"DAEMONS=a", "QUORUMD_DAEMONS=b"}, nil,
			map[string]string{"daemons": ""}, false},
		{"bad env value", []string{"QUORUMCTL_C=many"}, nil, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c = cli{environ: tc.environ, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
			fs := newTestFlagSet()
			err := c.parseFlags(fs, tc.args)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil {
				if strings.Contains(err.Error(), "many") {
					t.Error("the error echoes the value")
				}
				return
			}
			for name, want := range tc.want {
				if got := fs.Lookup(name).Value.String(); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	names := map[string]string{"daemons": "QUORUMCTL_DAEMONS", "key-ids": "QUORUMCTL_KEY_IDS",
		"private-key-file": "QUORUMCTL_PRIVATE_KEY_FILE", "c": "QUORUMCTL_C"}
	keys := make([]string, 0, len(names))
	for k := range names {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if got := envName(k); got != names[k] {
			t.Errorf("envName(%q) = %q, want %q", k, got, names[k])
		}
	}
}

func newTestFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.String("daemons", "", "")
	fs.String("key-ids", "", "")
	fs.Int("c", 32, "")
	return fs
}
