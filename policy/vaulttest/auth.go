package vaulttest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/quorumd/quorumd/internal/uuid"
)

// systemMaxTTL is Vault's default system lease TTL and max TTL (32 days).
const systemMaxTTL = 768 * time.Hour

type token struct {
	id, accessor string
	policies     []string
	created      time.Time
	ttl          time.Duration // creation TTL; renewals extend by it
	explicitMax  time.Duration
	expires      time.Time // zero: never (root)
	maxExpires   time.Time // zero: none
	renewable    bool
	orphan       bool
	path         string
	meta         map[string]string
}

func (t *token) expired(now time.Time) bool {
	return !t.expires.IsZero() && !now.Before(t.expires)
}

func (t *token) remaining(now time.Time) int {
	if t.expires.IsZero() {
		return 0
	}
	return int(t.expires.Sub(now) / time.Second)
}

// issue creates a token; ttl 0 means the system default, maxTTL 0 the
// system max.
func (s *Server) issue(policies []string, ttl, maxTTL time.Duration, renewable bool, path string, meta map[string]string, orphan bool) *token {
	now := time.Now()
	if ttl <= 0 {
		ttl = systemMaxTTL
	}
	max := maxTTL
	if max <= 0 || max > systemMaxTTL {
		max = systemMaxTTL
	}
	if ttl > max {
		ttl = max
	}
	ps := slices.Clone(policies)
	slices.Sort(ps)
	ps = slices.Compact(ps)
	t := &token{
		id: "hvs." + randHex(12), accessor: randHex(12), policies: ps, created: now,
		ttl: ttl, explicitMax: maxTTL, expires: now.Add(ttl), maxExpires: now.Add(max),
		renewable: renewable, orphan: orphan, path: path, meta: meta,
	}
	s.tokens[t.id] = t
	s.accessors[t.accessor] = t.id
	return t
}

func authBody(t *token, now time.Time) map[string]any {
	var meta any
	if t.meta != nil {
		meta = t.meta
	}
	return map[string]any{
		"client_token": t.id, "accessor": t.accessor,
		"policies": t.policies, "token_policies": t.policies, "identity_policies": nil,
		"metadata": meta, "lease_duration": t.remaining(now), "renewable": t.renewable,
		"entity_id": "", "token_type": "service", "orphan": t.orphan,
		"mfa_requirement": nil, "num_uses": 0,
	}
}

