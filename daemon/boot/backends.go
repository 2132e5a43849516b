package boot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/importkey"
	"github.com/quorumd/quorumd/daemon/quorum"
	"github.com/quorumd/quorumd/daemon/secmem"
	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/hsm"
	"github.com/quorumd/quorumd/mpc/relay"
	"github.com/quorumd/quorumd/policy"
	"github.com/quorumd/quorumd/policy/rules"
)

// OpenBackends opens the real parts in dependency order — locked memory
// for secrets, HSM, key store, policy source, relay clients — and returns
// them as daemon.Backends with /readyz checks for the HSM session and the
// policy source. The closer releases them in reverse order after the
// server has stopped.
func OpenBackends(ctx context.Context, cfg *daemon.Config, log *slog.Logger) (daemon.Backends, io.Closer, error) {
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
	// key-importer's private_key is decoded into an arena of its own, one
	// slot per ceremony the budget admits: the ceremony arena's sizing
	// (two slots a ceremony) stays exact and no importer waits on it.
	var keyArena *secmem.Arena
	if secrets != nil {
		if keyArena, err = lockSecrets(cfg.Server.Ceremonies(), log); err != nil {
			return fail(fmt.Errorf("locked memory for imported keys: %w", err))
		}
		cl = append(cl, keyArena.Close)
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
	st, storeReady, err := openStore(ctx, cfg, log)
	if err != nil {
		return fail(err)
	}
	cl = append(cl, st.Close)

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

	pb := &daemon.PolicyBackend{Authorizer: auth, DefaultPolicy: cfg.Policy.DefaultUserPolicy, Rules: &rules.Checker{Timeout: cfg.Policy.RuleServerTimeout}}

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
	// Data keys made ahead, off /bip340/create's path, while no ceremony
	// ran here lately (Service.InCeremony); closed, destroying the unused ones, before the token.
	svc.DataKeyPool = hsm.NewDataKeyPool(h, hsm.DataKeyPoolConfig{Size: cfg.HSM.DataKeyPool, MaxAge: quorum.PoolMaxAge,
		NewID: daemon.NewKeyID, Busy: svc.InCeremony, Log: func(err error) {
			log.Warn("data-key pool: making a data key failed; retrying", "error", err.Error())
		}})
	cl = append(cl, svc.DataKeyPool.Close)
	// The import keys live in the key store, so replicas sharing a
	// PostgreSQL store serve the same ones; Maintain picks up another
	// replica's rotation and rotates them when they age out.
	ik, err := importkey.Open(ctx, st, h, importkey.Options{StateDir: cfg.StateDir, Log: log})
	if err != nil {
		return fail(fmt.Errorf("import key: %w", err))
	}
	{
		mctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() { defer close(done); ik.Maintain(mctx, importkey.RefreshInterval) }()
		cl = append(cl, func() error { stop(); <-done; return nil })
	}
	{
		// In the background while serving: move blobs still sealed under a
		// wrapping key (before per-key data keys, or before a rotation) to
		// their key's data key, then destroy data keys that no live record
		// needs (a crash between a delete and its data key's destruction).
		rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() {
			defer close(done)
			if _, err := quorum.ResealAll(rctx, st, h, log); err != nil {
				log.Error("re-seal under per-key data keys stopped; it resumes at the next start", "error", err.Error())
			}
			if _, err := quorum.SweepDataKeys(rctx, st, h, quorum.OrphanGrace, log); err != nil {
				log.Error("orphan data-key sweep stopped; it resumes at the next start", "error", err.Error())
			}
		}()
		cl = append(cl, func() error { stop(); <-done; return nil })
	}
	return daemon.Backends{
		Auth:       pb,
		Admin:      pb,
		Policies:   pb,
		Rules:      pb,
		Keys:       svc,
		Rooms:      svc,
		Ceremonies: svc,
		Recovery:   svc,
		Keygen:     svc,
		Backups:    svc,
		Lifecycle:  svc,
		Ready: append([]daemon.ReadinessCheck{
			{Name: "hsm", Check: h.Ping},
			{Name: "policy", Check: auth.Ping},
		}, storeReady...),
		Secrets:    keyArena,
		ImportKeys: ik,
		Errors: []daemon.ErrorMapping{
			{Target: store.ErrNotFound, Type: daemon.ErrTypeKeyIDNotExists, Msg: "key_id does not exist"},
			{Target: store.ErrDuplicate, Type: daemon.ErrTypeUniqueViolation, Msg: "key_id already exists"},
			{Target: store.ErrAlreadyCommitted, Type: daemon.ErrTypeAlreadyPerformedKeygen, Msg: "the key already holds a share"},
			{Target: importkey.ErrDecrypt, Type: daemon.ErrTypeBadRequestParams, Msg: "encrypted_private_key does not decrypt to a private key for this daemon's slot, key_id and room_uuid"},
			{Target: importkey.ErrUnknownKey, Type: daemon.ErrTypeBadRequestParams, Msg: "encrypted_private_key names an import key this daemon does not hold (fetch GET /bip340/import/import-key again)"},
			{Target: importkey.ErrUnknownKEM, Type: daemon.ErrTypeBadRequestParams, Msg: "unknown kem: MLKEM768-X25519 or DHKEM-P256"},
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

// closers closes in reverse order of opening.
type closers []func() error

func (c closers) Close() error {
	var errs []error
	for i := len(c) - 1; i >= 0; i-- {
		errs = append(errs, c[i]())
	}
	return errors.Join(errs...)
}
