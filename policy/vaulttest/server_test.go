package vaulttest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
)

func newServer(t *testing.T) *Server {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func client(t *testing.T, s *Server, token string) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: s.Addr(), Timeout: 5 * time.Second, MaxRetries: 0})
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

func status(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// raw performs a request and returns status and decoded body.
func raw(t *testing.T, s *Server, method, path, token string, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, s.Addr()+"/v1/"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s %s: body %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode, out
}

func TestKVv2(t *testing.T) {
	s := newServer(t)
	c := client(t, s, s.RootToken())
	ctx := context.Background()
	kv := c.KVv2("secret")

	if _, err := kv.Get(ctx, "a/b"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("missing: got %v, want ErrSecretNotFound", err)
	}
	code, body := raw(t, s, "GET", "secret/data/a/b", s.RootToken(), "")
	if code != 404 || body["errors"] == nil || len(body["errors"].([]any)) != 0 {
		t.Fatalf("missing raw: %d %v, want 404 {errors:[]}", code, body)
	}
	if _, err := kv.Put(ctx, "a/b", map[string]any{"x": "1"}); err != nil {
		t.Fatal(err)
	}
	sec, err := kv.Get(ctx, "a/b")
	if err != nil || sec.Data["x"] != "1" || sec.VersionMetadata.Version != 1 {
		t.Fatalf("get: %+v %v", sec, err)
	}
	// check-and-set: 0 only when absent, else the current version.
	_, err = c.Logical().Write("secret/data/a/b", map[string]any{"data": map[string]any{"x": "2"}, "options": map[string]any{"cas": 0}})
	if status(err) != 400 || !strings.Contains(err.Error(), "check-and-set parameter did not match the current version") {
		t.Fatalf("cas 0 on existing: %v", err)
	}
	w, err := c.Logical().Write("secret/data/a/b", map[string]any{"data": map[string]any{"x": "2"}, "options": map[string]any{"cas": 1}})
	if err != nil || w.Data["version"].(json.Number).String() != "2" {
		t.Fatalf("cas 1: %v %v", w, err)
	}
	if _, err := c.Logical().Write("secret/data/a/b", map[string]any{"x": "no envelope"}); status(err) != 400 {
		t.Fatalf("write without data: %v", err)
	}
	if _, err := kv.Put(ctx, "a/c/d", map[string]any{"y": true}); err != nil {
		t.Fatal(err)
	}
	// LIST by method and by ?list=true.
	l, err := c.Logical().List("secret/metadata/a")
	if err != nil || l == nil {
		t.Fatalf("list: %v", err)
	}
	if got := l.Data["keys"].([]any); len(got) != 2 || got[0] != "b" || got[1] != "c/" {
		t.Fatalf("list keys %v, want [b c/]", got)
	}
	code, body = raw(t, s, "LIST", "secret/metadata/a/", s.RootToken(), "")
	if code != 200 || len(body["data"].(map[string]any)["keys"].([]any)) != 2 {
		t.Fatalf("LIST method: %d %v", code, body)
	}
	if l, err := c.Logical().List("secret/metadata/none"); err != nil || l != nil {
		t.Fatalf("empty list: %v %v, want nil, nil (404)", l, err)
	}
	// Soft delete: 404 with the metadata in the body.
	if err := kv.Delete(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	code, body = raw(t, s, "GET", "secret/data/a/b", s.RootToken(), "")
	md := body["data"].(map[string]any)["metadata"].(map[string]any)
	if code != 404 || md["deletion_time"] == "" || md["version"].(float64) != 2 {
		t.Fatalf("deleted: %d %v", code, body)
	}
	m, err := kv.GetMetadata(ctx, "a/b")
	if err != nil || m.CurrentVersion != 2 || len(m.Versions) != 2 {
		t.Fatalf("metadata: %+v %v", m, err)
	}
	if err := kv.DeleteMetadata(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.GetMetadata(ctx, "a/b"); err == nil {
		t.Fatal("metadata survives DeleteMetadata")
	}
	if code, body := raw(t, s, "GET", "nomount/data/x", s.RootToken(), ""); code != 404 || !strings.Contains(body["errors"].([]any)[0].(string), "no handler for route") {
		t.Fatalf("unmounted: %d %v", code, body)
	}
}

func TestTokensAndACL(t *testing.T) {
	s := newServer(t)
	root := client(t, s, s.RootToken())
	pol := `
path "secret/data/app/*" { capabilities = ["create", "read", "update"] }
path "secret/data/app/secret" { capabilities = ["deny"] }
path "secret/data/app/+/ro" { capabilities = ["read"] }
path "secret/metadata/app/*" { capabilities = ["list"] }
`
	if _, err := root.Logical().Write("sys/policies/acl/app", map[string]any{"policy": pol}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("sys/policies/acl/bad", map[string]any{"policy": `path "x" { capabilities = ["fly"] }`}); status(err) != 400 {
		t.Fatalf("bad policy accepted: %v", err)
	}
	sec, err := root.Logical().Write("auth/token/create", map[string]any{"policies": []string{"app"}, "ttl": "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Auth.LeaseDuration < 3599 || !sec.Auth.Renewable {
		t.Fatalf("token auth %+v", sec.Auth)
	}
	c := client(t, s, sec.Auth.ClientToken)
	cases := []struct {
		method, path string
		want         int
	}{
		{"PUT", "secret/data/app/x", 200},
		{"GET", "secret/data/app/x", 200},
		{"PUT", "secret/data/app/secret", 403},      // exact deny beats the glob
		{"PUT", "secret/data/app/y/ro", 403},        // + segment: read only
		{"GET", "secret/data/other", 403},           // no rule
		{"DELETE", "secret/data/app/x", 403},        // no delete capability
		{"LIST", "secret/metadata/app/", 200},       // list
		{"GET", "auth/token/lookup-self", 200},      // default policy
		{"POST", "auth/token/create", 403},          // not granted
		{"GET", "secret/data/app/y/ro", 404},        // readable, absent
		{"POST", "sys/policies/acl/evil", 403},      // sys needs a grant
		{"GET", "secret/data/app/x?version=1", 200}, // version query
	}
	for _, tc := range cases {
		body := ""
		if tc.method == "PUT" || tc.method == "POST" {
			body = `{"data":{"v":1},"policy":"path \"x\" {capabilities=[\"read\"]}"}`
		}
		if code, out := raw(t, s, tc.method, tc.path, sec.Auth.ClientToken, body); code != tc.want {
			t.Errorf("%s %s: %d %v, want %d", tc.method, tc.path, code, out, tc.want)
		}
	}
	if code, out := raw(t, s, "GET", "secret/data/app/x", "", ""); code != 403 || out["errors"].([]any)[0] != "permission denied" {
		t.Errorf("no token: %d %v", code, out)
	}
	if code, _ := raw(t, s, "GET", "secret/data/app/x", "hvs.unknown", ""); code != 403 {
		t.Errorf("unknown token: %d", code)
	}
	// lookup-self shape.
	info, err := c.Auth().Token().LookupSelf()
	if err != nil {
		t.Fatal(err)
	}
	if ttl, _ := info.TokenTTL(); ttl < 59*time.Minute {
		t.Errorf("lookup-self ttl %v", ttl)
	}
	if r, _ := info.TokenIsRenewable(); !r {
		t.Error("lookup-self: not renewable")
	}
	// revoke-self ends the token.
	if err := c.Auth().Token().RevokeSelf(""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Auth().Token().LookupSelf(); status(err) != 403 {
		t.Fatalf("revoked token still works: %v", err)
	}
}

func TestRenewalAndMaxTTL(t *testing.T) {
	s := newServer(t)
	root := client(t, s, s.RootToken())
	sec, err := root.Logical().Write("auth/token/create", map[string]any{"ttl": "3s", "explicit_max_ttl": "4s"})
	if err != nil {
		t.Fatal(err)
	}
	c := client(t, s, sec.Auth.ClientToken)
	time.Sleep(1500 * time.Millisecond)
	r, err := c.Auth().Token().RenewSelf(0)
	if err != nil {
		t.Fatal(err)
	}
	// 1.5 s or more in, a 3 s renewal is capped by the 4 s max TTL.
	if r.Auth.LeaseDuration > 2 || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "capped") {
		t.Fatalf("capped renewal: lease %d warnings %v", r.Auth.LeaseDuration, r.Warnings)
	}
	waitExpired := time.Now().Add(5 * time.Second)
	for {
		_, err := c.Auth().Token().LookupSelf()
		if status(err) == 403 {
			break
		}
		if time.Now().After(waitExpired) {
			t.Fatal("token outlived its max TTL")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Non-renewable tokens refuse renewal.
	nr, err := root.Logical().Write("auth/token/create", map[string]any{"ttl": "1h", "renewable": false})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client(t, s, nr.Auth.ClientToken).Auth().Token().RenewSelf(0); status(err) != 400 {
		t.Fatalf("non-renewable renewed: %v", err)
	}
}

func TestAppRole(t *testing.T) {
	s := newServer(t)
	root := client(t, s, s.RootToken())
	must := func(_ *api.Secret, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(root.Logical().Write("sys/auth/ar", map[string]any{"type": "approle"}))
	must(root.Logical().Write("auth/ar/role/svc", map[string]any{"token_policies": "p1,p2", "token_ttl": "30s", "token_max_ttl": "60s", "secret_id_num_uses": 2}))
	rid, err := root.Logical().Read("auth/ar/role/svc/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := root.Logical().Write("auth/ar/role/svc/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	login := func(secretID string) (*api.Secret, error) {
		a, err := approle.NewAppRoleAuth(rid.Data["role_id"].(string), &approle.SecretID{FromString: secretID}, approle.WithMountPath("ar"))
		if err != nil {
			t.Fatal(err)
		}
		return a.Login(context.Background(), client(t, s, ""))
	}
	sec, err := login(sid.Data["secret_id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	a := sec.Auth
	if a.LeaseDuration != 30 || !a.Renewable || strings.Join(a.Policies, ",") != "default,p1,p2" || a.Metadata["role_name"] != "svc" {
		t.Fatalf("login auth %+v", a)
	}
	if _, err := login("wrong"); status(err) != 400 || !strings.Contains(err.Error(), "invalid role or secret ID") {
		t.Fatalf("wrong secret id: %v", err)
	}
	if _, err := login(sid.Data["secret_id"].(string)); err != nil {
		t.Fatalf("second use: %v", err)
	}
	if _, err := login(sid.Data["secret_id"].(string)); status(err) != 400 {
		t.Fatalf("secret id past num_uses accepted: %v", err)
	}
	// Disabling the auth method revokes its tokens.
	if _, err := root.Logical().Delete("sys/auth/ar"); err != nil {
		t.Fatal(err)
	}
	if _, err := client(t, s, a.ClientToken).Auth().Token().LookupSelf(); status(err) != 403 {
		t.Fatalf("token of a disabled auth method works: %v", err)
	}
}

func TestHealthSealStandby(t *testing.T) {
	s := newServer(t)
	c := client(t, s, s.RootToken())
	cases := []struct {
		name          string
		sealed, stby  bool
		query         string
		want          int
		sealedInBody  bool
		standbyInBody bool
	}{
		{"active", false, false, "", 200, false, false},
		{"standby", false, true, "", 429, false, true},
		{"standby ok", false, true, "?standbyok=true", 200, false, true},
		{"standby code", false, true, "?standbycode=299", 299, false, true},
		{"sealed", true, false, "", 503, true, true},
		{"sealed code", true, false, "?sealedcode=299", 299, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s.SetStandby(tc.stby)
			if tc.sealed {
				s.Seal()
			} else {
				s.Unseal()
			}
			code, body := raw(t, s, "GET", "sys/health"+tc.query, "", "")
			if code != tc.want || body["sealed"] != tc.sealedInBody || body["standby"] != tc.standbyInBody || body["initialized"] != true {
				t.Fatalf("%d %v", code, body)
			}
		})
	}
	s.Seal()
	if _, err := c.Logical().Read("secret/data/x"); status(err) != 503 || !strings.Contains(err.Error(), "Vault is sealed") {
		t.Fatalf("sealed read: %v", err)
	}
	h, err := c.Sys().Health()
	if err != nil || !h.Sealed {
		t.Fatalf("api health while sealed: %+v %v", h, err)
	}
	s.Unseal()
	s.SetStandby(false)
}

func TestFaults(t *testing.T) {
	s := newServer(t)
	c := client(t, s, s.RootToken())
	if _, err := c.KVv2("secret").Put(context.Background(), "f", map[string]any{"a": 1}); err != nil {
		t.Fatal(err)
	}
	remove := s.AddFault(Fault{Path: "secret/data/f", Status: 500})
	if _, err := c.Logical().Read("secret/data/f"); status(err) != 500 {
		t.Fatalf("500 fault: %v", err)
	}
	remove()
	s.AddFault(Fault{Method: "GET", Path: "secret/data/f", Status: 403, Times: 1})
	if _, err := c.Logical().Read("secret/data/f"); status(err) != 403 || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("403 fault: %v", err)
	}
	if _, err := c.Logical().Read("secret/data/f"); err != nil {
		t.Fatalf("fault with Times=1 applied twice: %v", err)
	}
	s.AddFault(Fault{Path: "secret/data/f", Delay: 3 * time.Second})
	slow := client(t, s, s.RootToken())
	slow.SetClientTimeout(200 * time.Millisecond)
	start := time.Now()
	if _, err := slow.Logical().Read("secret/data/f"); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("slow fault: err %v after %v", err, time.Since(start))
	}
	s.ClearFaults()
	if n := s.Count("GET", "secret/data/f"); n != 4 {
		t.Fatalf("count %d, want 4", n)
	}
	// Refused connections, then service again on the same address with
	// the same state.
	s.Stop()
	if _, err := c.Logical().Read("secret/data/f"); err == nil || status(err) != 0 {
		t.Fatalf("stopped server answered: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if sec, err := c.Logical().Read("secret/data/f"); err != nil || sec == nil {
		t.Fatalf("after restart: %v", err)
	}
}

func TestParseACLPriority(t *testing.T) {
	p, err := parseACL("t", `
path "a/*"     { capabilities = ["read"] }
path "a/b/*"   { capabilities = ["update"] }
path "a/b/c"   { capabilities = ["list"] }
path "a/+/d"   { capabilities = ["delete"] }
path "a/x/*"   { capabilities = ["deny"] }
`)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path, capability string
		want             bool
	}{
		{"a/z", "read", true},
		{"a/b/z", "read", false}, // the longer glob wins and has no read
		{"a/b/z", "update", true},
		{"a/b/c", "list", true}, // exact beats globs
		{"a/b/c", "update", false},
		{"a/q/d", "delete", true}, // later first wildcard beats "a/*"
		{"a/x/y", "read", false},  // deny
		{"b", "read", false},
	}
	for _, tc := range cases {
		if got := allowed([]*aclPolicy{p}, tc.path, tc.capability); got != tc.want {
			t.Errorf("%s %s: %v, want %v", tc.capability, tc.path, got, tc.want)
		}
	}
	for _, bad := range []string{`path "x" { capabilities = ["fly"] }`, `key "x" {}`, `path "x" {`} {
		if _, err := parseACL("bad", bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
