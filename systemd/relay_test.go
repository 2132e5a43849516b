package systemd

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/testkit"
)

const relayUnit = "quorum-relay.service"

// relayFlags lists the flags `quorum-relay -h` documents.
func relayFlags(t *testing.T, bin string) []string {
	t.Helper()
	out, err := exec.Command(bin, "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("quorum-relay -h: %v\n%s", err, out)
	}
	var flags []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)`).FindAllStringSubmatch(string(out), -1) {
		flags = append(flags, m[1])
	}
	if len(flags) < 5 {
		t.Fatalf("quorum-relay -h lists %d flags:\n%s", len(flags), out)
	}
	return flags
}

// TestRelayUnitStartsRelay checks quorum-relay.service against the real
// binary: every QUORUM_RELAY_* variable names a flag (the relay ignores
// unknown ones silently), the TLS files sit in the ConfigurationDirectory=,
// and the binary started with the unit's command line and environment (TLS
// files and address swapped for test ones) serves /healthz over TLS to a
// client with a certificate only, notifies systemd iff Type=notify, and
// exits 0 on SIGTERM within TimeoutStopSec=.
func TestRelayUnitStartsRelay(t *testing.T) {
	u := loadUnit(t, relayUnit)
	bin := binary(t, "quorum-relay")
	unitEnv, err := u.environment(specifiers(relayUnit, "/run/credentials/"+relayUnit, "/run"))
	if err != nil {
		t.Fatal(err)
	}
	flags := relayFlags(t, bin)
	confDirs := u.list("ConfigurationDirectory")
	for _, kv := range unitEnv {
		name, val, _ := strings.Cut(kv, "=")
		flag, ok := strings.CutPrefix(name, "QUORUM_RELAY_")
		if !ok {
			t.Errorf("%s: the relay reads QUORUM_RELAY_* only", kv)
			continue
		}
		flag = strings.ToLower(strings.ReplaceAll(flag, "_", "-"))
		if !slices.Contains(flags, flag) {
			t.Errorf("%s: quorum-relay has no flag -%s, and would ignore it silently", kv, flag)
		}
		if strings.HasPrefix(flag, "tls-") && !slices.ContainsFunc(confDirs, func(d string) bool {
			return strings.HasPrefix(val, filepath.Join("/etc", d)+"/")
		}) {
			t.Errorf("%s: TLS files belong in the ConfigurationDirectory= (%q)", kv, confDirs)
		}
	}
	for _, want := range []string{"QUORUM_RELAY_TLS_CERT", "QUORUM_RELAY_TLS_KEY", "QUORUM_RELAY_TLS_CLIENT_CA"} {
		if _, ok := lookup(unitEnv, want); !ok {
			t.Errorf("the unit does not set %s: the relay would run without TLS or client certificates", want)
		}
	}
	if files := u.list("EnvironmentFile"); !slices.Equal(files, []string{"-/etc/quorum-relay/relay.env"}) {
		t.Errorf("EnvironmentFile = %q", files)
	}

	pki := testkit.NewRelayPKI(t)
	notify := newNotifySocket(t)
	env := withOverrides(t, append(baseEnv(), unitEnv...), map[string]string{
		"QUORUM_RELAY_LISTEN":        "127.0.0.1:0",
		"QUORUM_RELAY_TLS_CERT":      pki.ServerCertFile,
		"QUORUM_RELAY_TLS_KEY":       pki.ServerKeyFile,
		"QUORUM_RELAY_TLS_CLIENT_CA": pki.CAFile,
		"NOTIFY_SOCKET":              notify.path,
	})
	args, err := u.execStart()
	if err != nil {
		t.Fatal(err)
	}
	if args[0] != "/usr/local/bin/quorum-relay" {
		t.Errorf("ExecStart=%q: want /usr/local/bin/quorum-relay", args)
	}
	svc := startService(t, bin, args[1:], env)
	addr := svc.waitLog(t, "listening", "addr", 30*time.Second)

	typ, _ := u.last("Type")
	_, ready := notify.await("READY=1", 500*time.Millisecond)
	switch {
	case typ == "notify" && !ready:
		t.Errorf("Type=notify but the relay sent no READY=1: systemd would time the start out")
	case typ != "notify" && ready:
		t.Errorf("the relay now sends READY=1: make the unit Type=notify (and allow AF_UNIX)")
	}
	if typ == "notify" && !slices.Contains(u.list("RestrictAddressFamilies"), "AF_UNIX") {
		t.Error("Type=notify needs AF_UNIX in RestrictAddressFamilies=")
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		code, err := httpsGet("https://"+addr+"/healthz", pki.ClientTLS(true))
		if err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz with a client certificate: %d, %v\n%s", code, err, svc.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, err := httpsGet("https://"+addr+"/healthz", pki.ClientTLS(false)); err == nil {
		t.Errorf("/healthz without a client certificate answered %d", code)
	}

	stop, _ := u.last("TimeoutStopSec")
	stopAfter, err := seconds(stop)
	if err != nil {
		t.Fatal(err)
	}
	shutdown := 20 * time.Second // the relay's -shutdown-timeout default
	if v, ok := lookup(unitEnv, "QUORUM_RELAY_SHUTDOWN_TIMEOUT"); ok {
		if shutdown, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	if stopAfter <= shutdown {
		t.Errorf("TimeoutStopSec=%s does not exceed the relay's shutdown timeout %v", stop, shutdown)
	}
	if err := svc.stop(t, stopAfter); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, svc.logs)
	}
}
