package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumd/quorumd/policy/vaulttest"
)

// forEachVault runs body against the in-process server and, when
// configured, a real Vault/OpenBao server, each in a fresh environment.
func forEachVault(t *testing.T, body func(t *testing.T, e *vaultEnv)) {
	for _, target := range vaultTargets(t) {
		t.Run(target.name, func(t *testing.T) {
			t.Parallel()
			body(t, newVaultEnv(t, target))
		})
	}
}

// needFaults skips on a real server: sealing, status and delay injection
// need the in-process server.
func needFaults(t *testing.T, e *vaultEnv) *vaulttest.Server {
	t.Helper()
	if e.vt == nil {
		t.Skip("fault injection needs the in-process server; the real-server run covers the rest")
	}
	return e.vt
}

// seed stores the signer policy and one user, returning the user's key.
func seed(t *testing.T, e *vaultEnv, names ...string) []string {
	t.Helper()
	admin := e.adminSource(t)
	if err := admin.PutPolicy(context.Background(), signerPolicy); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, n := range names {
		k, _ := mustCreate(t, admin, n, false, "signer")
		keys = append(keys, k)
	}
	return keys
}

func TestVaultConfigValidate(t *testing.T) {
	base := func() VaultConfig {
		c := DefaultVaultConfig()
		c.Address = "http://127.0.0.1:1"
		c.Auth = VaultAuthConfig{Method: "token", Token: "x"}
		return c
	}
	cases := []struct {
		name string
		edit func(*VaultConfig)
	}{
		{"no address", func(c *VaultConfig) { c.Address = "" }},
		{"zero timeout", func(c *VaultConfig) { c.Timeout = 0 }},
		{"negative retries", func(c *VaultConfig) { c.MaxRetries = -1 }},
		{"no mount", func(c *VaultConfig) { c.Mount = "" }},
		{"mount escapes", func(c *VaultConfig) { c.Mount = "secret/../sys" }},
		{"prefix with space", func(c *VaultConfig) { c.Prefix = "a b" }},
		{"unknown method", func(c *VaultConfig) { c.Auth.Method = "ldap" }},
		{"token and token file", func(c *VaultConfig) { c.Auth.TokenFile = "/x" }},
		{"no token", func(c *VaultConfig) { c.Auth.Token = "" }},
		{"approle without files", func(c *VaultConfig) { c.Auth = VaultAuthConfig{Method: "approle", RoleIDFile: "/r"} }},
		{"bad ca file", func(c *VaultConfig) { c.CACertFile = "/nonexistent/ca.pem" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.edit(&c)
			if _, err := OpenVault(context.Background(), c); !errors.Is(err, ErrConfig) {
				t.Fatalf("got %v, want ErrConfig", err)
			}
		})
	}
}

func TestVaultLogin(t *testing.T) {
	forEachVault(t, func(t *testing.T, e *vaultEnv) {
		ctx := context.Background()
		keys := seed(t, e, "u")
		check := func(v *VaultSource) {
			t.Helper()
			if err := v.Ping(ctx); err != nil {
				t.Fatalf("ping: %v", err)
			}
			a := newTestAuthorizer(t, v, nil)
			if _, err := a.Authorize(ctx, keys[0], OpSign, Params{}); err != nil {
				t.Fatalf("authorize: %v", err)
			}
		}
		tv, _ := e.tokenSource(t, "1h", "", nil)
		if !strings.Contains(tv.Name(), "auth token") {
			t.Errorf("name %q", tv.Name())
		}
		check(tv)
		av := e.approleSource(t, "1h", "2h", nil)
		if !strings.Contains(av.Name(), "auth approle") {
			t.Errorf("name %q", av.Name())
		}
		check(av)

		roleFile, _ := e.approleCreds(t, "1h", "2h")
		cfg := e.config(t)
		cfg.Auth = VaultAuthConfig{Method: "approle", AppRoleMount: e.approle, RoleIDFile: roleFile, SecretIDFile: e.file(t, "wrong-secret", "00000000-0000-4000-8000-000000000000")}
		if _, err := OpenVault(ctx, cfg); !errors.Is(err, ErrSourceDenied) {
			t.Errorf("wrong secret_id: %v, want ErrSourceDenied", err)
		}
		cfg.Auth.SecretIDFile = e.dir + "/missing"
		if _, err := OpenVault(ctx, cfg); err == nil {
			t.Error("missing secret_id file accepted")
		}
		cfg.Auth = VaultAuthConfig{Method: "approle", AppRoleMount: e.approle, RoleIDFile: e.dir + "/missing", SecretIDFile: roleFile}
		if _, err := OpenVault(ctx, cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("missing role_id file: %v, want ErrConfig", err)
		}
		cfg.Auth = VaultAuthConfig{Method: "token", TokenFile: e.file(t, "bad-token", "hvs.not-a-token")}
		if _, err := OpenVault(ctx, cfg); !errors.Is(err, ErrSourceDenied) {
			t.Errorf("bad token: %v, want ErrSourceDenied", err)
		}
		cfg.Auth = VaultAuthConfig{Method: "token", TokenFile: e.file(t, "empty-token", "")}
		if _, err := OpenVault(ctx, cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("empty token file: %v, want ErrConfig", err)
		}
	})
}

