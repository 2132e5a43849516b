// Package vaulttest is a Vault-API-compatible HTTP server for tests. It
// implements, with Vault's real paths, status codes and JSON shapes, what
// quorumd's policy package and its contract tests use:
//
//   - KV v2: <mount>/data/<path> GET (?version=), PUT/POST (options.cas),
//     DELETE (soft delete of the latest version); <mount>/metadata/<path>
//     GET, LIST (the LIST method or GET ?list=true) and DELETE;
//   - AppRole: auth/<mount>/login, role/<name> (write, delete),
//     role/<name>/role-id (read), role/<name>/secret-id (write);
//   - tokens: auth/token/create, lookup-self, renew-self, revoke-self,
//     revoke; TTL and max TTL run on the wall clock;
//   - sys/health with its status-code query parameters (sealed 503,
//     standby 429, ...), sys/mounts/<path>, sys/auth/<path>,
//     sys/policies/acl/<name> (HCL ACL policies, enforced per request with
//     Vault's path-priority rules and the built-in default policy);
//   - OpenBao's answer to a path under no mount (SetOpenBao): 403 to a
//     non-root token where Vault says 404.
//
// Requests need X-Vault-Token except sys/health and logins; an unknown or
// expired token gets 403 {"errors":["permission denied"]}, a denial by
// policy 403 with Vault's multi-error text. Faults can be injected per
// path (status, delay, a number of times), and the server can be sealed,
// put in standby, stopped (connections refused) and started again on the
// same address.
package vaulttest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quorumd/quorumd/internal/uuid"
)

// Fault alters the answers to matching requests.
type Fault struct {
	// Method matches the HTTP method ("" = any; "LIST" also matches
	// GET ?list=true).
	Method string
	// Path matches request paths (after /v1/) by prefix; "" matches all.
	Path string
	// Delay is slept before answering (or before the injected status).
	Delay time.Duration
	// Status, if non-zero, is answered instead of handling the request,
	// with Errors (or a default text for the status) as the error list.
	Status int
	Errors []string
	// Times limits the fault to the next Times matching requests (0 =
	// until removed).
	Times int
}

type faultEntry struct {
	id int
	Fault
	left int
}

// Server is a running test server. All methods are safe for concurrent use.
type Server struct {
	mu      sync.Mutex
	addr    string
	ln      net.Listener
	hs      *http.Server
	running bool

	rootToken  string
	kv         map[string]*kvMount      // mount path (no slashes at the ends)
	approle    map[string]*approleMount // auth mount path
	policies   map[string]*aclPolicy
	tokens     map[string]*token
	accessors  map[string]string // accessor → token id
	sealed     bool
	standby    bool
	openBao    bool
	faults     []*faultEntry
	nextFault  int
	counts     map[string]int // "METHOD path" → requests seen
	requestSeq int
}

// New starts a server on 127.0.0.1 with a root token and, like a dev
// server, a KV v2 engine mounted at "secret".
func New() (*Server, error) {
	s := &Server{
		rootToken: "hvs." + randHex(12),
		kv:        map[string]*kvMount{"secret": newKV()},
		approle:   map[string]*approleMount{},
		policies:  map[string]*aclPolicy{},
		tokens:    map[string]*token{},
		accessors: map[string]string{},
		counts:    map[string]int{},
	}
	dp, err := parseACL("default", defaultPolicy)
	if err != nil {
		return nil, err
	}
	s.policies["default"] = dp
	root := &token{id: s.rootToken, accessor: randHex(12), policies: []string{"root"}, created: time.Now(), path: "auth/token/root"}
	s.tokens[root.id] = root
	s.accessors[root.accessor] = root.id
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	return s, nil
}

func (s *Server) serve(ln net.Listener) {
	hs := &http.Server{Handler: http.HandlerFunc(s.handle), ReadHeaderTimeout: 10 * time.Second}
	s.ln, s.hs, s.running = ln, hs, true
	go hs.Serve(ln) //nolint:errcheck // returns ErrServerClosed on Stop
}

// Addr is the server's base URL, e.g. "http://127.0.0.1:38123".
func (s *Server) Addr() string { return "http://" + s.addr }

// RootToken is a token with the root policy (never expires).
func (s *Server) RootToken() string { return s.rootToken }

// Close stops the server for good.
func (s *Server) Close() { s.Stop() }

// Stop closes the listener and every connection: clients get connection
// refused until Start.
func (s *Server) Stop() {
	s.mu.Lock()
	hs := s.hs
	s.running = false
	s.mu.Unlock()
	if hs != nil {
		hs.Close()
	}
}

// Start listens again on the same address after Stop, keeping all state.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return nil
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may linger briefly after close
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	s.serve(ln)
	return nil
}

