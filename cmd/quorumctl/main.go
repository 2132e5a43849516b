// Command quorumctl is the operator and client CLI of quorumd: it
// bootstraps the first admin in the policy source, writes policies, creates
// users and rooms, runs a whole key import across N daemons, signs with u
// of them, verifies BIP340 signatures and load-tests a local quorum.
//
// Every flag can also be set in the environment as QUORUMCTL_<FLAG> (upper
// case, dashes as underscores: QUORUMCTL_DAEMONS, QUORUMCTL_KEYS,
// QUORUMCTL_ADMIN_KEY, QUORUMCTL_PRIVATE_KEY, ...); a flag on the command
// line wins. Prefer the environment or files for API keys and private keys:
// command lines are visible to every local user.
//
// Human output is one line per multi-party step; -json prints one JSON
// object with the result instead. Exit status: 0 success, 1 failure, 2 bad
// usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/quorumd/quorumd/daemon/client"
)

// envPrefix starts the environment name of every flag.
const envPrefix = "QUORUMCTL_"

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// cli is what a subcommand gets from main.
type cli struct {
	environ []string // os.Environ() form
	stdout  io.Writer
	stderr  io.Writer
}

// lookupEnv finds name in c.environ (the last definition wins, as in
// getenv).
func (c *cli) lookupEnv(name string) (string, bool) {
	for i := len(c.environ) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(c.environ[i], "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, c *cli, args []string) error
}

func commands() []command {
	return []command{
		{"bootstrap-admin", "create the first admin in the daemon's policy source; prints its API key once", runBootstrapAdmin},
		{"put-policy", "write a policy (JSON) into the daemon's policy source", runPutPolicy},
		{"create-user", "create a user on a daemon (admin key); prints its API key once", runCreateUser},
		{"create-room", "create a room of a given size on a daemon's default relay", runCreateRoom},
		{"batch-create-rooms", "create several rooms on a daemon's default relay", runBatchCreateRooms},
		{"policy", "policies and rules on a daemon (admin key): policy create|list|get|delete|add-rule|remove-rule|create-rule|add-external-rule|list-rules|get-rule|delete-rule|assign|generate-api-key", runPolicyCmd},
		{"import", "import a private key T-of-N across N daemons (importer + recipients)", runImportCmd},
		{"keygen", "generate a fresh key T-of-N across N daemons (ChillDKG, no dealer)", runKeygenCmd},
		{"backup", "backup export|import|identity: a key share's encrypted backup (age)", runBackupCmd},
		{"delete-key", "delete a key share on a daemon (irreversible)", runDeleteKeyCmd},
		{"sign", "sign a message with u daemons and verify the signature", runSignCmd},
		{"batch-sign", "sign many messages with u daemons in one ceremony and verify every signature", runBatchSignCmd},
		{"refresh", "fresh shares of a key for the same daemons (new key_ids, same pubkey)", runRefreshCmd},
		{"reshare", "move a key to a new daemon set and/or threshold (holders first, then new daemons)", runReshareCmd},
		{"repair", "replace a daemon that lost its share and identity: the holders reshare to a new daemon", runRepairCmd},
		{"verify", "verify a BIP340 signature", runVerifyCmd},
		{"wait", "wait until daemons (or a relay) answer their readiness probe", runWaitCmd},
		{"bench", "load benchmark on loopback daemons: bench import|sign|floor|all", runBenchCmd},
	}
}

// run is main without the process: it returns the exit code. environ
// supplies the QUORUMCTL_* flag values and, for the commands reading the
// daemon's configuration, its QUORUMD_* overrides.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	c := &cli{environ: environ, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, cmd := range commands() {
		if cmd.name != args[0] {
			continue
		}
		err := cmd.run(ctx, c, args[1:])
		switch {
		case err == nil:
			return exitOK
		case errors.Is(err, flag.ErrHelp):
			return exitOK
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "quorumctl %s: %v\n", cmd.name, err)
			return exitUsage
		default:
			fmt.Fprintf(stderr, "quorumctl %s: %v\n", cmd.name, err)
			return exitFailure
		}
	}
	fmt.Fprintf(stderr, "quorumctl: unknown command %q\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: quorumctl COMMAND [flags]   (quorumctl COMMAND -h for its flags)")
	fmt.Fprintln(w, "\ncommands:")
	for _, cmd := range commands() {
		fmt.Fprintf(w, "  %-16s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprintln(w, "\nEvery flag may be given in the environment as QUORUMCTL_<FLAG> (e.g. QUORUMCTL_KEYS).")
}

// parseFlags parses args, then fills every flag not given on the command
// line from QUORUMCTL_<FLAG>. Error messages never echo a value (it may be
// a key).
func (c *cli) parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage of %s:\n", fs.Name())
		fs.PrintDefaults()
		fmt.Fprintf(c.stderr, "Every flag may also be set in the environment as %s<FLAG> (e.g. %s).\n", envPrefix, envName("keys"))
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		name := envName(f.Name)
		v, ok := c.lookupEnv(name)
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, usagef("%s: invalid value", name))
		}
	})
	return errors.Join(errs...)
}

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// --- output ------------------------------------------------------------------