// TestVaultIgnoresEnvironment: vault/api reads VAULT_TOKEN and friends;
// the daemon must depend on its configuration only.
func TestVaultIgnoresEnvironment(t *testing.T) {
	s, err := vaulttest.New()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t.Setenv("VAULT_TOKEN", s.RootToken())
	t.Setenv("VAULT_NAMESPACE", "elsewhere")
	cfg := DefaultVaultConfig()
	cfg.Address = s.Addr()
	cfg.Auth = VaultAuthConfig{Method: "token", Token: "hvs.invalid"}
	if _, err := OpenVault(context.Background(), cfg); !errors.Is(err, ErrSourceDenied) {
		t.Fatalf("VAULT_TOKEN from the environment was used: %v", err)
	}
}

func TestVaultRenewalAndRelogin(t *testing.T) {
	forEachVault(t, func(t *testing.T, e *vaultEnv) {
		keys := seed(t, e, "u")
		works := func(t *testing.T, v *VaultSource) {
			t.Helper()
			a := newTestAuthorizer(t, v, nil) // fresh cache: goes to Vault
			if _, err := a.Authorize(context.Background(), keys[0], OpGetKey, Params{}); err != nil {
				t.Fatalf("authorize with the current token: %v", err)
			}
		}
		t.Run("token renewal", func(t *testing.T) {
			t.Parallel()
			v, _ := e.tokenSource(t, "4s", "", nil)
			time.Sleep(5500 * time.Millisecond) // past the first TTL
			logins, renewals := v.auth.stats()
			if logins != 1 || renewals < 1 {
				t.Fatalf("logins %d renewals %d, want 1 and ≥1", logins, renewals)
			}
			works(t, v)
		})
		t.Run("approle re-login at max TTL", func(t *testing.T) {
			t.Parallel()
			v := e.approleSource(t, "3s", "6s", nil)
			first := v.client.Token()
			waitFor(t, 15*time.Second, "a second AppRole login", func() bool { l, _ := v.auth.stats(); return l >= 2 })
			if _, renewals := v.auth.stats(); renewals < 1 {
				t.Errorf("no renewal before max TTL")
			}
			if v.client.Token() == first {
				t.Fatal("token not replaced")
			}
			works(t, v)
		})
		t.Run("token file re-read at max TTL", func(t *testing.T) {
			t.Parallel()
			v, file := e.tokenSource(t, "3s", "4s", nil)
			if err := os.WriteFile(file, []byte(e.newToken(t, "1h", "", true)), 0o600); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 15*time.Second, "a login with the rotated token", func() bool { l, _ := v.auth.stats(); return l >= 2 })
			time.Sleep(1200 * time.Millisecond) // the first token is dead by now
			works(t, v)
			if err := v.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("revoked token", func(t *testing.T) {
			t.Parallel()
			v := e.approleSource(t, "1h", "2h", nil)
			if _, err := e.root.Logical().Write("auth/token/revoke", map[string]any{"token": v.client.Token()}); err != nil {
				t.Fatal(err)
			}
			a := newTestAuthorizer(t, v, nil)
			if _, err := a.Authorize(context.Background(), keys[0], OpGetKey, Params{}); !errors.Is(err, ErrSourceDenied) {
				t.Fatalf("with a revoked token: %v, want ErrSourceDenied", err)
			}
			waitFor(t, 10*time.Second, "a re-login after the 403", func() bool { l, _ := v.auth.stats(); return l >= 2 })
			works(t, v)
		})
	})
}

func TestVaultOutage(t *testing.T) {
	forEachVault(t, func(t *testing.T, e *vaultEnv) {
		ctx := context.Background()
		keys := seed(t, e, "u1", "u2")
		v := e.approleSource(t, "1h", "2h", nil)
		clock := newFakeClock()
		a := newTestAuthorizer(t, v, clock)
		cfg := a.cfg
		neg := "0123456789abcdef." + strings.Repeat("A", secretLen)
		for _, k := range keys {
			if _, err := a.Authorize(ctx, k, OpSign, Params{}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.Authorize(ctx, neg, OpSign, Params{}); !errors.Is(err, ErrKeyUnknown) {
			t.Fatal(err)
		}
		e.proxy.Down()

		// Within the negative TTL the unknown key is still denied as unknown.
		clock.Advance(cfg.NegativeTTL / 2)
		if _, err := a.Authorize(ctx, neg, OpSign, Params{}); !errors.Is(err, ErrKeyUnknown) {
			t.Fatalf("negative entry while down: %v", err)
		}
		// Past the TTL, inside the stale window: keys seen valid keep working.
		clock.Advance(cfg.TTL)
		if _, err := a.Authorize(ctx, keys[0], OpSign, Params{}); err != nil {
			t.Fatalf("inside the stale window: %v", err)
		}
		fetches := a.Stats().Fetches
		if _, err := a.Authorize(ctx, keys[1], OpSign, Params{}); err != nil {
			t.Fatalf("inside the stale window (second key): %v", err)
		}
		if a.Stats().Fetches != fetches {
			t.Error("source contacted again before RetryAfter")
		}
		// An unknown key is never accepted while Vault is down.
		for _, k := range []string{neg, "fedcba9876543210." + strings.Repeat("B", secretLen)} {
			if _, err := a.Authorize(ctx, k, OpSign, Params{}); errType(err) != ErrTypeInternalProblem || !errors.Is(err, ErrSourceUnavailable) {
				t.Fatalf("unknown key while down: %v", err)
			}
		}
		// The wrong secret of a known key is still rejected from the stale entry.
		if _, err := a.Authorize(ctx, otherSecret(keys[0]), OpSign, Params{}); !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("wrong secret while down: %v", err)
		}
		if err := v.Ping(ctx); !errors.Is(err, ErrSourceUnavailable) {
			t.Fatalf("ping while down: %v", err)
		}
		if s := a.Stats(); s.Stale < 2 {
			t.Fatalf("stats %+v", s)
		}
		// Beyond the window: fail closed.
		clock.Advance(cfg.StaleWindow)
		if _, err := a.Authorize(ctx, keys[0], OpSign, Params{}); errType(err) != ErrTypeInternalProblem || !errors.Is(err, ErrSourceUnavailable) {
			t.Fatalf("beyond the stale window: %v", err)
		}
		// Back up: fresh answers after RetryAfter.
		e.proxy.Up()
		clock.Advance(cfg.RetryAfter)
		if _, err := a.Authorize(ctx, keys[0], OpSign, Params{}); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
		if err := v.Ping(ctx); err != nil {
			t.Fatalf("ping after recovery: %v", err)
		}

		// A stale window of 0 fails closed as soon as the TTL expires.
		c0 := DefaultAuthorizerConfig()
		c0.StaleWindow = 0
		a0, err := NewAuthorizer(v, c0)
		if err != nil {
			t.Fatal(err)
		}
		a0.now = clock.Now
		if _, err := a0.Authorize(ctx, keys[0], OpSign, Params{}); err != nil {
			t.Fatal(err)
		}
		e.proxy.Down()
		clock.Advance(c0.TTL)
		if _, err := a0.Authorize(ctx, keys[0], OpSign, Params{}); !errors.Is(err, ErrSourceUnavailable) {
			t.Fatalf("stale window 0: %v", err)
		}
		e.proxy.Up()
	})
}

func TestVaultPermissionDenied(t *testing.T) {
	forEachVault(t, func(t *testing.T, e *vaultEnv) {
		ctx := context.Background()
		keys := seed(t, e, "u1", "u2")
		v := e.approleSource(t, "1h", "2h", nil)
		clock := newFakeClock()
		a := newTestAuthorizer(t, v, clock)
		for _, k := range keys {
			if _, err := a.Authorize(ctx, k, OpSign, Params{}); err != nil {
				t.Fatal(err)
			}
		}
		e.deny(t, "apikeys/"+lookupOf(keys[0]), "users/*")
		clock.Advance(a.cfg.TTL + time.Millisecond)
		// 403 is a configuration fault: no stale serving, fail closed.
		if _, err := a.Authorize(ctx, keys[0], OpSign, Params{}); errType(err) != ErrTypeInternalProblem || !errors.Is(err, ErrSourceDenied) {
			t.Fatalf("denied path: %v", err)
		}
		if _, err := a.Authorize(ctx, keys[1], OpSign, Params{}); !errors.Is(err, ErrSourceDenied) {
			t.Fatalf("denied users path: %v", err)
		}
		if _, _, err := a.CreateUser(ctx, "new", false, ""); errType(err) != ErrTypeInternalProblem || !errors.Is(err, ErrSourceDenied) {
			t.Fatalf("create user on a denied path: %v", err)
		}
		e.deny(t)
		if _, err := a.Authorize(ctx, keys[1], OpSign, Params{}); err != nil {
			t.Fatalf("after lifting the denial: %v", err)
		}
		// Policy writes (the /admin/policies routes) fail closed on a denial.
		e.deny(t, "policies/*", "policynames/*")
		if err := v.PutPolicy(ctx, Policy{Name: "mine", AllowedOperations: []Operation{OpSign}}); !errors.Is(err, ErrSourceDenied) {
			t.Fatalf("policy write on a denied path: %v", err)
		}
		if _, err := a.CreatePolicy(ctx, "mine", nil); errType(err) != ErrTypeInternalProblem || !errors.Is(err, ErrSourceDenied) {
			t.Fatalf("create policy on a denied path: %v", err)
		}
		e.deny(t)
		if logins, _ := v.auth.stats(); logins != 1 {
			t.Errorf("a 403 on a path with a valid token caused %d logins", logins)
		}
	})
}

func TestVaultSealedAndStandby(t *testing.T) {
	forEachVault(t, func(t *testing.T, e *vaultEnv) {
		vt := needFaults(t, e)
		ctx := context.Background()
		keys := seed(t, e, "u")
		v := e.approleSource(t, "1h", "2h", nil)
		clock := newFakeClock()
		a := newTestAuthorizer(t, v, clock)
		if _, err := a.Authorize(ctx, keys[0], OpSign, Params{}); err != nil {
			t.Fatal(err)
		}
		vt.SetStandby(true)
		if err := v.Ping(ctx); err != nil {
			t.Fatalf("standby node must count as ready: %v", err)
		}
		vt.SetStandby(false)
		vt.Seal()
		if err := v.Ping(ctx); !errors.Is(err, ErrSourceUnavailable) {
			t.Fatalf("ping sealed: %v", err)
		}
		clock.Advance(a.cfg.TTL + time.Millisecond)
		if _, err := a.Authorize(ctx, keys[0], OpSign, Params{}); err != nil {
			t.Fatalf("sealed, inside the window: %v", err)
		}
		if _, err := a.Authorize(ctx, "0123456789abcdef."+strings.Repeat("A", secretLen), OpSign, Params{}); !errors.Is(err, ErrSourceUnavailable) {
			t.Fatalf("unknown key while sealed: %v", err)
		}
		clock.Advance(a.cfg.StaleWindow)
		if _, err := a.Authorize(ctx, keys[0], OpSign, Params{}); !errors.Is(err, ErrSourceUnavailable) {
			t.Fatalf("sealed beyond the window: %v", err)
		}
		vt.Unseal()
		clock.Advance(a.cfg.RetryAfter)
		if _, err := a.Authorize(ctx, keys[0], OpSign, Params{}); err != nil {
			t.Fatalf("unsealed: %v", err)
		}
	})
}

func TestVaultInjectedFaults(t *testing.T) {
	forEachVault(t, func(t *testing.T, e *vaultEnv) {
		vt := needFaults(t, e)
		ctx := context.Background()
		keys := seed(t, e, "u")
		v := e.approleSource(t, "1h", "2h", func(c *VaultConfig) { c.Timeout = time.Second })
		lid := lookupOf(keys[0])
		base := e.mount + "/data/" + e.prefix + "/"
		cases := []struct {
			name      string
			fault     vaulttest.Fault
			wantType  string // for the cached key after its TTL
			wantCause error
		}{
			{"500 on api keys", vaulttest.Fault{Path: base + "apikeys/", Status: 500}, "", nil},
			{"502 on users", vaulttest.Fault{Path: base + "users/", Status: 502}, "", nil},
			{"503 on policies", vaulttest.Fault{Path: base + "policies/", Status: 503}, "", nil},
			{"429 rate limited", vaulttest.Fault{Path: base, Status: 429}, "", nil},
			{"slow beyond the timeout", vaulttest.Fault{Path: base + "apikeys/", Delay: 6 * time.Second}, "", nil},
			{"404 on the key", vaulttest.Fault{Path: base + "apikeys/" + lid, Status: 404}, ErrTypeAccessDenied, ErrKeyUnknown},
			{"403 on policies", vaulttest.Fault{Path: base + "policies/", Status: 403}, ErrTypeInternalProblem, ErrSourceDenied},
			{"unexpected 400", vaulttest.Fault{Path: base + "users/", Status: 400, Errors: []string{"odd"}}, ErrTypeInternalProblem, nil},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				clock := newFakeClock()
				a := newTestAuthorizer(t, v, clock)
				if _, err := a.Authorize(ctx, keys[0], OpSign, Params{}); err != nil {
					t.Fatal(err)
				}
				remove := vt.AddFault(tc.fault)
				defer remove()
				clock.Advance(a.cfg.TTL + time.Millisecond)
				start := time.Now()
				_, err := a.Authorize(ctx, keys[0], OpSign, Params{})
				if errType(err) != tc.wantType || (tc.wantCause != nil && !errors.Is(err, tc.wantCause)) {
					t.Fatalf("cached key: %v, want %q %v", err, tc.wantType, tc.wantCause)
				}
				// Not a timing measurement: the 1 s client timeout must cut
				// the 6 s delay short, with no retry after it.
				if d := time.Since(start); d > 4*time.Second {
					t.Errorf("took %v with a 1 s timeout and no retries", d)
				}
				if tc.wantType == "" && a.Stats().Stale != 1 {
					t.Errorf("not served from the stale entry: %+v", a.Stats())
				}
				// A key never seen is not accepted under any fault.
				if _, err := a.Authorize(ctx, "0123456789abcdef."+strings.Repeat("A", secretLen), OpSign, Params{}); err == nil {
					t.Fatal("unknown key accepted")
				}
			})
		}
	})
}

