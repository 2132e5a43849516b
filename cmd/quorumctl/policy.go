package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/quorumd/quorumd/daemon/client"
)

// quorumctl policy <verb>: the /admin/policies/... family of a daemon (its
// admin API, so Vault and the embedded file are written the same way).

// policyVerb is one subcommand: its flags build the call.
type policyVerb struct {
	name, summary string
	// build registers flags on fs and returns a function that, after
	// parsing, yields the call (or a usage error); the call answers what
	// the daemon answered, to be printed.
	build func(fs *flag.FlagSet) func() (policyCall, error)
}

// policyCall is one admin call on a daemon.
type policyCall func(ctx context.Context, cl *client.Client) (any, error)

func need(vals ...string) error {
	for i := 0; i+1 < len(vals); i += 2 {
		if vals[i+1] == "" {
			return usagef("-%s is required", vals[i])
		}
	}
	return nil
}

func policyVerbs() []policyVerb {
	// idVerb is a verb on one id: get answers the record, delete the id.
	idVerb := func(name, summary, field string, f func(ctx context.Context, cl *client.Client, id string) (any, error)) policyVerb {
		return policyVerb{name, summary, func(fs *flag.FlagSet) func() (policyCall, error) {
			id := fs.String("id", "", "id")
			return func() (policyCall, error) {
				return func(ctx context.Context, cl *client.Client) (any, error) {
					out, err := f(ctx, cl, *id)
					if out == nil && err == nil {
						out = map[string]string{field: *id}
					}
					return out, err
				}, need("id", *id)
			}
		}}
	}
	pairVerb := func(name, summary string, f func(cl *client.Client) func(ctx context.Context, policyID, ruleID string) error) policyVerb {
		return policyVerb{name, summary, func(fs *flag.FlagSet) func() (policyCall, error) {
			p := fs.String("policy", "", "policy_id")
			r := fs.String("rule", "", "rule_id")
			return func() (policyCall, error) {
				return func(ctx context.Context, cl *client.Client) (any, error) {
					return client.PolicyRule{PolicyID: *p, RuleID: *r}, f(cl)(ctx, *p, *r)
				}, need("policy", *p, "rule", *r)
			}
		}}
	}
	plain := func(name, summary string, f policyCall) policyVerb {
		return policyVerb{name, summary, func(*flag.FlagSet) func() (policyCall, error) {
			return func() (policyCall, error) { return f, nil }
		}}
	}
	return []policyVerb{
		{"create", "create a policy: -name and -rules id,id,...", func(fs *flag.FlagSet) func() (policyCall, error) {
			name := fs.String("name", "", "policy name")
			rules := fs.String("rules", "", "comma-separated rule ids")
			return func() (policyCall, error) {
				return func(ctx context.Context, cl *client.Client) (any, error) {
					id, err := cl.CreatePolicy(ctx, *name, splitList(*rules))
					return map[string]string{"policy_id": id}, err
				}, need("name", *name)
			}
		}},
		plain("list", "list policies", func(ctx context.Context, cl *client.Client) (any, error) {
			ps, err := cl.ListPolicies(ctx)
			return map[string]any{"policies": ps}, err
		}),
		idVerb("get", "show one policy: -id", "policy_id", func(ctx context.Context, cl *client.Client, id string) (any, error) {
			return cl.GetPolicy(ctx, id)
		}),
		idVerb("delete", "delete a policy no user holds: -id", "policy_id", func(ctx context.Context, cl *client.Client, id string) (any, error) {
			return nil, cl.DeletePolicy(ctx, id)
		}),
		pairVerb("add-rule", "add a rule to a policy: -policy -rule", func(cl *client.Client) func(context.Context, string, string) error { return cl.AddRule }),
		pairVerb("remove-rule", "remove a rule from a policy: -policy -rule", func(cl *client.Client) func(context.Context, string, string) error { return cl.RemoveRule }),
		{"create-rule", "create a rule from a JSON file (-file; see docs/openapi.yaml CreateRuleRequest)", func(fs *flag.FlagSet) func() (policyCall, error) {
			file := fs.String("file", "", "rule JSON: {name, allowed_operations, max_n, ..., allow_backup_export}")
			return func() (policyCall, error) {
				if err := need("file", *file); err != nil {
					return nil, err
				}
				raw, err := os.ReadFile(*file)
				if err != nil {
					return nil, fmt.Errorf("rule file: %w", err)
				}
				var r client.Rule
				dec := json.NewDecoder(bytes.NewReader(raw))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&r); err != nil {
					return nil, usagef("rule file %s: %v", *file, err)
				}
				return func(ctx context.Context, cl *client.Client) (any, error) {
					id, err := cl.CreateRule(ctx, r)
					return map[string]string{"rule_id": id}, err
				}, nil
			}
		}},
		{"add-external-rule", "register a rule server: -name -jwt-alg ES256|EdDSA -pubkey-file -url", func(fs *flag.FlagSet) func() (policyCall, error) {
			name := fs.String("name", "", "rule name")
			alg := fs.String("jwt-alg", "", "ES256 or EdDSA")
			pub := fs.String("pubkey-file", "", "the rule server's public key (PEM, or hex Ed25519)")
			u := fs.String("url", "", "the rule server's URL")
			return func() (policyCall, error) {
				if err := need("name", *name, "jwt-alg", *alg, "pubkey-file", *pub, "url", *u); err != nil {
					return nil, err
				}
				k, err := os.ReadFile(*pub)
				if err != nil {
					return nil, fmt.Errorf("pubkey file: %w", err)
				}
				r := client.ExternalRule{Name: *name, JWTAlg: *alg, Pubkey: strings.TrimSpace(string(k)), URL: *u}
				return func(ctx context.Context, cl *client.Client) (any, error) {
					id, err := cl.AddExternalRule(ctx, r)
					return map[string]string{"rule_id": id}, err
				}, nil
			}
		}},
		plain("list-rules", "list rules", func(ctx context.Context, cl *client.Client) (any, error) {
			rs, err := cl.ListRules(ctx)
			return map[string]any{"rules": rs}, err
		}),
		idVerb("get-rule", "show one rule: -id", "rule_id", func(ctx context.Context, cl *client.Client, id string) (any, error) {
			return cl.GetRule(ctx, id)
		}),
		idVerb("delete-rule", "delete a rule no policy holds: -id", "rule_id", func(ctx context.Context, cl *client.Client, id string) (any, error) {
			return nil, cl.DeleteRule(ctx, id)
		}),
		{"assign", "assign a policy to a user: -user -policy (\"\" clears)", func(fs *flag.FlagSet) func() (policyCall, error) {
			user := fs.String("user", "", "user_id")
			pol := fs.String("policy", "", "policy_id (empty: no policy)")
			return func() (policyCall, error) {
				return func(ctx context.Context, cl *client.Client) (any, error) {
					return map[string]string{"user_id": *user, "policy_id": *pol}, cl.AssignPolicy(ctx, *user, *pol)
				}, need("user", *user)
			}
		}},
		{"generate-api-key", "a further API key for a user: -user", func(fs *flag.FlagSet) func() (policyCall, error) {
			user := fs.String("user", "", "user_id")
			return func() (policyCall, error) {
				return func(ctx context.Context, cl *client.Client) (any, error) {
					k, err := cl.GenerateAPIKey(ctx, *user)
					return map[string]string{"api_key": k}, err
				}, need("user", *user)
			}
		}},
	}
}

