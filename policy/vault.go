package policy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/vault/api"
)

// VaultConfig configures VaultSource. Start from DefaultVaultConfig.
type VaultConfig struct {
	// Address of the Vault server, e.g. "https://vault.internal:8200".
	Address string
	// Namespace (Vault Enterprise / OpenBao namespaces); "" for none.
	Namespace string
	// CACertFile is a PEM bundle to verify Vault's certificate; "" uses
	// the system roots.
	CACertFile string
	// TLSServerName overrides the name checked in Vault's certificate.
	TLSServerName string
	// Timeout bounds every Vault request (vault/api's default of 60 s is
	// far too long on a request path). Must be > 0.
	Timeout time.Duration
	// MaxRetries of a failed request (5xx, connection error); 0 = none.
	MaxRetries int
	// Mount is the KV v2 mount, Prefix the folder under it holding
	// users/, apikeys/, names/ and policies/.
	Mount, Prefix string
	// Auth selects and configures the login method.
	Auth VaultAuthConfig
	// Logger receives login, renewal and re-login lines (nil: discard).
	Logger *slog.Logger
}

// VaultAuthConfig selects how the daemon logs in to Vault.
type VaultAuthConfig struct {
	// Method is "approle" or "token".
	Method string
	// TokenFile holds the token (method "token"). It is re-read at every
	// re-login, so an external agent can rotate it.
	TokenFile string
	// Token is an inline token (method "token"), for development; prefer
	// TokenFile.
	Token string
	// AppRoleMount is the AppRole auth mount path (default "approle").
	AppRoleMount string
	// RoleIDFile and SecretIDFile hold the AppRole credentials (e.g.
	// systemd credentials); both are re-read at every login.
	RoleIDFile, SecretIDFile string
}

// String redacts the inline token, so logging a configuration is safe.
func (c VaultAuthConfig) String() string {
	tok := ""
	if c.Token != "" {
		tok = "(redacted)"
	}
	return fmt.Sprintf("{method=%s token_file=%q token=%s approle_mount=%q role_id_file=%q secret_id_file=%q}",
		c.Method, c.TokenFile, tok, c.AppRoleMount, c.RoleIDFile, c.SecretIDFile)
}

// LogValue implements slog.LogValuer with the redacted form.
func (c VaultAuthConfig) LogValue() slog.Value { return slog.StringValue(c.String()) }

// DefaultVaultConfig: 3 s timeout, no retries, KV v2 mount "secret", prefix
// "quorumd", AppRole login on mount "approle".
func DefaultVaultConfig() VaultConfig {
	return VaultConfig{
		Timeout: 3 * time.Second,
		Mount:   "secret",
		Prefix:  "quorumd",
		Auth:    VaultAuthConfig{Method: "approle", AppRoleMount: "approle"},
	}
}

// VaultSource is the Source backed by Vault's KV v2 engine (DESIGN §6). It
// logs in with AppRole or a token, keeps the token renewed and logs in
// again when renewal ends.
type VaultSource struct {
	cfg    VaultConfig
	client *api.Client
	data   string // "<mount>/data/<prefix>/"
	meta   string // "<mount>/metadata/<prefix>/"
	log    *slog.Logger
	auth   *vaultAuth

	takeoverAge time.Duration
}

