package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/quorum"
	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/hsm"
	"github.com/quorumd/quorumd/mpc/relay"
	"github.com/quorumd/quorumd/policy"
)

// openBackends opens the real parts in dependency order — locked memory
// for secrets, HSM, key store, policy source, relay clients — and returns
// them as daemon.Backends with /readyz checks for the HSM session and the
// policy source. The closer releases them in reverse order after the
// server has stopped.
func openBackends(ctx context.Context, cfg *daemon.Config, log *slog.Logger) (daemon.Backends, io.Closer, error) {
	var cl closers
	fail := func(err error) (daemon.Backends, io.Closer, error) {
		cl.Close()
		return daemon.Backends{}, nil, err
	}

	secrets, err := lockSecrets(cfg.Server.LockedSecretSlots, log)
	if err != nil {
		return fail(err)
	}
	if secrets != nil {
		// Closed last: it refuses while a call still holds a slot.
		cl = append(cl, secrets.Close)
	}

	h, err := hsm.Open(hsmConfig(cfg.HSM))
	if err != nil {
		return fail(fmt.Errorf("opening the HSM: %w", err))
	}
	cl = append(cl, h.Close)
	log.Info("hsm ready", "module", cfg.HSM.Module, "token", cfg.HSM.TokenLabel, "key_label", h.ActiveKeyLabel())

	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fail(fmt.Errorf("state directory: %w", err))
	}
	st, err := store.OpenDir(cfg.StateDir, store.Options{})
	if err != nil {
		return fail(fmt.Errorf("opening the key store in %s: %w", cfg.StateDir, err))
	}
	cl = append(cl, st.Close)
	log.Info("key store ready", "path", filepath.Join(cfg.StateDir))

	src, err := quorum.OpenPolicySource(ctx, cfg, "", log)
	if err != nil {
		return fail(err)
	}
	cl = append(cl, src.Close)
	if cfg.Policy.Source == "embedded" {
		log.Warn("using the embedded policy file, not Vault", "file", cfg.Policy.Embedded.File)
	}
	log.Info("policy source", "source", src.Name())
	acfg := policy.DefaultAuthorizerConfig()
	acfg.Logger = log
	if v := cfg.Policy.Vault; cfg.Policy.Source == "vault" {
		if v.CacheTTL > 0 {
			acfg.TTL = v.CacheTTL
		}
		if v.NegativeCacheTTL > 0 {
			acfg.NegativeTTL = v.NegativeCacheTTL
		}
		acfg.StaleWindow = v.StaleWindow
	}
	auth, err := policy.NewAuthorizer(src, acfg)
	if err != nil {
		return fail(fmt.Errorf("policy cache: %w", err))
	}

	relays := &quorum.RelayPool{Default: cfg.Relay.DefaultAddress}
	if t := cfg.Relay.TLS; t.Enabled {
		tc, err := relay.ClientTLSConfig(t.CAFile, t.CertFile, t.KeyFile)
		if err != nil {
			return fail(fmt.Errorf("relay TLS: %w", err))
		}
		tc.ServerName = t.ServerName
		relays.TLS = tc
	}
	cl = append(cl, func() error { relays.Close(); return nil })

	svc := &quorum.Service{Store: st, Sealer: h, Relays: relays, Log: log, Secrets: secrets}
	if len(cfg.HSM.ReadKeyLabels) > 0 {
		// A rotation is under way: re-seal old blobs while serving.
		rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() {
			defer close(done)
			if _, err := quorum.ResealAll(rctx, st, h, log); err != nil {
				log.Error("re-seal under the new wrapping key stopped; it resumes at the next start", "error", err.Error())
			}
		}()
		cl = append(cl, func() error { stop(); <-done; return nil })
	}
	return daemon.Backends{
		Auth:       authorizer{auth},
		Admin:      admin{auth, cfg.Policy.DefaultUserPolicy},
		Keys:       svc,
		Rooms:      svc,
		Ceremonies: svc,
		Recovery:   svc,
		Lifecycle:  svc,
		Ready: []daemon.ReadinessCheck{
			{Name: "hsm", Check: h.Ping},
			{Name: "policy", Check: auth.Ping},
		},
		Errors: []daemon.ErrorMapping{
			{Target: store.ErrNotFound, Type: daemon.ErrTypeKeyIDNotExists, Msg: "key_id does not exist"},
			{Target: store.ErrDuplicate, Type: daemon.ErrTypeUniqueViolation, Msg: "key_id already exists"},
			{Target: store.ErrAlreadyCommitted, Type: daemon.ErrTypeAlreadyPerformedKeygen, Msg: "the key already holds a share"},
			{Target: store.ErrNotCommitted, Type: daemon.ErrTypeKeyOperationBeforeKeygen, Msg: "the key has no share yet: run an import first"},
		},
	}, cl, nil
}

// hsmConfig converts the daemon's HSM section; a configured slot number
// selects the token by slot, overriding the (defaulted) token label.
func hsmConfig(c daemon.HSMConfig) hsm.Config {
	if c.SlotNumber != nil {
		c.TokenLabel = ""
	}
	return hsm.Config{
		ModulePath: c.Module, TokenLabel: c.TokenLabel, SlotNumber: c.SlotNumber,
		PINFile: c.PINFile, PINEnv: c.PINEnv, KeyLabel: c.KeyLabel, ReadKeyLabels: c.ReadKeyLabels,
		CreateKey: c.CreateKey, MaxSessions: c.MaxSessions,
	}
}

// authorizer adapts policy.Authorizer to the daemon's interface.
type authorizer struct{ a *policy.Authorizer }

func (a authorizer) Authorize(ctx context.Context, apiKey string, op daemon.Operation, p daemon.AuthParams) (daemon.Caller, error) {
	u, err := a.a.Authorize(ctx, apiKey, policy.Operation(op), policy.Params{
		N: p.N, Threshold: p.Threshold, RelayAddress: p.RelayAddress, KeyCount: p.KeyCount})
	if err != nil {
		return daemon.Caller{}, err
	}
	c := daemon.Caller{UserID: u.ID, Name: u.Name, Admin: u.Admin}
	if op == daemon.OpCreateKey {
		// The policy's number; the key store enforces it atomically.
		if c.KeyQuota, err = a.a.KeyQuota(ctx, apiKey); err != nil {
			return daemon.Caller{}, err
		}
	}
	return c, nil
}

// admin adapts the policy source's user administration; users made through
// the API get the configured default policy.
type admin struct {
	a             *policy.Authorizer
	defaultPolicy string
}

func (a admin) CreateUser(ctx context.Context, name string) (daemon.NewUser, error) {
	key, id, err := a.a.CreateUser(ctx, name, false, a.defaultPolicy)
	return daemon.NewUser{UserID: id, APIKey: key}, err
}

func (a admin) RevokeAPIKey(ctx context.Context, userID, apiKey string) error {
	return a.a.RevokeAPIKey(ctx, userID, apiKey)
}

func (a admin) DeleteUser(ctx context.Context, userID string) error {
	return a.a.DeleteUser(ctx, userID)
}

// closers closes in reverse order of opening.
type closers []func() error

func (c closers) Close() error {
	var errs []error
	for i := len(c) - 1; i >= 0; i-- {
		errs = append(errs, c[i]())
	}
	return errors.Join(errs...)
}
