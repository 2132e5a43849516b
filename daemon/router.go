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
	limited bool     // counts against server.max_concurrent_requests
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
		{method: "GET", pattern: "/healthz", handle: s.healthz, quiet: true},
		{method: "GET", pattern: "/readyz", handle: s.readyz, quiet: true},
		{method: "GET", pattern: "/metrics", handle: s.metricsHandler, quiet: true},

		{method: "GET", pattern: "/admin/create-user", handle: s.createUser, query: []string{"name"}, limited: true},
		{method: "DELETE", pattern: "/admin/revoke-api-key", handle: s.revokeAPIKey, limited: true},
		{method: "DELETE", pattern: "/admin/delete-user", handle: s.deleteUser, query: []string{"user_id"}, limited: true},
		{method: "GET", pattern: "/admin/list-all-system-keys", handle: s.listAllSystemKeys, limited: true},

		{method: "POST", pattern: "/create-room", handle: s.createRoom, limited: true},
		{method: "GET", pattern: "/bip340/create", handle: s.createKey, limited: true},
		{method: "POST", pattern: "/bip340/import/key-importer", handle: s.importKey, limited: true},
		{method: "POST", pattern: "/bip340/import/import-key-share-recipient", handle: s.importRecipient, limited: true},
		{method: "POST", pattern: "/bip340/sign", handle: s.sign, limited: true},
		{method: "POST", pattern: "/bip340/derive-tweak-pubkey", handle: s.deriveTweakPubkey, limited: true},
		{method: "GET", pattern: "/bip340/export-id/:key_id", handle: s.exportID, limited: true},
		{method: "GET", pattern: "/bip340/keys/:key_id", handle: s.getKey, limited: true},
		{method: "DELETE", pattern: "/bip340/delete-key-share/:key_id", handle: s.deleteKeyShare, limited: true},
		{method: "GET", pattern: "/bip340/recovery-data/:key_id", handle: s.recoveryData, limited: true},
		{method: "POST", pattern: "/bip340/recover", handle: s.recover, limited: true},
		{method: "POST", pattern: "/bip340/refresh", handle: s.refresh, limited: true},
		{method: "POST", pattern: "/bip340/reshare/existing-party", handle: s.reshareExisting, limited: true},
		{method: "POST", pattern: "/bip340/reshare/new-party", handle: s.reshareNew, limited: true},
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