// OpenVault validates cfg, logs in (failing if the first login fails) and
// starts token renewal in the background. Close stops it.
func OpenVault(ctx context.Context, cfg VaultConfig) (*VaultSource, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	client, err := newVaultClient(&cfg)
	if err != nil {
		return nil, err
	}
	loginClient, err := newVaultClient(&cfg)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mount, prefix := strings.Trim(cfg.Mount, "/"), strings.Trim(cfg.Prefix, "/")
	v := &VaultSource{cfg: cfg, client: client, log: log, takeoverAge: defaultTakeoverAge}
	v.data, v.meta = mount+"/data/", mount+"/metadata/"
	if prefix != "" {
		v.data += prefix + "/"
		v.meta += prefix + "/"
	}
	v.auth = newVaultAuth(client, loginClient, cfg.Auth, cfg.Timeout, log)
	if err := v.auth.start(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

func (c *VaultConfig) validate() error {
	if c.Address == "" {
		return fmt.Errorf("%w: vault: address is required", ErrConfig)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("%w: vault: timeout must be > 0", ErrConfig)
	}
	if c.MaxRetries < 0 {
		return fmt.Errorf("%w: vault: max retries must be ≥ 0", ErrConfig)
	}
	if err := checkPath("mount", c.Mount, false); err != nil {
		return err
	}
	if err := checkPath("prefix", c.Prefix, true); err != nil {
		return err
	}
	a := &c.Auth
	switch a.Method {
	case "token":
		if (a.TokenFile == "") == (a.Token == "") {
			return fmt.Errorf("%w: vault: token auth needs exactly one of token_file and token", ErrConfig)
		}
	case "approle":
		if a.RoleIDFile == "" || a.SecretIDFile == "" {
			return fmt.Errorf("%w: vault: approle auth needs role_id_file and secret_id_file", ErrConfig)
		}
		if a.AppRoleMount == "" {
			a.AppRoleMount = "approle"
		}
		if err := checkPath("approle mount", a.AppRoleMount, false); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: vault: auth method %q: want approle or token", ErrConfig, a.Method)
	}
	return nil
}

// checkPath accepts slash-separated segments of [A-Za-z0-9._-], no "." or
// "..", so configured values cannot escape their place in a Vault path.
func checkPath(what, p string, emptyOK bool) error {
	p = strings.Trim(p, "/")
	if p == "" {
		if emptyOK {
			return nil
		}
		return fmt.Errorf("%w: vault: %s is required", ErrConfig, what)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." || !validName(seg) || strings.Contains(seg, "@") {
			return fmt.Errorf("%w: vault: %s %q: want segments of [A-Za-z0-9._-]", ErrConfig, what, p)
		}
	}
	return nil
}

// newVaultClient builds a vault/api client from cfg alone: environment
// variables (VAULT_TOKEN, VAULT_NAMESPACE, VAULT_HEADERS, ...) that
// api.NewClient would apply are overridden, so the daemon's behaviour
// depends on its configuration only.
func newVaultClient(cfg *VaultConfig) (*api.Client, error) {
	tr := cleanhttp.DefaultPooledTransport()
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.TLSServerName}
	if cfg.CACertFile != "" {
		pem, err := os.ReadFile(cfg.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("%w: vault: ca cert: %w", ErrConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: vault: ca cert %s: no PEM certificate", ErrConfig, cfg.CACertFile)
		}
		tlsConf.RootCAs = pool
	}
	tr.TLSClientConfig = tlsConf
	tr.TLSHandshakeTimeout = cfg.Timeout
	hc := &http.Client{
		Transport: tr,
		Timeout:   cfg.Timeout,
		// vault/api follows one redirect itself (to the active node).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c, err := api.NewClient(&api.Config{
		Address:      cfg.Address,
		HttpClient:   hc,
		Timeout:      cfg.Timeout,
		MaxRetries:   cfg.MaxRetries,
		MinRetryWait: 100 * time.Millisecond,
		MaxRetryWait: 500 * time.Millisecond,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: vault client: %w", ErrConfig, err)
	}
	c.ClearToken()
	c.SetHeaders(http.Header{api.RequestHeaderName: []string{"true"}})
	if cfg.Namespace != "" {
		c.SetNamespace(cfg.Namespace)
	}
	return c, nil
}

// Name implements Source.
func (v *VaultSource) Name() string {
	return fmt.Sprintf("vault %s (kv %s, auth %s)", v.cfg.Address, strings.TrimSuffix(v.data, "/"), v.cfg.Auth.Method)
}

// Ping implements Source: Vault is initialized and unsealed (a standby
// node is fine: it forwards requests) and the daemon holds a live token.
func (v *VaultSource) Ping(ctx context.Context) error {
	h, err := v.client.Sys().HealthWithContext(ctx)
	if err != nil {
		return v.classify("health", "", err)
	}
	if !h.Initialized || h.Sealed {
		return fmt.Errorf("%w: vault initialized=%t sealed=%t", ErrSourceUnavailable, h.Initialized, h.Sealed)
	}
	if err := v.auth.check(); err != nil {
		return err
	}
	return v.checkMount(ctx)
}

// checkMount reads a record the daemon's ACL always allows (the bootstrap
// claim, usually absent). Vault answers a missing mount with 404 "no
// handler for route"; OpenBao answers it to a non-root token with 403,
// exactly like an ACL denial, so a 403 here names both causes.
func (v *VaultSource) checkMount(ctx context.Context) error {
	var rec map[string]any
	_, err := v.get(ctx, "bootstrap", &rec)
	switch {
	case err == nil, isNotFound(err):
		return nil
	case errors.Is(err, ErrSourceDenied):
		return fmt.Errorf("%w: the KV v2 mount %q is missing (OpenBao answers 403 for that) or the daemon's ACL lacks read on %sbootstrap: %w",
			ErrConfig, strings.TrimSuffix(v.data, "/data/"+strings.Trim(v.cfg.Prefix, "/")+"/"), v.data, err)
	}
	return err
}

// Close stops token renewal and, for AppRole logins, revokes the token.
func (v *VaultSource) Close() error {
	v.auth.close()
	return nil
}

// LookupAPIKey implements Source.
func (v *VaultSource) LookupAPIKey(ctx context.Context, lookupID string) (APIKeyRecord, error) {
	if !validLookupID(lookupID) {
		return APIKeyRecord{}, ErrNotFound
	}
	var r APIKeyRecord
	if _, err := v.get(ctx, "apikeys/"+lookupID, &r); err != nil {
		return APIKeyRecord{}, err
	}
	r.LookupID = lookupID
	return r, nil
}

// GetUser implements Source.
func (v *VaultSource) GetUser(ctx context.Context, userID string) (User, error) {
	u, _, err := v.getUser(ctx, userID)
	if err != nil {
		return User{}, err
	}
	return u.user(), nil
}

func (v *VaultSource) getUser(ctx context.Context, userID string) (*userRecord, int, error) {
	if !validUserID(userID) {
		return nil, 0, ErrNotFound
	}
	var u userRecord
	ver, err := v.get(ctx, "users/"+userID, &u)
	if err != nil {
		return nil, 0, err
	}
	if err := u.validate(userID); err != nil {
		return nil, 0, err
	}
	return &u, ver, nil
}

// GetPolicy implements Source.
func (v *VaultSource) GetPolicy(ctx context.Context, name string) (Policy, error) {
	if !validName(name) {
		return Policy{}, ErrNotFound
	}
	var p Policy
	if _, err := v.get(ctx, "policies/"+name, &p); err != nil {
		return Policy{}, err
	}
	p.Name = name
	if err := p.Validate(); err != nil {
		return Policy{}, fmt.Errorf("%w: %w", ErrSourceInvalid, err)
	}
	if err := resolvePolicy(&p, func(id string) (Rule, error) {
		r, _, err := v.getRule(ctx, id)
		return r, err
	}); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// PutPolicy implements Source.
func (v *VaultSource) PutPolicy(ctx context.Context, p Policy) error {
	if err := p.Validate(); err != nil {
		return &Error{Type: ErrTypeBadRequestParams, Msg: err.Error(), Err: err}
	}
	_, err := v.put(ctx, "policies/"+p.Name, &p, -1)
	return err
}

// defaultTakeoverAge is how old a name index entry pointing at a missing
// user (or an unfinished bootstrap claim) must be before it is taken over:
// younger ones may belong to a creation in progress on another replica.
const defaultTakeoverAge = time.Minute

// CreateUser implements Source. The name is claimed first with a
// check-and-set write of names/<name>, so two replicas cannot create the
// same name; then users/<id> and apikeys/<lookup_id> are written.
func (v *VaultSource) CreateUser(ctx context.Context, name string, admin bool, policyName string) (string, string, error) {
	if err := checkCreateUser(name, policyName); err != nil {
		return "", "", err
	}
	if policyName != "" {
		if _, err := v.GetPolicy(ctx, policyName); isNotFound(err) {
			return "", "", typed(ErrTypePolicyNotFound, "policy not found")
		} else if err != nil && !errors.Is(err, ErrSourceInvalid) {
			return "", "", err
		}
	}
	key, lookupID, digest, err := newAPIKey()
	if err != nil {
		return "", "", err
	}
	userID, err := newUserID()
	if err != nil {
		return "", "", err
	}
	if name != "" {
		if err := v.claimName(ctx, nameKey(name), userID); err != nil {
			return "", "", err
		}
	}
	t := now()
	u := userRecord{ID: userID, Name: name, Admin: admin, Policy: policyName, CreatedAt: t, APIKeys: []string{lookupID}}
	if _, err := v.put(ctx, "users/"+userID, &u, 0); err != nil {
		return "", "", fmt.Errorf("create user %s: %w", userID, err)
	}
	k := APIKeyRecord{UserID: userID, SecretSHA256: digest, CreatedAt: t}
	if _, err := v.put(ctx, "apikeys/"+lookupID, &k, 0); err != nil {
		return "", "", fmt.Errorf("create api key for user %s: %w", userID, err)
	}
	return key, userID, nil
}

// bootstrapRecord is <prefix>/bootstrap: the claim of a bootstrap in
// progress (UserID "") or done.
type bootstrapRecord struct {
	UserID    string    `json:"user_id"`
	StartedAt time.Time `json:"started_at"`
}

// createFirstAdmin claims <prefix>/bootstrap with a check-and-set write, so
// of concurrent bootstraps one proceeds; a claim whose admin is gone, or
// that was abandoned more than takeoverAge ago, is taken over.
func (v *VaultSource) createFirstAdmin(ctx context.Context, name string) (string, string, error) {
	if err := checkCreateUser(name, ""); err != nil {
		return "", "", err
	}
	users, err := v.ListUsers(ctx)
	if err != nil {
		return "", "", err
	}
	if hasAdmin(users) {
		return "", "", ErrAdminExists
	}
	claim := bootstrapRecord{StartedAt: now()}
	ver, err := v.put(ctx, "bootstrap", &claim, 0)
	if errors.Is(err, errCAS) {
		var cur bootstrapRecord
		curVer, created, gerr := v.getMeta(ctx, "bootstrap", &cur)
		switch {
		case isNotFound(gerr):
			ver, err = v.put(ctx, "bootstrap", &claim, 0)
		case gerr != nil:
			return "", "", gerr
		case cur.UserID == "" && time.Since(created) < v.takeoverAge:
			return "", "", ErrAdminExists // a bootstrap is in progress
		default:
			if cur.UserID != "" {
				if u, _, uerr := v.getUser(ctx, cur.UserID); uerr == nil && u.Admin {
					return "", "", ErrAdminExists
				} else if uerr != nil && !isNotFound(uerr) {
					return "", "", uerr
				}
			}
			ver, err = v.put(ctx, "bootstrap", &claim, curVer)
		}
		if errors.Is(err, errCAS) {
			return "", "", ErrAdminExists
		}
	}
	if err != nil {
		return "", "", err
	}
	key, userID, err := v.CreateUser(ctx, name, true, "")
	if err != nil {
		if derr := v.deleteAll(ctx, "bootstrap"); derr != nil {
			v.log.Warn("bootstrap: could not release the claim", "err", derr)
		}
		return "", "", err
	}
	claim.UserID = userID
	if _, err := v.put(ctx, "bootstrap", &claim, ver); err != nil {
		// The admin exists, which is what stops a second bootstrap; the
		// claim record is informational.
		v.log.Warn("bootstrap: could not record the admin in the claim", "err", err)
	}
	return key, userID, nil
}

// claimName claims names/<key> (key is nameKey of the user name).
func (v *VaultSource) claimName(ctx context.Context, name, userID string) error {
	rec := nameRecord{UserID: userID}
	_, err := v.put(ctx, "names/"+name, &rec, 0)
	if !errors.Is(err, errCAS) {
		return err
	}
	var cur nameRecord
	ver, created, err := v.getMeta(ctx, "names/"+name, &cur)
	if isNotFound(err) { // deleted meanwhile: claim afresh
		_, err = v.put(ctx, "names/"+name, &rec, 0)
		if errors.Is(err, errCAS) {
			return typed(ErrTypeUserNameAlreadyExists, "user name already exists")
		}
		return err
	}
	if err != nil {
		return err
	}
	if _, _, err := v.getUser(ctx, cur.UserID); err == nil {
		return typed(ErrTypeUserNameAlreadyExists, "user name already exists")
	} else if !isNotFound(err) {
		return err
	}
	if time.Since(created) < v.takeoverAge {
		return typed(ErrTypeUserNameAlreadyExists, "user name already exists (a creation may be in progress)")
	}
	// The name points at a user that no longer exists (an interrupted
	// create or delete): take it over.
	if _, err := v.put(ctx, "names/"+name, &rec, ver); errors.Is(err, errCAS) {
		return typed(ErrTypeUserNameAlreadyExists, "user name already exists")
	} else if err != nil {
		return err
	}
	return nil
}

// RevokeAPIKey implements Source.
func (v *VaultSource) RevokeAPIKey(ctx context.Context, userID, apiKey string) error {
	lookupID, d, err := parseRevoke(userID, apiKey)
	if err != nil {
		return err
	}
	if _, _, err := v.getUser(ctx, userID); isNotFound(err) {
		return errUserNotFound
	} else if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		var rec APIKeyRecord
		ver, err := v.get(ctx, "apikeys/"+lookupID, &rec)
		if isNotFound(err) {
			return typed(ErrTypeAPIKeyNotFound, "api key not found")
		}
		if err != nil {
			return err
		}
		rec.LookupID = lookupID
		if err := matchRevoke(&rec, userID, d); err != nil {
			return err
		}
		if rec.Revoked {
			return nil
		}
		t := now()
		rec.Revoked, rec.RevokedAt = true, &t
		_, err = v.put(ctx, "apikeys/"+lookupID, &rec, ver)
		if errors.Is(err, errCAS) && attempt < 2 {
			continue // changed concurrently: re-read and decide again
		}
		return err
	}
}

// DeleteUser implements Source. The user record goes first, so its keys
// stop resolving at once even if removing the rest is interrupted.
func (v *VaultSource) DeleteUser(ctx context.Context, userID string) error {
	u, _, err := v.getUser(ctx, userID)
	if isNotFound(err) {
		return errUserNotFound
	}
	if err != nil {
		return err
	}
	if err := v.deleteAll(ctx, "users/"+userID); err != nil {
		return err
	}
	var errs []error
	for _, id := range u.APIKeys {
		if err := v.deleteAll(ctx, "apikeys/"+id); err != nil && !isNotFound(err) {
			errs = append(errs, err)
		}
	}
	var n nameRecord
	if u.Name == "" {
		// no name, no index entry
	} else if _, err := v.get(ctx, "names/"+nameKey(u.Name), &n); err == nil && n.UserID == userID {
		if err := v.deleteAll(ctx, "names/"+nameKey(u.Name)); err != nil && !isNotFound(err) {
			errs = append(errs, err)
		}
	} else if err != nil && !isNotFound(err) {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("user %s deleted, cleanup incomplete: %w", userID, errors.Join(errs...))
	}
	return nil
}

// ListUsers implements Source.
func (v *VaultSource) ListUsers(ctx context.Context) ([]User, error) {
	ids, err := v.list(ctx, "users")
	if err != nil {
		return nil, err
	}
	out := make([]User, 0, len(ids))
	for _, id := range ids {
		if !validUserID(id) {
			continue
		}
		u, _, err := v.getUser(ctx, id)
		if isNotFound(err) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, u.user())
	}
	sortUsers(out)
	return out, nil
}

