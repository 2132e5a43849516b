package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
)

// vaultAuth keeps the client's token alive: a LifetimeWatcher renews it;
// when the watcher ends (max TTL reached, not renewable, renewal failing)
// or the token is found invalid, it logs in again, with backoff, until it
// succeeds or is closed. Tokens never appear in logs or errors.
type vaultAuth struct {
	client      *api.Client // the client requests use; its token is swapped here
	loginClient *api.Client // token-less client for login and token checks
	cfg         VaultAuthConfig
	timeout     time.Duration
	log         *slog.Logger

	backoffMin, backoffMax time.Duration
	suspectEvery           time.Duration // min interval between token checks after a 403

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	suspectC chan struct{}

	mu          sync.Mutex
	loginMu     sync.Mutex // serialises logins (loginClient's token is per login)
	expires     time.Time  // zero: the token does not expire
	lastErr     error      // last failed login or renewal, nil once one succeeds
	logins      int
	renewals    int
	lastSuspect time.Time
}

func newVaultAuth(client, loginClient *api.Client, cfg VaultAuthConfig, timeout time.Duration, log *slog.Logger) *vaultAuth {
	return &vaultAuth{
		client: client, loginClient: loginClient, cfg: cfg, timeout: timeout, log: log,
		backoffMin: 500 * time.Millisecond, backoffMax: 30 * time.Second,
		suspectEvery: 5 * time.Second,
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
		suspectC:     make(chan struct{}, 1),
	}
}

// start performs the first login and starts the renewal loop.
func (a *vaultAuth) start(ctx context.Context) error {
	s, err := a.login(ctx)
	if err != nil {
		return fmt.Errorf("policy: vault login (%s): %w", a.cfg.Method, err)
	}
	go a.run(s)
	return nil
}

// login obtains a token and installs it on the request client. The
// returned secret describes the token for the LifetimeWatcher.
func (a *vaultAuth) login(ctx context.Context) (*api.Secret, error) {
	a.loginMu.Lock()
	defer a.loginMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	var s *api.Secret
	switch a.cfg.Method {
	case "approle":
		roleID, err := readCredential(a.cfg.RoleIDFile)
		if err != nil {
			return nil, err
		}
		ar, err := approle.NewAppRoleAuth(roleID, &approle.SecretID{FromFile: a.cfg.SecretIDFile},
			approle.WithMountPath(a.cfg.AppRoleMount))
		if err != nil {
			return nil, fmt.Errorf("%w: approle: %w", ErrConfig, err)
		}
		s, err = ar.Login(ctx, a.loginClient)
		if err != nil {
			return nil, classifyAuth(err)
		}
		if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
			return nil, fmt.Errorf("%w: approle login returned no token", ErrSourceInvalid)
		}
	case "token":
		tok := a.cfg.Token
		if a.cfg.TokenFile != "" {
			var err error
			if tok, err = readCredential(a.cfg.TokenFile); err != nil {
				return nil, err
			}
		}
		a.loginClient.SetToken(tok)
		info, err := a.loginClient.Auth().Token().LookupSelfWithContext(ctx)
		a.loginClient.ClearToken()
		if err != nil {
			return nil, classifyAuth(err)
		}
		ttl, err := info.TokenTTL()
		if err != nil {
			return nil, fmt.Errorf("%w: token lookup: %w", ErrSourceInvalid, err)
		}
		renewable, _ := info.TokenIsRenewable()
		s = &api.Secret{Auth: &api.SecretAuth{ClientToken: tok, Renewable: renewable, LeaseDuration: int(ttl / time.Second)}}
	}
	a.client.SetToken(s.Auth.ClientToken)
	a.mu.Lock()
	a.logins++
	a.lastErr = nil
	a.expires = expiry(s.Auth.LeaseDuration)
	a.mu.Unlock()
	a.log.Info("vault login", "method", a.cfg.Method, "ttl_s", s.Auth.LeaseDuration, "renewable", s.Auth.Renewable)
	return s, nil
}

func expiry(leaseSeconds int) time.Time {
	if leaseSeconds <= 0 {
		return time.Time{}
	}
	return time.Now().Add(time.Duration(leaseSeconds) * time.Second)
}

// classifyAuth maps a login error: a rejected credential is a denial, a
// transport or server failure is unavailability.
func classifyAuth(err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		if re.StatusCode == 412 || re.StatusCode == 429 || re.StatusCode >= 500 {
			return fmt.Errorf("%w: status %d (%s)", ErrSourceUnavailable, re.StatusCode, strings.Join(re.Errors, "; "))
		}
		return fmt.Errorf("%w: status %d (%s)", ErrSourceDenied, re.StatusCode, strings.Join(re.Errors, "; "))
	}
	return fmt.Errorf("%w: %w", ErrSourceUnavailable, err)
}