// printer writes human step lines (unless -json) and the final result.
type printer struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
}

// step prints one human line; in -json mode it prints nothing.
func (p *printer) step(format string, args ...any) {
	if p == nil || p.json {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// result prints v as JSON in -json mode, else calls human.
func (p *printer) result(v any, human func(w io.Writer)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		enc := json.NewEncoder(p.w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	human(p.w)
	return nil
}

// --- common flag groups ------------------------------------------------------

// tlsOptions configure https daemons: a CA bundle and an optional client
// certificate (for daemons requiring mutual TLS).
type tlsOptions struct {
	CAFile, CertFile, KeyFile string
}

// httpFlags are the flags of every command that talks to daemons.
type httpFlags struct {
	json    bool
	timeout time.Duration
	tls     tlsOptions
}

// clientOptions returns the options of every client of a command: one
// connection pool, sized for conns concurrent calls, shared by all.
func (h *httpFlags) clientOptions(conns int) ([]client.Option, error) {
	tc, err := client.LoadTLSConfig(h.tls.CAFile, h.tls.CertFile, h.tls.KeyFile)
	if err != nil {
		return nil, err
	}
	return []client.Option{client.WithHTTPClient(client.NewHTTPClient(tc, conns)), client.WithUserAgent("quorumctl")}, nil
}

func (h *httpFlags) register(fs *flag.FlagSet, defTimeout time.Duration) {
	fs.BoolVar(&h.json, "json", false, "print the result as JSON")
	fs.DurationVar(&h.timeout, "timeout", defTimeout, "overall time limit of the command")
	fs.StringVar(&h.tls.CAFile, "ca-file", "", "CA bundle (PEM) to verify https daemons")
	fs.StringVar(&h.tls.CertFile, "client-cert", "", "client certificate (PEM) for daemons requiring mutual TLS")
	fs.StringVar(&h.tls.KeyFile, "client-key", "", "client certificate key (PEM)")
}

func (h *httpFlags) printer(c *cli) *printer { return &printer{w: c.stdout, json: h.json} }

// client returns a Client of the daemon at rawURL using key, and ctx bounded
// by -timeout; the caller calls cancel.
func (h *httpFlags) client(ctx context.Context, rawURL, key string) (*client.Client, context.Context, context.CancelFunc, error) {
	opts, err := h.clientOptions(1)
	if err != nil {
		return nil, nil, nil, err
	}
	cl, err := client.New(rawURL, key, opts...)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	return cl, ctx, cancel, nil
}

// quorumFlags name N daemons and the API key to use on each.
type quorumFlags struct {
	daemons string
	keys    string
}

func (q *quorumFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&q.daemons, "daemons", "", "comma-separated daemon base URLs, one per party (http://127.0.0.1:8081,...); a party's replicas joined by | (http://a1|http://a2,...)")
	fs.StringVar(&q.keys, "keys", "", "comma-separated API keys, one per daemon (or one for all)")
}

// parties resolves the flags into one client per daemon.
func (q *quorumFlags) parties(h *httpFlags, conns int, extra ...client.Option) ([]*client.Client, error) {
	urls := splitList(q.daemons)
	if len(urls) == 0 {
		return nil, usagef("-daemons is required")
	}
	keys := splitList(q.keys)
	switch {
	case len(keys) == 0:
		return nil, usagef("-keys is required (or QUORUMCTL_KEYS)")
	case len(keys) == 1:
		for len(keys) < len(urls) {
			keys = append(keys, keys[0])
		}
	case len(keys) != len(urls):
		return nil, usagef("%d API keys for %d daemons", len(keys), len(urls))
	}
	opts, err := h.clientOptions(conns)
	if err != nil {
		return nil, err
	}
	opts = append(opts, extra...)
	out := make([]*client.Client, len(urls))
	seen := map[string]bool{}
	for i, u := range urls {
		var bases []string
		for r := range strings.SplitSeq(u, "|") {
			n, err := normalizeURL(strings.TrimSpace(r))
			if err != nil {
				return nil, err
			}
			if seen[n] {
				return nil, usagef("daemon %s listed twice", n)
			}
			seen[n] = true
			bases = append(bases, n)
		}
		if out[i], err = client.New(bases[0], keys[i], append(opts, client.WithReplicas(bases[1:]...))...); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// sortedKeys returns m's keys in order (for stable output).
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