// Seal makes every request but sys/health answer 503 "Vault is sealed".
func (s *Server) Seal() { s.mu.Lock(); s.sealed = true; s.mu.Unlock() }

// Unseal reverts Seal.
func (s *Server) Unseal() { s.mu.Lock(); s.sealed = false; s.mu.Unlock() }

// SetStandby makes sys/health report a standby node (429 by default);
// requests are still served, as a standby forwards them.
func (s *Server) SetStandby(v bool) { s.mu.Lock(); s.standby = v; s.mu.Unlock() }

// SetOpenBao makes the server answer as OpenBao does where it differs from
// Vault: a request for a path under no mount gets 403 "permission denied"
// (not 404 "no handler for route") unless the token is root.
func (s *Server) SetOpenBao(v bool) { s.mu.Lock(); s.openBao = v; s.mu.Unlock() }

// AddFault installs f and returns a function removing it.
func (s *Server) AddFault(f Fault) (remove func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextFault++
	fe := &faultEntry{id: s.nextFault, Fault: f, left: f.Times}
	s.faults = append(s.faults, fe)
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.faults = slices.DeleteFunc(s.faults, func(x *faultEntry) bool { return x.id == fe.id })
	}
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() { s.mu.Lock(); s.faults = nil; s.mu.Unlock() }

// Count returns how many requests with method (""=any; "LIST" for list
// requests) reached a path starting with prefix (after /v1/).
func (s *Server) Count(method, prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, c := range s.counts {
		m, p, _ := strings.Cut(k, " ")
		if (method == "" || m == method) && strings.HasPrefix(p, prefix) {
			n += c
		}
	}
	return n
}

// RevokeToken invalidates a token at once (as `vault token revoke`).
func (s *Server) RevokeToken(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[id]; ok {
		delete(s.accessors, t.accessor)
		delete(s.tokens, id)
	}
}

// ---- HTTP plumbing ----

type request struct {
	w      http.ResponseWriter
	r      *http.Request
	method string // LIST for list requests
	path   string // after /v1/, no leading slash
	body   map[string]any
	tok    *token
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/v1/") {
		writeErrors(w, http.StatusNotFound, []string{})
		return
	}
	q := &request{w: w, r: r, method: r.Method, path: strings.TrimPrefix(r.URL.Path, "/v1/")}
	if r.Method == http.MethodGet && r.URL.Query().Get("list") == "true" {
		q.method = "LIST"
	}
	if q.method == "LIST" && !strings.HasSuffix(q.path, "/") {
		q.path += "/" // as Vault does before routing and ACL checks
	}

	s.mu.Lock()
	s.counts[q.method+" "+q.path]++
	var delay time.Duration
	var status int
	var errs []string
	for _, f := range s.faults {
		if f.Method != "" && f.Method != q.method || !strings.HasPrefix(q.path, f.Path) {
			continue
		}
		if f.Times > 0 {
			if f.left == 0 {
				continue
			}
			f.left--
		}
		delay += f.Delay
		if f.Status != 0 && status == 0 {
			status, errs = f.Status, f.Errors
		}
	}
	s.mu.Unlock()

	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if status != 0 {
		if errs == nil {
			errs = defaultErrors(status)
		}
		writeErrors(w, status, errs)
		return
	}
	if r.Body != nil {
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			writeErrors(w, http.StatusBadRequest, []string{"failed to read request body"})
			return
		}
		if len(strings.TrimSpace(string(b))) > 0 {
			if err := json.Unmarshal(b, &q.body); err != nil {
				writeErrors(w, http.StatusBadRequest, []string{"failed to parse JSON input: " + err.Error()})
				return
			}
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if q.path == "sys/health" && (q.method == http.MethodGet || q.method == http.MethodHead) {
		s.health(q)
		return
	}
	if s.sealed {
		writeErrors(w, http.StatusServiceUnavailable, []string{"Vault is sealed"})
		return
	}
	if m, rest, ok := s.approleRoute(q.path); ok && rest == "login" {
		if q.method != http.MethodPost && q.method != http.MethodPut {
			writeErrors(w, http.StatusMethodNotAllowed, []string{"unsupported operation"})
			return
		}
		s.approleLogin(q, m)
		return
	}
	tok := s.lookupToken(r)
	if tok == nil {
		writeErrors(w, http.StatusForbidden, []string{"permission denied"})
		return
	}
	q.tok = tok
	s.route(q)
}

func (s *Server) lookupToken(r *http.Request) *token {
	id := r.Header.Get("X-Vault-Token")
	if id == "" {
		if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
			id = strings.TrimPrefix(a, "Bearer ")
		}
	}
	t, ok := s.tokens[id]
	if !ok {
		return nil
	}
	if t.expired(time.Now()) {
		delete(s.tokens, id)
		delete(s.accessors, t.accessor)
		return nil
	}
	return t
}

