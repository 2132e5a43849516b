package policy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/policy/vaulttest"
)

// The contract suite runs every test against the embedded file source, the
// in-process Vault-compatible server (always) and a real Vault or OpenBao
// server when QUORUMD_TEST_VAULT_ADDR and QUORUMD_TEST_VAULT_TOKEN (a root
// token, e.g. of a dev server) are set. On a real server each test mounts
// a fresh KV v2 engine and an AppRole auth method under unique paths,
// writes the daemon policy of configs/vault-policy.hcl adapted to them,
// and removes all of it afterwards.
const (
	envVaultAddr   = "QUORUMD_TEST_VAULT_ADDR"
	envVaultToken  = "QUORUMD_TEST_VAULT_TOKEN"
	envVaultCACert = "QUORUMD_TEST_VAULT_CACERT"
)

// vaultTarget is a server the suite can run against.
type vaultTarget struct {
	name      string
	newServer func(t *testing.T) (addr, root string, vt *vaulttest.Server)
}

func vaultTargets(t *testing.T) []vaultTarget {
	ts := []vaultTarget{{name: "vaulttest", newServer: func(t *testing.T) (string, string, *vaulttest.Server) {
		s, err := vaulttest.New()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s.Addr(), s.RootToken(), s
	}}}
	addr, tok := os.Getenv(envVaultAddr), os.Getenv(envVaultToken)
	if addr != "" && tok != "" {
		ts = append(ts, vaultTarget{name: "vault", newServer: func(*testing.T) (string, string, *vaulttest.Server) {
			return addr, tok, nil
		}})
	}
	return ts
}

// TestRealVault reports whether the suite also runs against a real server.
func TestRealVault(t *testing.T) {
	addr, tok := os.Getenv(envVaultAddr), os.Getenv(envVaultToken)
	if addr == "" || tok == "" {
		t.Skipf("contract suite against a real Vault/OpenBao skipped: set %s and %s (root token of a dev server; %s for a CA file) to run it; see docs/vault.md",
			envVaultAddr, envVaultToken, envVaultCACert)
	}
	c, err := api.NewClient(testClientConfig(t, addr))
	if err != nil {
		t.Fatal(err)
	}
	h, err := c.Sys().Health()
	if err != nil || h.Sealed || !h.Initialized {
		t.Fatalf("%s is not usable: %+v %v", addr, h, err)
	}
	t.Logf("contract suite runs against %s (version %s) as target \"vault\"", addr, h.Version)
}

// vaultEnv is one isolated set-up on a server: a fresh KV v2 mount, an
// AppRole mount, the daemon ACL policy and a per-test deny policy, reached
// through a proxy that can count, delay and refuse requests.
type vaultEnv struct {
	target     string
	vt         *vaulttest.Server // nil on a real server
	root       *api.Client       // root token, direct to the server
	proxy      *proxy
	mount      string
	prefix     string
	approle    string
	daemonACL  string
	denyACL    string
	dir        string
	realServer bool
}

func newVaultEnv(t *testing.T, target vaultTarget) *vaultEnv {
	t.Helper()
	addr, rootTok, vt := target.newServer(t)
	id := randID()
	e := &vaultEnv{
		target: target.name, vt: vt, realServer: vt == nil,
		mount: "quorumd-test-" + id, prefix: "quorumd", approle: "approle-qd-" + id,
		daemonACL: "quorumd-test-" + id, denyACL: "quorumd-test-deny-" + id,
		dir: t.TempDir(),
	}
	c, err := api.NewClient(testClientConfig(t, addr))
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(rootTok)
	e.root = c
	e.proxy = newProxy(t, addr)
	ctx := context.Background()

	e.write(t, "sys/mounts/"+e.mount, map[string]any{"type": "kv", "options": map[string]any{"version": "2"}})
	t.Cleanup(func() { e.root.Logical().Delete("sys/mounts/" + e.mount) })
	e.write(t, "sys/auth/"+e.approle, map[string]any{"type": "approle"})
	t.Cleanup(func() { e.root.Logical().Delete("sys/auth/" + e.approle) })

	hcl, err := os.ReadFile(filepath.Join(repoRoot(t), "configs", "vault-policy.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	acl := strings.NewReplacer(`"secret/data/quorumd/`, `"`+e.mount+`/data/`+e.prefix+`/`,
		`"secret/metadata/quorumd/`, `"`+e.mount+`/metadata/`+e.prefix+`/`).Replace(string(hcl))
	if strings.Contains(acl, `path "secret/`) {
		t.Fatal("configs/vault-policy.hcl: a path was not adapted to the test mount")
	}
	e.write(t, "sys/policies/acl/"+e.daemonACL, map[string]any{"policy": acl})
	t.Cleanup(func() { e.root.Logical().Delete("sys/policies/acl/" + e.daemonACL) })
	e.deny(t)
	t.Cleanup(func() { e.root.Logical().Delete("sys/policies/acl/" + e.denyACL) })

	// A fresh KV v2 mount on a real server may answer errors for a moment
	// while it initialises: wait until a write succeeds.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := e.root.Logical().WriteWithContext(ctx, e.mount+"/data/probe", map[string]any{"data": map[string]any{"ok": true}})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("KV mount %s not ready: %v", e.mount, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return e
}

func (e *vaultEnv) write(t *testing.T, path string, data map[string]any) *api.Secret {
	t.Helper()
	s, err := e.root.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("vault write %s: %v", path, err)
	}
	return s
}