func runPolicyCmd(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(c.stderr, "usage: quorumctl policy <verb> -daemon URL -admin-key KEY [flags]\nverbs:")
		for _, v := range policyVerbs() {
			fmt.Fprintf(c.stderr, "  %-18s %s\n", v.name, v.summary)
		}
		if len(args) == 0 {
			return usagef("a verb is required")
		}
		return flag.ErrHelp
	}
	for _, v := range policyVerbs() {
		if v.name != args[0] {
			continue
		}
		fs := flag.NewFlagSet("quorumctl policy "+v.name, flag.ContinueOnError)
		var h httpFlags
		h.register(fs, 30*time.Second)
		daemonURL := fs.String("daemon", "", "daemon base URL")
		adminKey := fs.String("admin-key", "", "admin API key (prefer QUORUMCTL_ADMIN_KEY)")
		req := v.build(fs)
		if err := c.parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *daemonURL == "" || *adminKey == "" {
			return usagef("-daemon and -admin-key are required")
		}
		do, err := req()
		if err != nil {
			return err
		}
		cl, ctx, cancel, err := h.client(ctx, *daemonURL, *adminKey)
		if err != nil {
			return err
		}
		defer cancel()
		res, err := do(ctx, cl)
		if err != nil {
			return err
		}
		out, err := json.Marshal(res)
		if err != nil {
			return err
		}
		return h.printer(c).result(json.RawMessage(out), func(w io.Writer) {
			var pretty any
			if json.Unmarshal(out, &pretty) == nil {
				b, _ := json.MarshalIndent(pretty, "", "  ")
				fmt.Fprintf(w, "%s\n", b)
			}
		})
	}
	return usagef("unknown policy verb %q", args[0])
}

// runBatchCreateRooms creates several rooms on a daemon's default relay.
func runBatchCreateRooms(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("quorumctl batch-create-rooms", flag.ContinueOnError)
	var h httpFlags
	h.register(fs, 30*time.Second)
	daemonURL := fs.String("daemon", "", "daemon base URL")
	key := fs.String("key", "", "API key (prefer QUORUMCTL_KEY)")
	sizes := fs.String("sizes", "", "comma-separated room sizes (or -size with -count)")
	size := fs.Int("size", 0, "room size, with -count")
	count := fs.Int("count", 0, "number of rooms of -size")
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	if *daemonURL == "" || *key == "" {
		return usagef("-daemon and -key are required")
	}
	var b client.BatchRooms
	switch {
	case *sizes != "" && (*size != 0 || *count != 0):
		return usagef("give -sizes, or -size with -count")
	case *sizes != "":
		for _, s := range splitList(*sizes) {
			var n int
			if _, err := fmt.Sscan(s, &n); err != nil {
				return usagef("-sizes: %q is not a number", s)
			}
			b.Sizes = append(b.Sizes, n)
		}
	case *size != 0 && *count != 0:
		b.Size, b.Count = *size, *count
	default:
		return usagef("give -sizes, or -size with -count")
	}
	cl, ctx, cancel, err := h.client(ctx, *daemonURL, *key)
	if err != nil {
		return err
	}
	defer cancel()
	ids, err := cl.BatchCreateRooms(ctx, b)
	if err != nil {
		return err
	}
	out := struct {
		RoomUUIDs []string `json:"room_uuids"`
	}{ids}
	return h.printer(c).result(out, func(w io.Writer) {
		for _, id := range out.RoomUUIDs {
			fmt.Fprintln(w, id)
		}
	})
}
