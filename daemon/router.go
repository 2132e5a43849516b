package daemon

import (
	"sort"
	"strings"
)

// route is one endpoint. pattern segments starting with ':' are parameters.
type route struct {
	method  string
	pattern string
	segs    []string
	handle  func(*reqCtx) error
	query   []string // allowed query parameters; any other is rejected
	anyQ    bool     // query strings are ignored (probes with cache-busters)
	class   class    // the budget it takes (see fairshare.go)
	quiet   bool     // access-logged at debug level (probes, scrapes)
}

// Route describes a served endpoint (for documentation and tests).
type Route struct {
	Method  string
	Pattern string // e.g. /bip340/keys/:key_id
}

// routes builds the routing table: DESIGN §2's core endpoints plus the
// operational ones.
func (s *Server) routes() []*route {
	rs := []*route{
		{method: "GET", pattern: "/healthz", handle: s.healthz, anyQ: true, quiet: true},
		{method: "GET", pattern: "/readyz", handle: s.readyz, anyQ: true, quiet: true},
		{method: "GET", pattern: "/metrics", handle: s.metricsHandler, quiet: true},

		{method: "GET", pattern: "/admin/create-user", handle: s.createUser, query: []string{"name", "label"}, class: classShort},
		{method: "DELETE", pattern: "/admin/revoke-api-key", handle: s.revokeAPIKey, class: classShort},
		{method: "DELETE", pattern: "/admin/delete-user", handle: s.deleteUser, query: []string{"user_id"}, class: classShort},
		{method: "GET", pattern: "/admin/list-all-system-keys", handle: s.listAllSystemKeys, class: classShort},
		{method: "GET", pattern: "/admin/generate-api-key", handle: s.generateAPIKey, query: []string{"user_id"}, class: classShort},
		{method: "POST", pattern: "/admin/policies/create-policy", handle: s.createPolicy, class: classShort},
		{method: "GET", pattern: "/admin/policies/list-policies", handle: s.listPolicies, class: classShort},
		{method: "GET", pattern: "/admin/policies/get-policy/:policy_id", handle: s.getPolicy, class: classShort},
		{method: "DELETE", pattern: "/admin/policies/delete-policy/:policy_id", handle: s.deletePolicy, class: classShort},
		{method: "POST", pattern: "/admin/policies/add-rule", handle: s.addRule, class: classShort},
		{method: "POST", pattern: "/admin/policies/remove-rule", handle: s.removeRule, class: classShort},
		{method: "POST", pattern: "/admin/policies/create-rule", handle: s.createRule, class: classShort},
		{method: "POST", pattern: "/admin/policies/add-external-rule", handle: s.addExternalRule, class: classShort},
		{method: "GET", pattern: "/admin/policies/list-rules", handle: s.listRules, class: classShort},
		{method: "GET", pattern: "/admin/policies/get-rule/:rule_id", handle: s.getRule, class: classShort},
		{method: "DELETE", pattern: "/admin/policies/delete-rule/:rule_id", handle: s.deleteRule, class: classShort},
		{method: "POST", pattern: "/admin/policies/assign-policy", handle: s.assignPolicy, class: classShort},
		{method: "POST", pattern: "/batch-create-rooms", handle: s.batchCreateRooms, class: classShort},

		{method: "POST", pattern: "/create-room", handle: s.createRoom, class: classShort},
		{method: "GET", pattern: "/bip340/create", handle: s.createKey, class: classShort},
		{method: "GET", pattern: "/bip340/import/import-key", handle: s.getImportKey, query: []string{"kem"}},
		{method: "POST", pattern: "/bip340/import/key-importer", handle: s.importKey, class: classCeremony},
		{method: "POST", pattern: "/bip340/import/import-key-share-recipient", handle: s.importRecipient, class: classCeremony},
		{method: "POST", pattern: "/bip340/sign", handle: s.sign, class: classCeremony},
		{method: "POST", pattern: "/bip340/batch-sign", handle: s.batchSign, class: classCeremony},
		{method: "POST", pattern: "/bip340/derive-tweak-pubkey", handle: s.deriveTweakPubkey, class: classShort},
		{method: "GET", pattern: "/bip340/export-id/:key_id", handle: s.exportID, class: classShort},
		{method: "GET", pattern: "/bip340/keys/:key_id", handle: s.getKey, class: classShort},
		{method: "DELETE", pattern: "/bip340/delete-key-share/:key_id", handle: s.deleteKeyShare, class: classShort},
		{method: "GET", pattern: "/bip340/recovery-data/:key_id", handle: s.recoveryData, class: classShort},
		{method: "POST", pattern: "/bip340/recover", handle: s.recover, class: classShort},
		{method: "POST", pattern: "/bip340/refresh", handle: s.refresh, class: classCeremony},
		{method: "POST", pattern: "/bip340/reshare/existing-party", handle: s.reshareExisting, class: classCeremony},
		{method: "POST", pattern: "/bip340/reshare/new-party", handle: s.reshareNew, class: classCeremony},
	}
	for _, r := range rs {
		r.segs = strings.Split(strings.TrimPrefix(r.pattern, "/"), "/")
	}
	return rs
}

// Routes lists every served method and pattern.
func (s *Server) Routes() []Route {
	out := make([]Route, 0, len(s.table))
	for _, r := range s.table {
		out = append(out, Route{Method: r.method, Pattern: r.pattern})
	}
	return out
}

// checkPath refuses a raw request path that a proxy and this router could
// read differently: anything percent-encoded (no route needs it; %2f and
// %2e are how a parameter escapes its segment), empty, "." and ".."
// segments, backslashes and control bytes. Nothing is ever normalised.
func checkPath(raw string) error {
	if !strings.HasPrefix(raw, "/") {
		return badRequest("the request target must be an absolute path")
	}
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '%':
			return badRequest("percent-encoded characters are not accepted in the path")
		case c == '\\' || c <= ' ' || c == 0x7f:
			return badRequest("the path holds a backslash, a space or a control character")
		}
	}
	if raw == "/" {
		return nil
	}
	for _, seg := range strings.Split(raw[1:], "/") {
		switch seg {
		case "":
			return badRequest("empty path segments (double or trailing slashes) are not accepted")
		case ".", "..":
			return badRequest("dot segments are not accepted in the path")
		}
	}
	return nil
}

// rawPath is the request target as sent, without its query: fasthttp's
// Path() is normalised (%2f decoded, .. resolved), which is exactly what a
// parameter must not be able to use to reach another route.
func rawPath(uri []byte) string {
	p := string(uri)
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	return p
}

// match finds the route for method and path. When the path exists under
// other methods only, allow lists them.
func (s *Server) match(method, path string) (rt *route, param string, allow []string) {
	if !strings.HasPrefix(path, "/") {
		return nil, "", nil
	}
	segs := strings.Split(path[1:], "/")
	for _, r := range s.table {
		p, ok := matchSegs(r.segs, segs)
		if !ok {
			continue
		}
		if r.method == method {
			return r, p, nil
		}
		allow = append(allow, r.method)
	}
	sort.Strings(allow)
	return nil, "", allow
}

// matchSegs matches path segments against a pattern; a parameter matches
// one non-empty segment.
func matchSegs(pattern, segs []string) (string, bool) {
	if len(pattern) != len(segs) {
		return "", false
	}
	param := ""
	for i, p := range pattern {
		if strings.HasPrefix(p, ":") {
			if segs[i] == "" {
				return "", false
			}
			param = segs[i]
			continue
		}
		if p != segs[i] {
			return "", false
		}
	}
	return param, true
}
