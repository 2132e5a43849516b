package vaulttest

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"
)

// aclPolicy is a parsed Vault ACL policy: path patterns with capabilities.
type aclPolicy struct {
	name  string
	raw   string
	rules []aclRule
}

type aclRule struct {
	pattern string
	caps    map[string]bool
}

var knownCaps = map[string]bool{
	"create": true, "read": true, "update": true, "patch": true, "delete": true,
	"list": true, "sudo": true, "deny": true, "subscribe": true, "recover": true,
}

// parseACL parses the HCL policy language subset Vault's daemon policies
// use: top-level `path "<pattern>" { capabilities = [...] }` blocks, where
// a pattern may end in "*" (prefix glob) and contain "+" (one segment).
func parseACL(name, src string) (*aclPolicy, error) {
	f, err := hcl.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("failed to parse policy: %w", err)
	}
	list, ok := f.Node.(*ast.ObjectList)
	if !ok {
		return nil, fmt.Errorf("failed to parse policy: does not contain a root object")
	}
	for _, item := range list.Items {
		k := item.Keys[0].Token.Value()
		if s, _ := k.(string); s != "path" && s != "name" {
			return nil, fmt.Errorf("failed to parse policy: invalid key %q", s)
		}
	}
	p := &aclPolicy{name: name, raw: src}
	for _, item := range list.Filter("path").Items {
		if len(item.Keys) != 1 {
			return nil, fmt.Errorf("failed to parse policy: path block needs exactly one pattern")
		}
		pattern, _ := item.Keys[0].Token.Value().(string)
		var body struct {
			Capabilities []string `hcl:"capabilities"`
		}
		if err := hcl.DecodeObject(&body, item.Val); err != nil {
			return nil, fmt.Errorf("failed to parse policy: path %q: %w", pattern, err)
		}
		r := aclRule{pattern: strings.TrimPrefix(pattern, "/"), caps: map[string]bool{}}
		for _, c := range body.Capabilities {
			if !knownCaps[c] {
				return nil, fmt.Errorf("failed to parse policy: path %q: invalid capability %q", pattern, c)
			}
			r.caps[c] = true
		}
		p.rules = append(p.rules, r)
	}
	return p, nil
}

// allowed reports whether the union of policies grants capability want on
// path, following Vault's rules: capabilities of identical patterns are
// merged (deny wins), then the most specific matching pattern decides.
func allowed(policies []*aclPolicy, path, want string) bool {
	merged := map[string]map[string]bool{}
	for _, p := range policies {
		for _, r := range p.rules {
			m := merged[r.pattern]
			if m == nil {
				m = map[string]bool{}
				merged[r.pattern] = m
			}
			for c := range r.caps {
				m[c] = true
			}
		}
	}
	best := ""
	found := false
	for pat := range merged {
		if !patternMatch(pat, path) {
			continue
		}
		if !found || higherPriority(pat, best) {
			best, found = pat, true
		}
	}
	if !found {
		return false
	}
	caps := merged[best]
	if caps["deny"] {
		return false
	}
	if want == "write" { // create-or-update when existence is not checked
		return caps["create"] || caps["update"]
	}
	return caps[want]
}

var (
	patternMu    sync.Mutex
	patternCache = map[string]*regexp.Regexp{}
)

func patternMatch(pat, path string) bool {
	patternMu.Lock()
	re, ok := patternCache[pat]
	patternMu.Unlock()
	if !ok {
		var b strings.Builder
		b.WriteString("^")
		body := strings.TrimSuffix(pat, "*")
		for i, seg := range strings.Split(body, "/") {
			if i > 0 {
				b.WriteString("/")
			}
			if seg == "+" {
				b.WriteString("[^/]+")
			} else {
				b.WriteString(regexp.QuoteMeta(seg))
			}
		}
		if strings.HasSuffix(pat, "*") {
			b.WriteString(".*")
		}
		b.WriteString("$")
		re = regexp.MustCompile(b.String())
		patternMu.Lock()
		patternCache[pat] = re
		patternMu.Unlock()
	}
	return re.MatchString(path)
}

// higherPriority reports whether p1 beats p2 (Vault's documented order):
// the later the first wildcard, the higher; a non-glob beats a glob; fewer
// "+" segments win; longer wins; lexicographically larger wins.
func higherPriority(p1, p2 string) bool {
	w1, w2 := firstWildcard(p1), firstWildcard(p2)
	if w1 != w2 {
		return w1 > w2
	}
	g1, g2 := strings.HasSuffix(p1, "*"), strings.HasSuffix(p2, "*")
	if g1 != g2 {
		return !g1
	}
	c1, c2 := strings.Count(p1, "+"), strings.Count(p2, "+")
	if c1 != c2 {
		return c1 < c2
	}
	if len(p1) != len(p2) {
		return len(p1) > len(p2)
	}
	return p1 > p2
}

func firstWildcard(p string) int {
	i := strings.IndexAny(p, "+*")
	if i < 0 {
		return len(p) + 1
	}
	return i
}

// defaultPolicy is the part of Vault's built-in "default" policy the
// daemon relies on.
const defaultPolicy = `
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self"  { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
path "sys/capabilities-self"  { capabilities = ["update"] }
`
