// Command quorumd is the HSM-backed daemon holding one share of a BIP340 key
// in a T-of-N FROST quorum, behind the Vertex-compatible REST API.
//
// Configuration is a YAML file (-config) plus QUORUMD_<SECTION>_<FIELD>
// environment overrides (see docs/configuration.md). `quorumd --check-config
// -config FILE` validates the configuration, checks that the files it names
// are readable, prints the effective configuration (it holds no secret
// values) and exits. Logs are JSON on stderr. SIGTERM or SIGINT shuts down
// gracefully: new connections are refused, /readyz fails, and ceremonies in
// flight get server.shutdown_timeout to finish before they are cancelled.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/boot"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1 // runtime failure, or --check-config found unreadable files
	exitBadUsage = 2 // bad flags or an invalid configuration
)

func main() {
	// A stray SIGHUP (a closed terminal, a reload by habit) must not kill a
	// daemon holding ceremonies in flight; configuration changes need a
	// restart, which drains them.
	signal.Ignore(syscall.SIGHUP)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr, openBackends, nil))
}

// openFunc connects the backends; openBackends is the real one, tests pass
// their own.
type openFunc = boot.OpenFunc

var openBackends openFunc = boot.OpenBackends

// run is main without the process: it returns the exit code. ready, if not
// nil, receives the bound listen address once the daemon serves.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer, open openFunc, ready chan<- string) int {
	fs := flag.NewFlagSet("quorumd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "/etc/quorumd/quorumd.yaml", "configuration file (YAML)")
	check := fs.Bool("check-config", false, "validate the configuration, print it and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitBadUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "quorumd: unexpected arguments %q\n", fs.Args())
		return exitBadUsage
	}
	if *showVersion {
		fmt.Fprintln(stdout, "quorumd", version)
		return exitOK
	}
	cfg, warnings, err := daemon.LoadConfig(*configPath, environ)
	for _, w := range warnings {
		fmt.Fprintln(stderr, "quorumd: warning:", w)
	}
	if err != nil {
		fmt.Fprintf(stderr, "quorumd: invalid configuration:\n%s\n", indent(err.Error()))
		return exitBadUsage
	}
	if *check {
		return checkConfig(cfg, environ, stdout, stderr)
	}

	log, err := boot.NewLogger(stderr, cfg.Log.Level)
	if err != nil {
		fmt.Fprintln(stderr, "quorumd:", err)
		return exitBadUsage
	}
	if err := hardenProcess(); err != nil {
		log.Error("cannot disable core dumps", "error", err.Error())
		return exitFailure
	}
	if err := boot.Run(ctx, cfg, log, boot.Options{Version: version, Open: open, Ready: ready}); err != nil {
		log.Error("quorumd stopped", "error", err.Error())
		return exitFailure
	}
	return exitOK
}

// checkConfig prints the effective configuration and checks the files it
// names; it never prints file contents.
func checkConfig(cfg *daemon.Config, environ []string, stdout, stderr io.Writer) int {
	out, err := cfg.YAML()
	if err != nil {
		fmt.Fprintln(stderr, "quorumd:", err)
		return exitFailure
	}
	stdout.Write(out)
	lookup := func(name string) (string, bool) {
		for _, kv := range environ {
			if k, v, ok := strings.Cut(kv, "="); ok && k == name {
				return v, true
			}
		}
		return "", false
	}
	if err := cfg.CheckFiles(lookup); err != nil {
		fmt.Fprintf(stderr, "quorumd: configuration is valid but not usable here:\n%s\n", indent(err.Error()))
		return exitFailure
	}
	fmt.Fprintln(stderr, "quorumd: configuration OK")
	return exitOK
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