func TestVaultCoalescing(t *testing.T) {
	forEachVault(t, func(t *testing.T, e *vaultEnv) {
		ctx := context.Background()
		keys := seed(t, e, "u")
		v := e.approleSource(t, "1h", "2h", nil)
		a := newTestAuthorizer(t, v, newFakeClock())
		path := e.mount + "/data/" + e.prefix + "/apikeys/" + lookupOf(keys[0])
		e.proxy.Delay(path, 300*time.Millisecond)
		const n = 32
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := a.Authorize(ctx, keys[0], OpSign, Params{})
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := e.proxy.Count("GET", path); got != 1 {
			t.Fatalf("%d concurrent lookups made %d Vault reads, want 1", n, got)
		}
		if s := a.Stats(); s.Fetches != 1 {
			t.Fatalf("stats %+v", s)
		}

		// A caller that gives up does not cancel the shared lookup.
		a2 := newTestAuthorizer(t, v, newFakeClock())
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if _, err := a2.Authorize(short, keys[0], OpSign, Params{}); errType(err) != ErrTypeInternalProblem || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("cancelled caller: %v", err)
		}
		if _, err := a2.Authorize(ctx, keys[0], OpSign, Params{}); err != nil {
			t.Fatalf("after a cancelled caller: %v", err)
		}
		if got := e.proxy.Count("GET", path); got != 2 {
			t.Fatalf("reads %d, want 2 (one per authorizer)", got)
		}
		e.proxy.Delay(path, 0)
	})
}