// authorize checks capability want ("write" = create or update) for the
// request's token on its path.
func (s *Server) authorize(q *request, want string) bool {
	if slices.Contains(q.tok.policies, "root") {
		return true
	}
	var ps []*aclPolicy
	for _, n := range q.tok.policies {
		if p, ok := s.policies[n]; ok {
			ps = append(ps, p)
		}
	}
	if allowed(ps, q.path, want) {
		return true
	}
	writeErrors(q.w, http.StatusForbidden, []string{"1 error occurred:\n\t* permission denied\n\n"})
	return false
}

// capFor maps the method to the capability Vault checks ("write" when the
// endpoint has no existence check).
func capFor(method string) string {
	switch method {
	case "LIST":
		return "list"
	case http.MethodGet, http.MethodHead:
		return "read"
	case http.MethodDelete:
		return "delete"
	case http.MethodPatch:
		return "patch"
	default:
		return "write"
	}
}

func (s *Server) route(q *request) {
	p := q.path
	switch {
	case strings.HasPrefix(p, "auth/token/"):
		s.tokenRoute(q, strings.TrimPrefix(p, "auth/token/"))
	case strings.HasPrefix(p, "sys/mounts/"):
		if s.authorize(q, capFor(q.method)) {
			s.sysMounts(q, strings.Trim(strings.TrimPrefix(p, "sys/mounts/"), "/"))
		}
	case strings.HasPrefix(p, "sys/auth/"):
		if s.authorize(q, capFor(q.method)) {
			s.sysAuth(q, strings.Trim(strings.TrimPrefix(p, "sys/auth/"), "/"))
		}
	case strings.HasPrefix(p, "sys/policies/acl/"):
		if s.authorize(q, capFor(q.method)) {
			s.sysPolicy(q, strings.TrimPrefix(p, "sys/policies/acl/"))
		}
	default:
		if m, rest, ok := s.approleRoute(p); ok {
			if s.authorize(q, capFor(q.method)) {
				s.approleAdmin(q, m, rest)
			}
			return
		}
		if mount, rest, ok := s.kvRoute(p); ok {
			s.kvHandle(q, mount, rest)
			return
		}
		if s.openBao && !slices.Contains(q.tok.policies, "root") {
			writeErrors(q.w, http.StatusForbidden, []string{"1 error occurred:\n\t* permission denied\n\n"})
			return
		}
		writeErrors(q.w, http.StatusNotFound, []string{fmt.Sprintf("no handler for route %q. route entry not found.", p)})
	}
}

// ---- sys ----

func (s *Server) health(q *request) {
	qs := q.r.URL.Query()
	code := func(name string, def int) int {
		if v := qs.Get(name); v != "" {
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		}
		return def
	}
	status := code("activecode", http.StatusOK)
	switch {
	case s.sealed:
		status = code("sealedcode", http.StatusServiceUnavailable)
	case s.standby && qs.Get("standbyok") != "true":
		status = code("standbycode", http.StatusTooManyRequests)
	}
	body := map[string]any{
		"initialized":                  true,
		"sealed":                       s.sealed,
		"standby":                      s.standby || s.sealed,
		"performance_standby":          false,
		"replication_performance_mode": "disabled",
		"replication_dr_mode":          "disabled",
		"server_time_utc":              time.Now().Unix(),
		"version":                      "1.21.0",
		"enterprise":                   false,
		"echo_duration_ms":             0,
		"clock_skew_ms":                0,
	}
	if !s.sealed {
		body["cluster_name"] = "vaulttest"
		body["cluster_id"] = "00000000-0000-4000-8000-000000000000"
	}
	writeJSON(q.w, status, body)
}

func (s *Server) sysMounts(q *request, path string) {
	switch q.method {
	case http.MethodPost, http.MethodPut:
		if path == "" {
			writeErrors(q.w, http.StatusBadRequest, []string{"missing path"})
			return
		}
		typ, _ := q.body["type"].(string)
		version := ""
		if o, ok := q.body["options"].(map[string]any); ok {
			version, _ = o["version"].(string)
		}
		if typ != "kv" && typ != "kv-v2" || typ == "kv" && version != "2" {
			writeErrors(q.w, http.StatusBadRequest, []string{"vaulttest supports only KV version 2 mounts"})
			return
		}
		if s.mountTaken(path) {
			writeErrors(q.w, http.StatusBadRequest, []string{fmt.Sprintf("path is already in use at %s/", path)})
			return
		}
		s.kv[path] = newKV()
		q.w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		delete(s.kv, path)
		q.w.WriteHeader(http.StatusNoContent)
	default:
		writeErrors(q.w, http.StatusMethodNotAllowed, []string{"unsupported operation"})
	}
}