// errCAS is a failed KV v2 check-and-set write.
var errCAS = errors.New("policy: vault check-and-set conflict")

const maxVaultBody = 1 << 20

// kvData is the envelope of a KV v2 read.
type kvData struct {
	Data struct {
		Data     json.RawMessage `json:"data"`
		Metadata struct {
			Version     int       `json:"version"`
			CreatedTime time.Time `json:"created_time"`
		} `json:"metadata"`
	} `json:"data"`
}

// get reads <mount>/data/<prefix>/<rel> into out (unknown fields rejected)
// and returns its version.
func (v *VaultSource) get(ctx context.Context, rel string, out any) (int, error) {
	ver, _, err := v.getMeta(ctx, rel, out)
	return ver, err
}

func (v *VaultSource) getMeta(ctx context.Context, rel string, out any) (int, time.Time, error) {
	resp, err := v.client.Logical().ReadRawWithContext(ctx, v.data+rel)
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		return 0, time.Time{}, v.classify("read", rel, err)
	}
	var env kvData
	if err := decodeBody(resp.Body, &env, false); err != nil {
		return 0, time.Time{}, fmt.Errorf("%w: vault read %s: %w", ErrSourceInvalid, rel, err)
	}
	if len(env.Data.Data) == 0 || string(env.Data.Data) == "null" {
		return 0, time.Time{}, fmt.Errorf("vault read %s: %w", rel, ErrNotFound)
	}
	if err := decodeBody(bytes.NewReader(env.Data.Data), out, true); err != nil {
		return 0, time.Time{}, fmt.Errorf("%w: vault read %s: %w", ErrSourceInvalid, rel, err)
	}
	return env.Data.Metadata.Version, env.Data.Metadata.CreatedTime, nil
}