func (s *Server) tokenRoute(q *request, rest string) {
	now := time.Now()
	post := q.method == http.MethodPost || q.method == http.MethodPut
	switch {
	case rest == "lookup-self" && (q.method == http.MethodGet || post):
		if !s.authorize(q, capFor(q.method)) {
			return
		}
		t := q.tok
		var expire any
		if !t.expires.IsZero() {
			expire = t.expires.UTC().Format(time.RFC3339Nano)
		}
		var meta any
		if t.meta != nil {
			meta = t.meta
		}
		writeData(q.w, map[string]any{
			"accessor": t.accessor, "creation_time": t.created.Unix(),
			"creation_ttl": int(t.ttl / time.Second), "display_name": "token", "entity_id": "",
			"expire_time": expire, "explicit_max_ttl": int(t.explicitMax / time.Second),
			"id": t.id, "issue_time": t.created.UTC().Format(time.RFC3339Nano), "meta": meta,
			"num_uses": 0, "orphan": t.orphan, "path": t.path, "policies": t.policies,
			"renewable": t.renewable, "ttl": t.remaining(now), "type": "service",
		})
	case rest == "renew-self" && post:
		if !s.authorize(q, "write") {
			return
		}
		t := q.tok
		if !t.renewable || t.expires.IsZero() {
			writeErrors(q.w, http.StatusBadRequest, []string{"lease is not renewable"})
			return
		}
		inc, err := parseDuration(q.body["increment"])
		if err != nil {
			writeErrors(q.w, http.StatusBadRequest, []string{err.Error()})
			return
		}
		if inc <= 0 {
			inc = t.ttl
		}
		var warnings []string
		exp := now.Add(inc)
		if exp.After(t.maxExpires) {
			exp = t.maxExpires
			warnings = append(warnings, fmt.Sprintf("TTL of %q exceeded the effective max_ttl of %q; TTL value is capped accordingly",
				inc.String(), t.maxExpires.Sub(now).Truncate(time.Second).String()))
		}
		t.expires = exp
		writeJSON(q.w, http.StatusOK, envelope(nil, authBody(t, now), warnings))
	case rest == "revoke-self" && post:
		if !s.authorize(q, "write") {
			return
		}
		delete(s.accessors, q.tok.accessor)
		delete(s.tokens, q.tok.id)
		q.w.WriteHeader(http.StatusNoContent)
	case rest == "revoke" && post:
		if !s.authorize(q, "write") {
			return
		}
		id, _ := q.body["token"].(string)
		if t, ok := s.tokens[id]; ok {
			delete(s.accessors, t.accessor)
			delete(s.tokens, id)
		}
		q.w.WriteHeader(http.StatusNoContent)
	case rest == "create" && post:
		if !s.authorize(q, "write") {
			return
		}
		ttl, err1 := parseDuration(q.body["ttl"])
		maxTTL, err2 := parseDuration(q.body["explicit_max_ttl"])
		if err1 != nil || err2 != nil {
			writeErrors(q.w, http.StatusBadRequest, []string{"invalid ttl"})
			return
		}
		renewable := true
		if r, ok := q.body["renewable"].(bool); ok {
			renewable = r
		}
		ps := stringList(q.body["policies"])
		if len(ps) == 0 {
			ps = slices.Clone(q.tok.policies)
		}
		if nd, _ := q.body["no_default_policy"].(bool); !nd && !slices.Contains(ps, "root") {
			ps = append(ps, "default")
		}
		if !slices.Contains(q.tok.policies, "root") {
			for _, p := range ps {
				if p != "default" && !slices.Contains(q.tok.policies, p) {
					writeErrors(q.w, http.StatusBadRequest, []string{"child policies must be subset of parent"})
					return
				}
			}
		}
		t := s.issue(ps, ttl, maxTTL, renewable, "auth/token/create", nil, false)
		writeJSON(q.w, http.StatusOK, envelope(nil, authBody(t, now), nil))
	default:
		writeErrors(q.w, http.StatusNotFound, []string{fmt.Sprintf("no handler for route %q. route entry not found.", q.path)})
	}
}

// ---- AppRole ----

type approleMount struct {
	roles map[string]*role
}

type role struct {
	name, roleID    string
	policies        []string
	noDefault       bool
	tokenTTL        time.Duration
	tokenMaxTTL     time.Duration
	bindSecretID    bool
	secretIDTTL     time.Duration
	secretIDNumUses int
	secretIDs       map[string]*secretID
}

type secretID struct {
	accessor string
	usesLeft int // -1: unlimited
	expires  time.Time
}

// approleRoute splits "auth/<mount>/<rest>" for an enabled AppRole mount.
func (s *Server) approleRoute(path string) (*approleMount, string, bool) {
	if !strings.HasPrefix(path, "auth/") {
		return nil, "", false
	}
	p := strings.TrimPrefix(path, "auth/")
	for name, m := range s.approle {
		if strings.HasPrefix(p, name+"/") {
			return m, strings.TrimPrefix(p, name+"/"), true
		}
	}
	return nil, "", false
}

func (s *Server) approleLogin(q *request, m *approleMount) {
	invalid := func() {
		writeErrors(q.w, http.StatusBadRequest, []string{"invalid role or secret ID"})
	}
	roleID, _ := q.body["role_id"].(string)
	sid, _ := q.body["secret_id"].(string)
	var r *role
	for _, x := range m.roles {
		if x.roleID == roleID && roleID != "" {
			r = x
		}
	}
	if r == nil {
		invalid()
		return
	}
	now := time.Now()
	if r.bindSecretID {
		e, ok := r.secretIDs[sid]
		if !ok || (!e.expires.IsZero() && now.After(e.expires)) {
			invalid()
			return
		}
		if e.usesLeft > 0 {
			e.usesLeft--
			if e.usesLeft == 0 {
				delete(r.secretIDs, sid)
			}
		}
	}
	ps := slices.Clone(r.policies)
	if !r.noDefault {
		ps = append(ps, "default")
	}
	mountPath := strings.TrimSuffix(strings.TrimPrefix(q.path, "auth/"), "/login")
	t := s.issue(ps, r.tokenTTL, r.tokenMaxTTL, true, "auth/"+mountPath+"/login", map[string]string{"role_name": r.name}, true)
	writeJSON(q.w, http.StatusOK, envelope(nil, authBody(t, now), nil))
}