func TestVaultMissingMount(t *testing.T) {
	forEachVault(t, func(t *testing.T, e *vaultEnv) {
		modes := []bool{false}
		if e.vt != nil {
			modes = append(modes, true) // and as OpenBao answers
		}
		for _, openBao := range modes {
			if e.vt != nil {
				e.vt.SetOpenBao(openBao)
			}
			keys := seed(t, e, "u-"+randID())
			v := e.approleSource(t, "1h", "2h", func(c *VaultConfig) { c.Mount = "not-mounted-" + randID() })
			a := newTestAuthorizer(t, v, nil)
			for range 3 {
				if _, err := a.Authorize(context.Background(), keys[0], OpSign, Params{}); errType(err) != ErrTypeInternalProblem {
					t.Fatalf("openbao=%v: missing mount: %v, want internal_problem (fail closed, not access_denied)", openBao, err)
				}
				a.invalidate(nil)
			}
			if err := v.Ping(context.Background()); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "mount") {
				t.Fatalf("openbao=%v: ping with a missing mount: %v", openBao, err)
			}
			if logins, _ := v.auth.stats(); logins != 1 {
				t.Fatalf("openbao=%v: a missing mount caused %d logins (a 403 with a live token must not re-login)", openBao, logins)
			}
			if err := e.approleSource(t, "1h", "2h", nil).Ping(context.Background()); err != nil {
				t.Fatalf("openbao=%v: ping with the mount present: %v", openBao, err)
			}
		}
	})
}

