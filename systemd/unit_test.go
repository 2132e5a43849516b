// Package systemd checks the systemd units, sysusers.d and tmpfiles.d
// snippets in this directory against each other and against the binaries
// they start: sandbox settings that must not be weakened, environment
// overrides and credentials the daemon actually reads, readiness
// notification and watchdog matching what the binaries send, and (in
// quorumd_test.go, relay_test.go) the real binaries started with each
// unit's command line and environment. The exposure score and `systemd-analyze
// verify` are checked by .ci/check-units.
package systemd

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/testkit"
)

// unit is a parsed unit file: section → key → every assignment in order
// (systemd list settings accumulate; an empty assignment resets them).
type unit struct {
	name     string
	sections map[string]map[string][]string
}

// parseUnit reads a unit file with systemd's syntax: comments start with # or
// ;, a trailing backslash continues a line (joined with a space), and
// whitespace around the key and the value is dropped.
func parseUnit(name, text string) (*unit, error) {
	u := &unit{name: name, sections: map[string]map[string][]string{}}
	var section string
	sc := bufio.NewScanner(strings.NewReader(text))
	lineNo := 0
	var pending string
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			pending += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("%s:%d: bad section header %q", name, lineNo, line)
			}
			section = line[1 : len(line)-1]
			if u.sections[section] == nil {
				u.sections[section] = map[string][]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			return nil, fmt.Errorf("%s:%d: want key=value inside a section, got %q", name, lineNo, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		u.sections[section][k] = append(u.sections[section][k], v)
	}
	if pending != "" {
		return nil, fmt.Errorf("%s: file ends inside a continued line", name)
	}
	return u, sc.Err()
}

// all returns every assignment of a [Service] key.
func (u *unit) all(key string) []string { return u.sections["Service"][key] }

// last returns the effective value of a single-valued [Service] key and
// whether it is set.
func (u *unit) last(key string) (string, bool) {
	vs := u.all(key)
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// list returns the effective words of a list-valued [Service] key:
// assignments accumulate, an empty one resets.
func (u *unit) list(key string) []string {
	var out []string
	for _, v := range u.all(key) {
		if v == "" {
			out = nil
			continue
		}
		out = append(out, strings.Fields(v)...)
	}
	return out
}

// environment returns the Environment= assignments in order as NAME=value
// with the specifiers expanded by expand. Quoting is not supported (the
// units use none), so a quote fails the test rather than being misread.
func (u *unit) environment(expand func(string) (string, error)) ([]string, error) {
	var env []string
	for _, v := range u.all("Environment") {
		if strings.ContainsAny(v, `"'`) {
			return nil, fmt.Errorf("%s: quoted Environment= is not supported by this test: %s", u.name, v)
		}
		for _, kv := range strings.Fields(v) {
			if !strings.Contains(kv, "=") {
				return nil, fmt.Errorf("%s: Environment= word %q is not NAME=value", u.name, kv)
			}
			x, err := expand(kv)
			if err != nil {
				return nil, err
			}
			env = append(env, x)
		}
	}
	return env, nil
}

// specifiers expands the specifiers these units use for a system service
// named unitName: %d (credentials directory), %t (runtime root) and %%.
// Any other specifier is an error, so a new one gets a deliberate mapping.
func specifiers(unitName, credDir, runtimeDir string) func(string) (string, error) {
	return func(s string) (string, error) {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			if s[i] != '%' {
				b.WriteByte(s[i])
				continue
			}
			if i+1 == len(s) {
				return "", fmt.Errorf("%s: trailing %% in %q", unitName, s)
			}
			i++
			switch s[i] {
			case 'd':
				b.WriteString(credDir)
			case 't':
				b.WriteString(runtimeDir)
			case '%':
				b.WriteByte('%')
			default:
				return "", fmt.Errorf("%s: specifier %%%c in %q has no mapping in this test", unitName, s[i], s)
			}
		}
		return b.String(), nil
	}
}