// deny replaces the per-test deny policy with "deny" rules on the given
// paths (relative to <mount>/data/<prefix>/); none installs a harmless rule.
func (e *vaultEnv) deny(t *testing.T, rel ...string) {
	t.Helper()
	var b strings.Builder
	b.WriteString(`path "` + e.mount + `/data/unused-by-quorumd" { capabilities = ["deny"] }` + "\n")
	for _, r := range rel {
		b.WriteString(`path "` + e.mount + `/data/` + e.prefix + `/` + r + `" { capabilities = ["deny"] }` + "\n")
	}
	e.write(t, "sys/policies/acl/"+e.denyACL, map[string]any{"policy": b.String()})
}

// newToken creates a token carrying the daemon and deny policies.
func (e *vaultEnv) newToken(t *testing.T, ttl, maxTTL string, renewable bool) string {
	t.Helper()
	body := map[string]any{"policies": []string{e.daemonACL, e.denyACL}, "ttl": ttl, "renewable": renewable, "no_default_policy": true}
	if maxTTL != "" {
		body["explicit_max_ttl"] = maxTTL
	}
	s := e.write(t, "auth/token/create", body)
	tok := s.Auth.ClientToken
	t.Cleanup(func() { e.root.Logical().Write("auth/token/revoke", map[string]any{"token": tok}) })
	return tok
}

func (e *vaultEnv) config(t *testing.T) VaultConfig {
	cfg := DefaultVaultConfig()
	cfg.Address = e.proxy.URL()
	cfg.Mount, cfg.Prefix = e.mount, e.prefix
	cfg.Timeout = 2 * time.Second
	if ca := os.Getenv(envVaultCACert); ca != "" && e.realServer {
		cfg.CACertFile = ca
	}
	return cfg
}