func TestVaultNameTakeover(t *testing.T) {
	forEachVault(t, func(t *testing.T, e *vaultEnv) {
		ctx := context.Background()
		v := e.approleSource(t, "1h", "2h", nil)
		// An interrupted creation left names/carol pointing at no user.
		e.writeRaw(t, "names/carol", map[string]any{"user_id": "00000000-0000-4000-8000-000000000000"})
		if _, _, err := v.CreateUser(ctx, "carol", false, ""); errType(err) != ErrTypeUserNameAlreadyExists {
			t.Fatalf("recent dangling name: %v, want user_name_already_exists", err)
		}
		v.takeoverAge = 0
		if _, _, err := v.CreateUser(ctx, "carol", false, ""); err != nil {
			t.Fatalf("old dangling name: %v", err)
		}
		if _, _, err := v.CreateUser(ctx, "carol", false, ""); errType(err) != ErrTypeUserNameAlreadyExists {
			t.Fatalf("taken name: %v", err)
		}
		// The same for policy and rule names.
		v.takeoverAge = defaultTakeoverAge
		e.writeRaw(t, "policynames/ops", map[string]any{"user_id": "00000000-0000-4000-8000-000000000000"})
		e.writeRaw(t, "rulenames/ops", map[string]any{"user_id": "00000000-0000-4000-8000-000000000000"})
		if _, err := v.CreatePolicy(ctx, "ops", nil); errType(err) != ErrTypeUniqueViolation {
			t.Fatalf("recent dangling policy name: %v", err)
		}
		if _, err := v.CreateRule(ctx, Rule{Name: "ops"}); errType(err) != ErrTypeUniqueViolation {
			t.Fatalf("recent dangling rule name: %v", err)
		}
		v.takeoverAge = 0
		if _, err := v.CreatePolicy(ctx, "ops", nil); err != nil {
			t.Fatalf("old dangling policy name: %v", err)
		}
		if _, err := v.CreateRule(ctx, Rule{Name: "ops"}); err != nil {
			t.Fatalf("old dangling rule name: %v", err)
		}
		if _, err := v.CreatePolicy(ctx, "ops", nil); errType(err) != ErrTypeUniqueViolation {
			t.Fatalf("taken policy name: %v", err)
		}
	})
}

func TestVaultAuthConfigRedacted(t *testing.T) {
	c := VaultAuthConfig{Method: "token", Token: "hvs.SECRET-VALUE"}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("cfg", "auth", c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", VaultConfig{Auth: c}), logged.String()} {
		if strings.Contains(s, "SECRET-VALUE") || !strings.Contains(s, "redacted") {
			t.Errorf("token not redacted: %s", s)
		}
	}
}