// readCredential reads a role id, secret id or token file (surrounding
// whitespace trimmed: the only content-dependent branching). The content is
// never logged nor put in an error; the read buffer is zeroed.
func readCredential(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%w: credential file: %w", ErrConfig, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("%w: credential file %s: %w", ErrConfig, path, err)
	}
	s := strings.TrimSpace(string(b))
	clear(b)
	if s == "" {
		return "", fmt.Errorf("%w: credential file %s is empty", ErrConfig, path)
	}
	return s, nil
}

// run watches the token s until it must be replaced, then logs in again.
func (a *vaultAuth) run(s *api.Secret) {
	defer close(a.done)
	wait := a.backoffMin
	for {
		started := time.Now()
		if !a.watch(s) {
			return
		}
		// A token that had to be replaced at once (e.g. a nearly expired
		// token re-read from its file) must not make this loop spin.
		if time.Since(started) < a.backoffMin {
			select {
			case <-a.stop:
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, a.backoffMax)
		} else {
			wait = a.backoffMin
		}
		if s = a.relogin(); s == nil {
			return
		}
	}
}

// watch returns true when a new login is needed, false when closed.
func (a *vaultAuth) watch(s *api.Secret) bool {
	var doneC <-chan error
	var renewC <-chan *api.RenewOutput
	if s.Auth.LeaseDuration > 0 {
		w, err := a.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: s})
		if err != nil {
			a.log.Error("vault token watcher", "err", err)
			return true
		}
		go w.Start()
		defer w.Stop()
		doneC, renewC = w.DoneCh(), w.RenewCh()
	}
	for {
		select {
		case <-a.stop:
			return false
		case err := <-doneC:
			if err != nil {
				a.setErr(err)
				a.log.Warn("vault token renewal failed; logging in again", "err", err)
			} else {
				a.log.Info("vault token reached the end of its renewable life; logging in again")
			}
			return true
		case r := <-renewC:
			a.mu.Lock()
			a.renewals++
			a.lastErr = nil
			if r.Secret != nil && r.Secret.Auth != nil {
				a.expires = expiry(r.Secret.Auth.LeaseDuration)
			}
			a.mu.Unlock()
		case <-a.suspectC:
			if err := a.checkToken(); errors.Is(err, ErrSourceDenied) {
				a.log.Warn("vault rejected the daemon's token; logging in again", "err", err)
				return true
			}
		}
	}
}

// relogin logs in with exponential backoff until it succeeds (returning
// the new secret) or the auth is closed (nil).
func (a *vaultAuth) relogin() *api.Secret {
	wait := a.backoffMin
	for {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-a.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		s, err := a.login(ctx)
		cancel()
		if err == nil {
			return s
		}
		a.setErr(err)
		a.log.Error("vault login failed; retrying", "method", a.cfg.Method, "retry_in", wait, "err", err)
		select {
		case <-a.stop:
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, a.backoffMax)
	}
}

// checkToken asks Vault whether the current token is still valid.
func (a *vaultAuth) checkToken() error {
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	_, err := a.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return classifyAuth(err)
	}
	return nil
}

// suspect is called after Vault answered 403: at most every suspectEvery,
// the renewal loop checks the token and logs in again if it is invalid
// (revoked or expired behind the daemon's back).
func (a *vaultAuth) suspect() {
	a.mu.Lock()
	due := time.Since(a.lastSuspect) >= a.suspectEvery
	if due {
		a.lastSuspect = time.Now()
	}
	a.mu.Unlock()
	if due {
		select {
		case a.suspectC <- struct{}{}:
		default:
		}
	}
}

func (a *vaultAuth) setErr(err error) {
	a.mu.Lock()
	a.lastErr = err
	a.mu.Unlock()
}

// check reports an unusable token: expired while logins fail.
func (a *vaultAuth) check() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lastErr != nil && !a.expires.IsZero() && time.Now().After(a.expires) {
		return fmt.Errorf("vault token expired and login failing: %w", a.lastErr)
	}
	return nil
}

// close stops the loop and, for AppRole, revokes the token the daemon
// created (a token from a file belongs to whoever supplied it).
func (a *vaultAuth) close() {
	a.stopOnce.Do(func() {
		close(a.stop)
		<-a.done
		if a.cfg.Method == "approle" {
			ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
			defer cancel()
			if err := a.client.Auth().Token().RevokeSelfWithContext(ctx, ""); err != nil {
				a.log.Warn("vault token revoke on close failed", "err", err)
			}
		}
		a.client.ClearToken()
	})
}

// stats returns login and renewal counts (for tests and metrics).
func (a *vaultAuth) stats() (logins, renewals int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.logins, a.renewals
}