// put writes val to <rel>; cas ≥ 0 makes it a check-and-set write (0:
// only if absent). It returns the new version.
func (v *VaultSource) put(ctx context.Context, rel string, val any, cas int) (int, error) {
	body := map[string]any{"data": val}
	if cas >= 0 {
		body["options"] = map[string]any{"cas": cas}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return 0, fmt.Errorf("policy: encode %s: %w", rel, err)
	}
	resp, err := v.client.Logical().WriteRawWithContext(ctx, v.data+rel, b)
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		return 0, v.classify("write", rel, err)
	}
	var out struct {
		Data struct {
			Version int `json:"version"`
		} `json:"data"`
	}
	if err := decodeBody(resp.Body, &out, false); err != nil {
		return 0, fmt.Errorf("%w: vault write %s: %w", ErrSourceInvalid, rel, err)
	}
	return out.Data.Version, nil
}

// deleteAll removes every version and the metadata of <rel>.
func (v *VaultSource) deleteAll(ctx context.Context, rel string) error {
	resp, err := v.client.Logical().DeleteRawWithContext(ctx, v.meta+rel)
	if resp != nil {
		resp.Body.Close()
	}
	if err != nil {
		return v.classify("delete", rel, err)
	}
	return nil
}

// list returns the keys under <rel>/ (none if the folder does not exist).
func (v *VaultSource) list(ctx context.Context, rel string) ([]string, error) {
	resp, err := v.client.Logical().ReadRawWithDataWithContext(ctx, v.meta+rel+"/", url.Values{"list": {"true"}})
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		err = v.classify("list", rel, err)
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	var out struct {
		Data struct {
			Keys []string `json:"keys"`
		} `json:"data"`
	}
	if err := decodeBody(resp.Body, &out, false); err != nil {
		return nil, fmt.Errorf("%w: vault list %s: %w", ErrSourceInvalid, rel, err)
	}
	return out.Data.Keys, nil
}

