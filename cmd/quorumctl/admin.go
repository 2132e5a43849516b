package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/client"
	"github.com/quorumd/quorumd/daemon/quorum"
	"github.com/quorumd/quorumd/policy"
)

// sourceFlags locate the policy source the way the daemon does: its own
// configuration file (plus QUORUMD_* overrides from the environment).
type sourceFlags struct {
	config         string
	vaultTokenFile string
}

func (s *sourceFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.config, "config", "/etc/quorumd/quorumd.yaml", "the daemon's configuration file (its policy section is used)")
	fs.StringVar(&s.vaultTokenFile, "vault-token-file", "", "log in to Vault with this token file instead of the daemon's credentials (an operator token)")
}

// open loads the daemon configuration and opens its policy source.
func (s *sourceFlags) open(ctx context.Context, c *cli) (policy.Source, error) {
	cfg, warnings, err := daemon.LoadConfig(s.config, c.environ)
	for _, w := range warnings {
		fmt.Fprintln(c.stderr, "quorumctl: warning:", w)
	}
	if err != nil {
		return nil, fmt.Errorf("daemon configuration %s: %w", s.config, err)
	}
	return openPolicySource(ctx, cfg, s.vaultTokenFile)
}

// openPolicySource opens the source cfg configures, exactly as quorumd does
// (cmd/quorumd/backends.go), so quorumctl writes where the daemon reads.
// tokenFile, if set, replaces the configured Vault login with a token.
func openPolicySource(ctx context.Context, cfg *daemon.Config, tokenFile string) (policy.Source, error) {
	if tokenFile != "" && cfg.Policy.Source != "vault" {
		return nil, usagef("-vault-token-file given but the policy source is the embedded file")
	}
	return quorum.OpenPolicySource(ctx, cfg, tokenFile, nil)
}

func runBootstrapAdmin(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("quorumctl bootstrap-admin", flag.ContinueOnError)
	var s sourceFlags
	s.register(fs)
	name := fs.String("name", "admin", "name of the admin user")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	timeout := fs.Duration("timeout", 30*time.Second, "time limit")
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	src, err := s.open(ctx, c)
	if err != nil {
		return err
	}
	defer src.Close()
	key, id, err := policy.BootstrapAdmin(ctx, src, *name)
	if err != nil {
		if errors.Is(err, policy.ErrAdminExists) {
			return fmt.Errorf("%s: %w (create further users with create-user and the admin key)", src.Name(), err)
		}
		return fmt.Errorf("%s: %w", src.Name(), err)
	}
	res := map[string]string{"policy_source": src.Name(), "name": *name, "user_id": id, "api_key": key}
	return (&printer{w: c.stdout, json: *asJSON}).result(res, func(w io.Writer) {
		fmt.Fprintf(w, "policy source: %s\n", src.Name())
		fmt.Fprintf(w, "user_id: %s\n", id)
		fmt.Fprintf(w, "api_key: %s\n", key)
	})
}

func runPutPolicy(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("quorumctl put-policy", flag.ContinueOnError)
	var s sourceFlags
	s.register(fs)
	name := fs.String("name", "", "policy name (users made by /admin/create-user get the daemon's policy.default_user_policy)")
	file := fs.String("file", "", "policy JSON: allowed_operations, max_n, min_threshold, max_threshold, allowed_relay_addresses, key_quota")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	timeout := fs.Duration("timeout", 30*time.Second, "time limit")
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	if *name == "" || *file == "" {
		return usagef("-name and -file are required")
	}
	raw, err := os.ReadFile(*file)
	if err != nil {
		return fmt.Errorf("policy file: %w", err)
	}
	var p policy.Policy
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return usagef("policy file %s: %v", *file, err)
	}
	p.Name = *name
	if err := p.Validate(); err != nil {
		return usagef("%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	src, err := s.open(ctx, c)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := src.PutPolicy(ctx, p); err != nil {
		return fmt.Errorf("%s: writing policy %q: %w", src.Name(), p.Name, err)
	}
	res := map[string]any{"policy_source": src.Name(), "name": p.Name, "policy": p}
	return (&printer{w: c.stdout, json: *asJSON}).result(res, func(w io.Writer) {
		fmt.Fprintf(w, "policy %q written to %s\n", p.Name, src.Name())
	})
}

func runCreateUser(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("quorumctl create-user", flag.ContinueOnError)
	var h httpFlags
	h.register(fs, 30*time.Second)
	daemonURL := fs.String("daemon", "", "daemon base URL")
	adminKey := fs.String("admin-key", "", "admin API key (prefer QUORUMCTL_ADMIN_KEY)")
	name := fs.String("name", "", "name of the new user")
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	if *daemonURL == "" || *adminKey == "" || *name == "" {
		return usagef("-daemon, -admin-key and -name are required")
	}
	cl, ctx, cancel, err := h.client(ctx, *daemonURL, *adminKey)
	if err != nil {
		return err
	}
	defer cancel()
	u, err := cl.CreateUser(ctx, *name)
	if err != nil {
		return err
	}
	return h.printer(c).result(u, func(w io.Writer) {
		fmt.Fprintf(w, "user_id: %s\n", u.UserID)
		fmt.Fprintf(w, "api_key: %s\n", u.APIKey)
	})
}

// runWaitCmd polls GET <url><path> on every URL until each answers 200.
func runWaitCmd(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("quorumctl wait", flag.ContinueOnError)
	var h httpFlags
	h.register(fs, 30*time.Second)
	daemons := fs.String("daemons", "", "comma-separated base URLs")
	path := fs.String("path", "/readyz", "probe path (/readyz for daemons, /healthz for a relay)")
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	urls := splitList(*daemons)
	if len(urls) == 0 {
		return usagef("-daemons is required")
	}
	opts, err := h.clientOptions(len(urls))
	if err != nil {
		return err
	}
	clients := make([]*client.Client, len(urls))
	for i, u := range urls {
		if clients[i], err = client.New(u, "", opts...); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	out := h.printer(c)
	if err := client.WaitReady(ctx, *path, out.step, clients...); err != nil {
		return err
	}
	return out.result(map[string]any{"ready": urls}, func(io.Writer) {})
}