// credentials returns the LoadCredential= ids and their source paths.
func (u *unit) credentials() (map[string]string, error) {
	out := map[string]string{}
	for _, v := range u.all("LoadCredential") {
		id, path, ok := strings.Cut(v, ":")
		if !ok || id == "" || !filepath.IsAbs(path) {
			return nil, fmt.Errorf("%s: LoadCredential=%s: want ID:/absolute/path", u.name, v)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("%s: credential %s loaded twice", u.name, id)
		}
		out[id] = path
	}
	return out, nil
}

// execStart splits ExecStart= into the program and its arguments (no
// quoting, no prefixes such as "-" or "+": the units use none).
func (u *unit) execStart() ([]string, error) {
	v, ok := u.last("ExecStart")
	if !ok || len(u.all("ExecStart")) != 1 {
		return nil, fmt.Errorf("%s: want exactly one ExecStart=", u.name)
	}
	if strings.ContainsAny(v, `"'\$%`) || strings.ContainsAny(v[:1], "-+!@:") {
		return nil, fmt.Errorf("%s: ExecStart=%s uses quoting, variables or prefixes this test does not model", u.name, v)
	}
	return strings.Fields(v), nil
}

// seconds parses the time spans these units use ("90s", "5s", "2min").
func seconds(span string) (time.Duration, error) {
	if m, ok := strings.CutSuffix(span, "min"); ok {
		span = m + "m"
	}
	d, err := time.ParseDuration(span)
	if err != nil {
		return 0, fmt.Errorf("time span %q: %w", span, err)
	}
	return d, nil
}

// findRoot is the module root, for TestMain (no testing.TB there).
func findRoot() (string, error) { return testkit.FindModuleRoot() }

// repoRoot is the module root.
func repoRoot(t testing.TB) string { return testkit.ModuleRoot(t) }

func loadUnit(t testing.TB, name string) *unit {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "systemd", name))
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(name, string(b))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestParseUnit(t *testing.T) {
	cases := []struct {
		name, text string
		key        string
		wantAll    []string
		wantList   []string
		wantErr    bool
	}{
		{name: "comments and spaces", text: "[Service]\n# x\n; y\n  Key =  a b  \n", key: "Key", wantAll: []string{"a b"}, wantList: []string{"a", "b"}},
		{name: "accumulate and reset", text: "[Service]\nKey=a\nKey=b c\nKey=\nKey=d\n", key: "Key", wantAll: []string{"a", "b c", "", "d"}, wantList: []string{"d"}},
		{name: "empty assignment", text: "[Service]\nKey=\n", key: "Key", wantAll: []string{""}, wantList: nil},
		{name: "continuation", text: "[Service]\nKey=a \\\n  b\n", key: "Key", wantAll: []string{"a  b"}, wantList: []string{"a", "b"}},
		{name: "other section ignored", text: "[Unit]\nKey=u\n[Service]\nKey=s\n", key: "Key", wantAll: []string{"s"}, wantList: []string{"s"}},
		{name: "key outside a section", text: "Key=a\n", wantErr: true},
		{name: "not key=value", text: "[Service]\nKey\n", wantErr: true},
		{name: "unterminated section", text: "[Service\nKey=a\n", wantErr: true},
		{name: "dangling continuation", text: "[Service]\nKey=a \\\n", wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u, err := parseUnit("test.service", c.text)
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %v", err, c.wantErr)
			}
			if err != nil {
				return
			}
			if got := u.all(c.key); !slices.Equal(got, c.wantAll) {
				t.Errorf("all = %q, want %q", got, c.wantAll)
			}
			if got := u.list(c.key); !slices.Equal(got, c.wantList) {
				t.Errorf("list = %q, want %q", got, c.wantList)
			}
		})
	}
}