func decodeBody(r io.Reader, out any, strict bool) error {
	dec := json.NewDecoder(io.LimitReader(r, maxVaultBody))
	if strict {
		dec.DisallowUnknownFields()
	}
	return dec.Decode(out)
}

// classify maps a vault/api error: 404 → ErrNotFound (a missing mount is a
// configuration error instead), 403 → ErrSourceDenied (and a token check),
// CAS conflict → errCAS, 412/429/5xx (sealed included) and transport errors
// → ErrSourceUnavailable, other statuses → a plain error (fail closed).
func (v *VaultSource) classify(op, rel string, err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		msg := strings.Join(re.Errors, "; ")
		switch {
		case re.StatusCode == http.StatusNotFound && strings.Contains(msg, "no handler for route"):
			return fmt.Errorf("%w: vault %s %s: no such mount (%s)", ErrConfig, op, rel, msg)
		case re.StatusCode == http.StatusNotFound:
			return fmt.Errorf("vault %s %s: %w", op, rel, ErrNotFound)
		case re.StatusCode == http.StatusForbidden:
			v.auth.suspect()
			return fmt.Errorf("vault %s %s: %w (%s)", op, rel, ErrSourceDenied, msg)
		case re.StatusCode == http.StatusBadRequest && strings.Contains(msg, "check-and-set"):
			return errCAS
		case re.StatusCode == http.StatusPreconditionFailed, re.StatusCode == http.StatusTooManyRequests, re.StatusCode >= 500:
			return fmt.Errorf("vault %s %s: %w: status %d (%s)", op, rel, ErrSourceUnavailable, re.StatusCode, msg)
		default:
			return fmt.Errorf("vault %s %s: status %d (%s)", op, rel, re.StatusCode, msg)
		}
	}
	return fmt.Errorf("vault %s %s: %w: %w", op, rel, ErrSourceUnavailable, err)
}