func (e *vaultEnv) file(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tokenSource opens a VaultSource with token auth through a token file.
func (e *vaultEnv) tokenSource(t *testing.T, ttl, maxTTL string, tweak func(*VaultConfig)) (*VaultSource, string) {
	t.Helper()
	tok := e.newToken(t, ttl, maxTTL, true)
	cfg := e.config(t)
	cfg.Auth = VaultAuthConfig{Method: "token", TokenFile: e.file(t, "token-"+randID(), tok)}
	if tweak != nil {
		tweak(&cfg)
	}
	v, err := OpenVault(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open vault (token): %v", err)
	}
	t.Cleanup(func() { v.Close() })
	return v, cfg.Auth.TokenFile
}

// approle creates a role with the daemon and deny policies and returns
// files holding its role_id and a fresh secret_id.
func (e *vaultEnv) approleCreds(t *testing.T, ttl, maxTTL string) (roleIDFile, secretIDFile string) {
	t.Helper()
	name := "quorumd-" + randID()
	e.write(t, "auth/"+e.approle+"/role/"+name, map[string]any{
		"token_policies": []string{e.daemonACL, e.denyACL}, "token_ttl": ttl, "token_max_ttl": maxTTL,
		"token_no_default_policy": true,
	})
	rs, err := e.root.Logical().Read("auth/" + e.approle + "/role/" + name + "/role-id")
	if err != nil || rs == nil {
		t.Fatalf("read role-id: %v", err)
	}
	ss := e.write(t, "auth/"+e.approle+"/role/"+name+"/secret-id", map[string]any{})
	return e.file(t, "role-id-"+name, rs.Data["role_id"].(string)), e.file(t, "secret-id-"+name, ss.Data["secret_id"].(string))
}

func (e *vaultEnv) approleSource(t *testing.T, ttl, maxTTL string, tweak func(*VaultConfig)) *VaultSource {
	t.Helper()
	roleFile, secretFile := e.approleCreds(t, ttl, maxTTL)
	cfg := e.config(t)
	cfg.Auth = VaultAuthConfig{Method: "approle", AppRoleMount: e.approle, RoleIDFile: roleFile, SecretIDFile: secretFile}
	if tweak != nil {
		tweak(&cfg)
	}
	v, err := OpenVault(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open vault (approle): %v", err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// adminSource is an operator's source: root token, same layout.
func (e *vaultEnv) adminSource(t *testing.T) *VaultSource {
	t.Helper()
	cfg := e.config(t)
	cfg.Address = e.root.Address()
	cfg.Auth = VaultAuthConfig{Method: "token", Token: e.root.Token()}
	v, err := OpenVault(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open vault (admin): %v", err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// writeRaw writes a KV v2 record bypassing the source's validation.
func (e *vaultEnv) writeRaw(t *testing.T, rel string, data map[string]any) {
	t.Helper()
	e.write(t, e.mount+"/data/"+e.prefix+"/"+rel, map[string]any{"data": data})
}

// ---- proxy ----

// proxy is an HTTP reverse proxy in front of a server: it counts requests
// per path, delays matching requests and can refuse connections.
type proxy struct {
	t  *testing.T
	rp *httputil.ReverseProxy

	mu     sync.Mutex
	addr   string
	srv    *http.Server
	counts map[string]int
	delays map[string]time.Duration
}

func newProxy(t *testing.T, target string) *proxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, counts: map[string]int{}, delays: map[string]time.Duration{}}
	p.rp = httputil.NewSingleHostReverseProxy(u)
	p.rp.ErrorLog = log.New(io.Discard, "", 0) // cancelled and refused requests are expected
	if u.Scheme == "https" {
		p.rp.Transport = testClientConfig(t, target).HttpClient.Transport
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.Down)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.srv = &http.Server{Handler: http.HandlerFunc(p.handle)}
	go p.srv.Serve(ln)
}

func (p *proxy) handle(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/v1/")
	method := r.Method
	if method == http.MethodGet && r.URL.Query().Get("list") == "true" {
		method = "LIST"
	}
	p.mu.Lock()
	p.counts[method+" "+path]++
	var d time.Duration
	for pre, dd := range p.delays {
		if strings.HasPrefix(path, pre) {
			d += dd
		}
	}
	p.mu.Unlock()
	if d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	p.rp.ServeHTTP(w, r)
}

func (p *proxy) URL() string { return "http://" + p.addr }

// Down closes the listener and all connections (connection refused).
func (p *proxy) Down() {
	p.mu.Lock()
	srv := p.srv
	p.srv = nil
	p.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Up listens again on the same address.
func (p *proxy) Up() {
	p.t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("proxy up: %v", err)
	}
	p.mu.Lock()
	p.serve(ln)
	p.mu.Unlock()
}

// Count returns the requests seen with method on paths starting with
// prefix (after /v1/).
func (p *proxy) Count(method, prefix string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for k, c := range p.counts {
		m, path, _ := strings.Cut(k, " ")
		if m == method && strings.HasPrefix(path, prefix) {
			n += c
		}
	}
	return n
}

// Delay delays requests on paths starting with prefix.
func (p *proxy) Delay(prefix string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d == 0 {
		delete(p.delays, prefix)
	} else {
		p.delays[prefix] = d
	}
}

// ---- helpers ----

// testClientConfig is a vault/api config for the test's own calls, trusting
// QUORUMD_TEST_VAULT_CACERT when set.
func testClientConfig(t *testing.T, addr string) *api.Config {
	t.Helper()
	conf := api.DefaultConfig()
	if conf.Error != nil {
		t.Fatal(conf.Error)
	}
	conf.Address, conf.Timeout, conf.MaxRetries = addr, 10*time.Second, 0
	if ca := os.Getenv(envVaultCACert); ca != "" {
		if err := conf.ConfigureTLS(&api.TLSConfig{CACert: ca}); err != nil {
			t.Fatal(err)
		}
	}
	return conf
}

// fakeClock drives the Authorizer's TTLs without sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func randID() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// repoRoot is the module root.
func repoRoot(t testing.TB) string { return testkit.ModuleRoot(t) }

// errType returns the err_type of err ("" if it is not an *Error).
func errType(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Type
	}
	return ""
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