func TestSpecifiers(t *testing.T) {
	expand := specifiers("x.service", "/run/credentials/x.service", "/run")
	cases := []struct{ in, want, err string }{
		{in: "A=%d/pin", want: "A=/run/credentials/x.service/pin"},
		{in: "TMPDIR=%t/x", want: "TMPDIR=/run/x"},
		{in: "P=100%%", want: "P=100%"},
		{in: "H=%H", err: "no mapping"},
		{in: "T=50%", err: "trailing"},
	}
	for _, c := range cases {
		got, err := expand(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err = %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

// sandbox is what both units must keep: .ci/check-units scores the whole,
// this pins each setting so a weakening names itself.
var sandbox = map[string]string{
	"ProtectSystem":           "strict",
	"ProtectHome":             "yes",
	"PrivateTmp":              "yes",
	"PrivateDevices":          "yes",
	"DevicePolicy":            "closed",
	"PrivateUsers":            "yes",
	"PrivateMounts":           "yes",
	"PrivateIPC":              "yes",
	"ProtectKernelTunables":   "yes",
	"ProtectKernelModules":    "yes",
	"ProtectKernelLogs":       "yes",
	"ProtectControlGroups":    "yes",
	"ProtectClock":            "yes",
	"ProtectHostname":         "yes",
	"ProtectProc":             "invisible",
	"ProcSubset":              "pid",
	"NoNewPrivileges":         "yes",
	"CapabilityBoundingSet":   "",
	"AmbientCapabilities":     "",
	"RestrictNamespaces":      "yes",
	"RestrictRealtime":        "yes",
	"RestrictSUIDSGID":        "yes",
	"LockPersonality":         "yes",
	"MemoryDenyWriteExecute":  "yes",
	"RemoveIPC":               "yes",
	"SystemCallArchitectures": "native",
	"SystemCallErrorNumber":   "EPERM",
	"UMask":                   "0077",
	"LimitCORE":               "0",
}

func TestSandbox(t *testing.T) {
	units := []struct {
		file     string
		user     string
		families []string
		extra    map[string]string
	}{
		{"quorumd.service", "quorumd", []string{"AF_INET", "AF_INET6", "AF_UNIX"},
			map[string]string{"MemorySwapMax": "0", "StateDirectoryMode": "0700", "RuntimeDirectoryMode": "0700", "ConfigurationDirectoryMode": "0750"}},
		{"quorum-relay.service", "quorum-relay", []string{"AF_INET", "AF_INET6"},
			map[string]string{"ConfigurationDirectoryMode": "0750"}},
	}
	for _, c := range units {
		t.Run(c.file, func(t *testing.T) {
			u := loadUnit(t, c.file)
			want := map[string]string{"User": c.user, "Group": c.user}
			for k, v := range sandbox {
				want[k] = v
			}
			for k, v := range c.extra {
				want[k] = v
			}
			for k, v := range want {
				if got, ok := u.last(k); !ok || got != v {
					t.Errorf("%s=%q (set %v), want %q", k, got, ok, v)
				}
			}
			if got := u.all("SystemCallFilter"); !slices.Equal(got, []string{"@system-service", "~@privileged @resources"}) {
				t.Errorf("SystemCallFilter = %q", got)
			}
			if got := u.list("RestrictAddressFamilies"); !slices.Equal(got, c.families) {
				t.Errorf("RestrictAddressFamilies = %q, want %q", got, c.families)
			}
			for _, k := range []string{"DynamicUser", "DeviceAllow", "SupplementaryGroups", "ReadWritePaths", "BindPaths"} {
				for _, v := range u.all(k) {
					if v != "" {
						t.Errorf("%s=%s widens the sandbox; do it in a site drop-in, documented in docs/install.md", k, v)
					}
				}
			}
			if _, ok := u.sections["Install"]["WantedBy"]; !ok {
				t.Error("no [Install] WantedBy=")
			}
		})
	}
}

// TestDirectoriesAndUsers checks the units, the sysusers.d and the
// tmpfiles.d snippets against each other: every User= is declared, every
// ConfigurationDirectory= is root-owned and readable by the service's group
// only, every StateDirectory= the tmpfiles make belongs to the service user,
// with the modes the units ask for.
func TestDirectoriesAndUsers(t *testing.T) {
	root := repoRoot(t)
	users := map[string]bool{}
	sysusers, _ := filepath.Glob(filepath.Join(root, "systemd", "*.sysusers.conf"))
	for _, f := range sysusers {
		for _, fields := range configLines(t, f) {
			if fields[0] != "u" || len(fields) < 2 {
				t.Fatalf("%s: only u lines expected, got %q", f, fields)
			}
			users[fields[1]] = true
		}
	}
	type dir struct{ mode, user, group string }
	dirs := map[string]dir{}
	tmpfiles, _ := filepath.Glob(filepath.Join(root, "systemd", "*.tmpfiles.conf"))
	for _, f := range tmpfiles {
		for _, fields := range configLines(t, f) {
			if fields[0] != "d" || len(fields) < 5 {
				t.Fatalf("%s: only d lines expected, got %q", f, fields)
			}
			if _, dup := dirs[fields[1]]; dup {
				t.Fatalf("%s: %s declared twice", f, fields[1])
			}
			dirs[fields[1]] = dir{fields[2], fields[3], fields[4]}
		}
	}
	if len(sysusers) != 2 || len(tmpfiles) != 2 {
		t.Fatalf("want one sysusers and one tmpfiles snippet per unit, got %q %q", sysusers, tmpfiles)
	}
	for _, name := range []string{"quorumd.service", "quorum-relay.service"} {
		u := loadUnit(t, name)
		user, _ := u.last("User")
		group, _ := u.last("Group")
		if !users[user] || group != user {
			t.Errorf("%s: User=%s Group=%s: want a sysusers.d user whose primary group has its name", name, user, group)
		}
		for _, c := range u.list("ConfigurationDirectory") {
			mode, _ := u.last("ConfigurationDirectoryMode")
			if d, ok := dirs["/etc/"+c]; !ok || d != (dir{mode, "root", group}) {
				t.Errorf("%s: /etc/%s in tmpfiles.d = %+v, want %s root %s (systemd never chowns a ConfigurationDirectory=)", name, c, d, mode, group)
			}
		}
		for _, s := range u.list("StateDirectory") {
			mode, _ := u.last("StateDirectoryMode")
			if d, ok := dirs["/var/lib/"+s]; ok && d != (dir{mode, user, group}) {
				t.Errorf("%s: /var/lib/%s in tmpfiles.d = %+v, want %s %s %s", name, s, d, mode, user, group)
			}
		}
	}
	for p, d := range dirs {
		if !users[d.group] && d.group != "root" {
			t.Errorf("tmpfiles.d: %s belongs to undeclared group %s", p, d.group)
		}
	}
}

// configLines returns the fields of every non-comment line of a
// sysusers.d/tmpfiles.d file, honouring one double-quoted field.
func configLines(t *testing.T, path string) [][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		var fields []string
		for line != "" {
			if line[0] == '"' {
				end := strings.IndexByte(line[1:], '"')
				if end < 0 {
					t.Fatalf("%s: unterminated quote in %q", path, line)
				}
				fields = append(fields, line[1:end+1])
				line = strings.TrimSpace(line[end+2:])
				continue
			}
			f, rest, _ := strings.Cut(line, " ")
			fields = append(fields, f)
			line = strings.TrimSpace(rest)
		}
		out = append(out, fields)
	}
	return out
}

// binaries builds cmd/quorumd and cmd/quorum-relay once per test binary.
var binaries = sync.OnceValues(func() (map[string]string, error) {
	dir, err := os.MkdirTemp("", "quorumd-systemd-test-")
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() { os.RemoveAll(dir) })
	root, err := findRoot()
	if err != nil {
		return nil, err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("the go command is needed to build the binaries: %w", err)
	}
	cmd := exec.Command(goBin, "build", "-o", dir+string(filepath.Separator), "./cmd/quorumd", "./cmd/quorum-relay")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %w\n%s", err, out)
	}
	return map[string]string{"quorumd": filepath.Join(dir, "quorumd"), "quorum-relay": filepath.Join(dir, "quorum-relay")}, nil
})

var cleanups []func()

func TestMain(m *testing.M) {
	code := m.Run()
	for _, f := range cleanups {
		f()
	}
	os.Exit(code)
}

func binary(t *testing.T, name string) string {
	t.Helper()
	bins, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	return bins[name]
}