func (s *Server) mountTaken(path string) bool {
	for m := range s.kv {
		if m == path || strings.HasPrefix(path, m+"/") || strings.HasPrefix(m, path+"/") {
			return true
		}
	}
	return false
}

func (s *Server) sysAuth(q *request, path string) {
	switch q.method {
	case http.MethodPost, http.MethodPut:
		if typ, _ := q.body["type"].(string); typ != "approle" {
			writeErrors(q.w, http.StatusBadRequest, []string{"vaulttest supports only the approle auth method"})
			return
		}
		if _, ok := s.approle[path]; ok || path == "token" {
			writeErrors(q.w, http.StatusBadRequest, []string{fmt.Sprintf("path is already in use at auth/%s/", path)})
			return
		}
		s.approle[path] = &approleMount{roles: map[string]*role{}}
		q.w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		if _, ok := s.approle[path]; ok {
			// Disabling an auth method revokes the tokens it issued.
			for id, t := range s.tokens {
				if strings.HasPrefix(t.path, "auth/"+path+"/") {
					delete(s.accessors, t.accessor)
					delete(s.tokens, id)
				}
			}
			delete(s.approle, path)
		}
		q.w.WriteHeader(http.StatusNoContent)
	default:
		writeErrors(q.w, http.StatusMethodNotAllowed, []string{"unsupported operation"})
	}
}

func (s *Server) sysPolicy(q *request, name string) {
	name = strings.ToLower(strings.Trim(name, "/"))
	switch q.method {
	case http.MethodGet:
		p, ok := s.policies[name]
		if !ok {
			writeErrors(q.w, http.StatusNotFound, []string{})
			return
		}
		writeData(q.w, map[string]any{"name": name, "policy": p.raw})
	case http.MethodPost, http.MethodPut:
		src, _ := q.body["policy"].(string)
		if name == "" || name == "root" || name == "default" && src == "" {
			writeErrors(q.w, http.StatusBadRequest, []string{"invalid policy name or body"})
			return
		}
		p, err := parseACL(name, src)
		if err != nil {
			writeErrors(q.w, http.StatusBadRequest, []string{err.Error()})
			return
		}
		s.policies[name] = p
		q.w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		if name == "default" || name == "root" {
			writeErrors(q.w, http.StatusBadRequest, []string{fmt.Sprintf("cannot delete %q policy", name)})
			return
		}
		delete(s.policies, name)
		q.w.WriteHeader(http.StatusNoContent)
	default:
		writeErrors(q.w, http.StatusMethodNotAllowed, []string{"unsupported operation"})
	}
}

// ---- responses ----

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client may be gone
}

func writeErrors(w http.ResponseWriter, status int, errs []string) {
	if errs == nil {
		errs = []string{}
	}
	writeJSON(w, status, map[string]any{"errors": errs})
}

// envelope is Vault's response body for data and auth answers.
func envelope(data, auth any, warnings []string) map[string]any {
	var warn any
	if len(warnings) > 0 {
		warn = warnings
	}
	return map[string]any{
		"request_id": uuid.New(), "lease_id": "", "renewable": false, "lease_duration": 0,
		"data": data, "wrap_info": nil, "warnings": warn, "auth": auth, "mount_type": "",
	}
}

func writeData(w http.ResponseWriter, data any) {
	writeJSON(w, http.StatusOK, envelope(data, nil, nil))
}

func defaultErrors(status int) []string {
	switch status {
	case http.StatusForbidden:
		return []string{"1 error occurred:\n\t* permission denied\n\n"}
	case http.StatusNotFound:
		return []string{}
	case http.StatusServiceUnavailable:
		return []string{"Vault is sealed"}
	case http.StatusTooManyRequests:
		return []string{"request path \"*\": rate limit quota exceeded"}
	default:
		return []string{strings.ToLower(http.StatusText(status))}
	}
}

// ---- helpers ----

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// parseDuration reads Vault's duration parameters: a number of seconds
// (JSON number or digit string) or a Go duration string.
func parseDuration(v any) (time.Duration, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case float64:
		return time.Duration(x * float64(time.Second)), nil
	case string:
		if x == "" {
			return 0, nil
		}
		if n, err := strconv.ParseInt(x, 10, 64); err == nil {
			return time.Duration(n) * time.Second, nil
		}
		return time.ParseDuration(x)
	default:
		return 0, fmt.Errorf("invalid duration %v", v)
	}
}

// stringList reads a list parameter given as a JSON list or a
// comma-separated string.
func stringList(v any) []string {
	var out []string
	switch x := v.(type) {
	case string:
		for _, s := range strings.Split(x, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