func (s *Server) approleAdmin(q *request, m *approleMount, rest string) {
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	if len(parts) < 2 || parts[0] != "role" || parts[1] == "" {
		writeErrors(q.w, http.StatusNotFound, []string{fmt.Sprintf("no handler for route %q. route entry not found.", q.path)})
		return
	}
	name := strings.ToLower(parts[1])
	r := m.roles[name]
	switch {
	case len(parts) == 2 && (q.method == http.MethodPost || q.method == http.MethodPut):
		if r == nil {
			r = &role{name: name, roleID: uuid.New(), bindSecretID: true, secretIDs: map[string]*secretID{}}
			m.roles[name] = r
		}
		for _, k := range []string{"token_policies", "policies"} {
			if v, ok := q.body[k]; ok {
				r.policies = stringList(v)
			}
		}
		var err error
		set := func(key string, dst *time.Duration) {
			if v, ok := q.body[key]; ok && err == nil {
				*dst, err = parseDuration(v)
			}
		}
		set("token_ttl", &r.tokenTTL)
		set("token_max_ttl", &r.tokenMaxTTL)
		set("secret_id_ttl", &r.secretIDTTL)
		if err != nil {
			writeErrors(q.w, http.StatusBadRequest, []string{err.Error()})
			return
		}
		if v, ok := q.body["secret_id_num_uses"].(float64); ok {
			r.secretIDNumUses = int(v)
		}
		if v, ok := q.body["bind_secret_id"].(bool); ok {
			r.bindSecretID = v
		}
		if v, ok := q.body["token_no_default_policy"].(bool); ok {
			r.noDefault = v
		}
		q.w.WriteHeader(http.StatusNoContent)
	case len(parts) == 2 && q.method == http.MethodDelete:
		delete(m.roles, name)
		q.w.WriteHeader(http.StatusNoContent)
	case len(parts) == 2 && q.method == http.MethodGet:
		if r == nil {
			writeErrors(q.w, http.StatusNotFound, []string{})
			return
		}
		writeData(q.w, map[string]any{
			"token_policies": r.policies, "token_ttl": int(r.tokenTTL / time.Second),
			"token_max_ttl": int(r.tokenMaxTTL / time.Second), "bind_secret_id": r.bindSecretID,
			"secret_id_num_uses": r.secretIDNumUses, "secret_id_ttl": int(r.secretIDTTL / time.Second),
			"token_no_default_policy": r.noDefault,
		})
	case len(parts) == 3 && parts[2] == "role-id" && q.method == http.MethodGet:
		if r == nil {
			writeErrors(q.w, http.StatusBadRequest, []string{fmt.Sprintf("role %q does not exist", name)})
			return
		}
		writeData(q.w, map[string]any{"role_id": r.roleID})
	case len(parts) == 3 && parts[2] == "secret-id" && (q.method == http.MethodPost || q.method == http.MethodPut):
		if r == nil {
			writeErrors(q.w, http.StatusBadRequest, []string{fmt.Sprintf("role %q does not exist", name)})
			return
		}
		id := uuid.New()
		e := &secretID{accessor: uuid.New(), usesLeft: r.secretIDNumUses}
		if r.secretIDTTL > 0 {
			e.expires = time.Now().Add(r.secretIDTTL)
		}
		r.secretIDs[id] = e
		writeData(q.w, map[string]any{
			"secret_id": id, "secret_id_accessor": e.accessor,
			"secret_id_ttl": int(r.secretIDTTL / time.Second), "secret_id_num_uses": r.secretIDNumUses,
		})
	default:
		writeErrors(q.w, http.StatusMethodNotAllowed, []string{"unsupported operation"})
	}
}
