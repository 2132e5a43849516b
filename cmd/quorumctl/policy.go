package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// quorumctl policy <verb>: the /admin/policies/... family of a daemon (its
// admin API, so Vault and the embedded file are written the same way).

// policyVerb is one subcommand: its flags build the request.
type policyVerb struct {
	name, summary string
	// build registers flags on fs and returns a function that, after
	// parsing, yields the request (method, path, query, JSON body or nil).
	build func(fs *flag.FlagSet) func() (method, path string, query url.Values, body any, err error)
}

func need(vals ...string) error {
	for i := 0; i+1 < len(vals); i += 2 {
		if vals[i+1] == "" {
			return usagef("-%s is required", vals[i])
		}
	}
	return nil
}

func policyVerbs() []policyVerb {
	idVerb := func(name, summary, method, prefix, flagName string) policyVerb {
		return policyVerb{name, summary, func(fs *flag.FlagSet) func() (string, string, url.Values, any, error) {
			id := fs.String(flagName, "", flagName)
			return func() (string, string, url.Values, any, error) {
				return method, prefix + url.PathEscape(*id), nil, nil, need(flagName, *id)
			}
		}}
	}
	plain := func(name, summary, path string) policyVerb {
		return policyVerb{name, summary, func(*flag.FlagSet) func() (string, string, url.Values, any, error) {
			return func() (string, string, url.Values, any, error) { return http.MethodGet, path, nil, nil, nil }
		}}
	}
	pairVerb := func(name, summary, path string) policyVerb {
		return policyVerb{name, summary, func(fs *flag.FlagSet) func() (string, string, url.Values, any, error) {
			p := fs.String("policy", "", "policy_id")
			r := fs.String("rule", "", "rule_id")
			return func() (string, string, url.Values, any, error) {
				return http.MethodPost, path, nil, map[string]string{"policy_id": *p, "rule_id": *r}, need("policy", *p, "rule", *r)
			}
		}}
	}
	return []policyVerb{
		{"create", "create a policy: -name and -rules id,id,...", func(fs *flag.FlagSet) func() (string, string, url.Values, any, error) {
			name := fs.String("name", "", "policy name")
			rules := fs.String("rules", "", "comma-separated rule ids")
			return func() (string, string, url.Values, any, error) {
				ids := splitList(*rules)
				if ids == nil {
					ids = []string{}
				}
				return http.MethodPost, "/admin/policies/create-policy", nil, map[string]any{"name": *name, "rules": ids}, need("name", *name)
			}
		}},
		plain("list", "list policies", "/admin/policies/list-policies"),
		idVerb("get", "show one policy: -id", http.MethodGet, "/admin/policies/get-policy/", "id"),
		idVerb("delete", "delete a policy no user holds: -id", http.MethodDelete, "/admin/policies/delete-policy/", "id"),
		pairVerb("add-rule", "add a rule to a policy: -policy -rule", "/admin/policies/add-rule"),
		pairVerb("remove-rule", "remove a rule from a policy: -policy -rule", "/admin/policies/remove-rule"),
		{"create-rule", "create a rule from a JSON file (-file; see docs/openapi.yaml CreateRuleRequest)", func(fs *flag.FlagSet) func() (string, string, url.Values, any, error) {
			file := fs.String("file", "", "rule JSON: {name, allowed_operations, max_n, ..., allow_backup_export}")
			return func() (string, string, url.Values, any, error) {
				if err := need("file", *file); err != nil {
					return "", "", nil, nil, err
				}
				raw, err := os.ReadFile(*file)
				if err != nil {
					return "", "", nil, nil, fmt.Errorf("rule file: %w", err)
				}
				if !json.Valid(raw) {
					return "", "", nil, nil, usagef("rule file %s is not JSON", *file)
				}
				return http.MethodPost, "/admin/policies/create-rule", nil, json.RawMessage(raw), nil
			}
		}},
		{"add-external-rule", "register a rule server: -name -jwt-alg ES256|EdDSA -pubkey-file -url", func(fs *flag.FlagSet) func() (string, string, url.Values, any, error) {
			name := fs.String("name", "", "rule name")
			alg := fs.String("jwt-alg", "", "ES256 or EdDSA")
			pub := fs.String("pubkey-file", "", "the rule server's public key (PEM, or hex Ed25519)")
			u := fs.String("url", "", "the rule server's URL")
			return func() (string, string, url.Values, any, error) {
				if err := need("name", *name, "jwt-alg", *alg, "pubkey-file", *pub, "url", *u); err != nil {
					return "", "", nil, nil, err
				}
				k, err := os.ReadFile(*pub)
				if err != nil {
					return "", "", nil, nil, fmt.Errorf("pubkey file: %w", err)
				}
				return http.MethodPost, "/admin/policies/add-external-rule", nil,
					map[string]string{"name": *name, "jwt_alg": *alg, "pubkey": strings.TrimSpace(string(k)), "url": *u}, nil
			}
		}},
		plain("list-rules", "list rules", "/admin/policies/list-rules"),
		idVerb("get-rule", "show one rule: -id", http.MethodGet, "/admin/policies/get-rule/", "id"),
		idVerb("delete-rule", "delete a rule no policy holds: -id", http.MethodDelete, "/admin/policies/delete-rule/", "id"),
		{"assign", "assign a policy to a user: -user -policy (\"\" clears)", func(fs *flag.FlagSet) func() (string, string, url.Values, any, error) {
			user := fs.String("user", "", "user_id")
			pol := fs.String("policy", "", "policy_id (empty: no policy)")
			return func() (string, string, url.Values, any, error) {
				return http.MethodPost, "/admin/policies/assign-policy", nil, map[string]string{"user_id": *user, "policy_id": *pol}, need("user", *user)
			}
		}},
		{"generate-api-key", "a further API key for a user: -user", func(fs *flag.FlagSet) func() (string, string, url.Values, any, error) {
			user := fs.String("user", "", "user_id")
			return func() (string, string, url.Values, any, error) {
				return http.MethodGet, "/admin/generate-api-key", url.Values{"user_id": {*user}}, nil, need("user", *user)
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
		method, path, query, body, err := req()
		if err != nil {
			return err
		}
		var raw []byte
		if body != nil {
			if raw, err = json.Marshal(body); err != nil {
				return fmt.Errorf("encode: %w", err)
			}
		}
		cl, ctx, cancel, err := h.client(ctx, *daemonURL, *adminKey)
		if err != nil {
			return err
		}
		defer cancel()
		var out json.RawMessage
		if err := cl.do(ctx, method, path, query, raw, &out); err != nil {
			return err
		}
		return h.printer(c).result(out, func(w io.Writer) {
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
	body := map[string]any{}
	switch {
	case *sizes != "" && (*size != 0 || *count != 0):
		return usagef("give -sizes, or -size with -count")
	case *sizes != "":
		var ns []int
		for _, s := range splitList(*sizes) {
			var n int
			if _, err := fmt.Sscan(s, &n); err != nil {
				return usagef("-sizes: %q is not a number", s)
			}
			ns = append(ns, n)
		}
		body["room_sizes"] = ns
	case *size != 0 && *count != 0:
		body["room_size"], body["count"] = *size, *count
	default:
		return usagef("give -sizes, or -size with -count")
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	cl, ctx, cancel, err := h.client(ctx, *daemonURL, *key)
	if err != nil {
		return err
	}
	defer cancel()
	var out struct {
		RoomUUIDs []string `json:"room_uuids"`
	}
	if err := cl.do(ctx, http.MethodPost, "/batch-create-rooms", nil, raw, &out); err != nil {
		return err
	}
	return h.printer(c).result(out, func(w io.Writer) {
		for _, id := range out.RoomUUIDs {
			fmt.Fprintln(w, id)
		}
	})
}
