package quorum

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/policy"
)

// OpenPolicySource opens the configured policy source: Vault (token file or
// AppRole) or the embedded file. tokenFile, when set, overrides the Vault
// login with that token (an operator's own token for admin writes).
func OpenPolicySource(ctx context.Context, cfg *daemon.Config, tokenFile string, log *slog.Logger) (policy.Source, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch cfg.Policy.Source {
	case "vault":
		v := cfg.Policy.Vault
		vc := policy.DefaultVaultConfig()
		vc.Address, vc.Namespace, vc.CACertFile, vc.TLSServerName = v.Address, v.Namespace, v.CACertFile, v.TLSServerName
		vc.MaxRetries, vc.Logger = v.MaxRetries, log
		if v.Mount != "" {
			vc.Mount = v.Mount
		}
		if v.Prefix != "" {
			vc.Prefix = v.Prefix
		}
		if v.Timeout > 0 {
			vc.Timeout = v.Timeout
		}
		switch {
		case tokenFile != "":
			vc.Auth = policy.VaultAuthConfig{Method: "token", TokenFile: tokenFile}
		case v.TokenFile != "":
			vc.Auth = policy.VaultAuthConfig{Method: "token", TokenFile: v.TokenFile}
		default:
			vc.Auth = policy.VaultAuthConfig{Method: "approle", AppRoleMount: v.AppRoleMount,
				RoleIDFile: v.RoleIDFile, SecretIDFile: v.SecretIDFile}
			if vc.Auth.AppRoleMount == "" {
				vc.Auth.AppRoleMount = "approle"
			}
		}
		src, err := policy.OpenVault(ctx, vc)
		if err != nil {
			return nil, fmt.Errorf("opening Vault at %s: %w", v.Address, err)
		}
		return src, nil
	case "embedded":
		if tokenFile != "" {
			return nil, fmt.Errorf("a Vault token file was given but the policy source is the embedded file")
		}
		src, err := policy.OpenFile(cfg.Policy.Embedded.File)
		if err != nil {
			return nil, fmt.Errorf("opening the embedded policy file: %w", err)
		}
		return src, nil
	}
	return nil, fmt.Errorf("unknown policy source %q", cfg.Policy.Source)
}
