// Package quorumtest starts a throwaway quorum for integration tests, as
// net/http/httptest starts a server: SoftHSM2 tokens in t.TempDir(), a
// relay and N quorumd daemons on free loopback ports, an admin and a user
// bootstrapped on each, and clients of them; everything stops when the
// test ends. It builds nothing: the daemons run inside the test binary
// (through daemon/boot, the code cmd/quorumd runs) or from a quorumd binary
// given in Options.
//
//	q := quorumtest.Start(t, quorumtest.Options{Parties: 3})
//	c := q.Client(0) // *client.Client of daemon 0's user
//
// Every exchange of the clients Quorum hands out (and of its HTTPClient) is
// validated against the REST API's OpenAPI document (docs/openapi.yaml), and
// URL is that of a validating proxy for callers bringing their own HTTP
// client: an exchange the document does not describe fails the test.
// Benchmarks turn that off (Options.NoSpecValidation) or use DirectURL. The
// tests skip, naming the Debian package to install, only when SoftHSM2 is
// missing.
package quorumtest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumd/quorumd/daemon/client"
	"github.com/quorumd/quorumd/daemon/quorumtest/hsmtest"
	"github.com/quorumd/quorumd/daemon/quorumtest/pgtest"
	"github.com/quorumd/quorumd/daemon/quorumtest/relaytest"
	"github.com/quorumd/quorumd/internal/apispec"
	"github.com/quorumd/quorumd/policy"
)

// Options configure Start; the zero value is a 2-of-3 quorum on bbolt.
type Options struct {
	// Parties is the number of daemons (default 3).
	Parties int
	// Threshold is the threshold Quorum.Threshold reports for the test's
	// ceremonies (default Parties/2+1).
	Threshold int
	// Store is "bbolt" (default: a file in each daemon's state directory)
	// or "postgres" (a throwaway PostgreSQL cluster, one database a party;
	// the test skips when PostgreSQL is not installed).
	Store string
	// CeremonyTimeout bounds a ceremony (default 60s).
	CeremonyTimeout time.Duration
	// RelayAddress is a relay to use; "" starts one in this process.
	RelayAddress string
	// Tokens are SoftHSM tokens to use, one a party, made before the
	// process first opened an HSM (hsmtest.NewTokens in TestMain); nil
	// makes fresh ones in t.TempDir().
	Tokens []hsmtest.Token
	// QuorumdBinary, if set, runs every daemon as a process of this quorumd
	// executable instead of in this process.
	QuorumdBinary string
	// NoSpecValidation turns off the OpenAPI validation of the clients'
	// exchanges, and makes URL the daemons' own (for benchmarks).
	NoSpecValidation bool
	// ExtraYAML is appended to every daemon's configuration.
	ExtraYAML string
	// TLS makes every daemon serve HTTPS only, with a certificate of a PKI
	// made for the test (Quorum.PKI); the Quorum's clients trust its CA and
	// present its client certificate.
	TLS bool
	// ClientAuth is the daemons' server.tls.client_auth with TLS: "require"
	// (default), "request" or "none".
	ClientAuth string
	// Policy, if set, adjusts every daemon's DefaultPolicy (e.g. its
	// BackupExport mode) before the daemon starts.
	Policy func(*policy.Policy)
}

// Quorum is a running quorum of daemons sharing one relay.
type Quorum struct {
	// Daemons are the parties, in order.
	Daemons []*Daemon
	// RelayAddr is the relay's "host:port" (every daemon's default relay).
	RelayAddr string
	// PKI is the daemons' TLS PKI with Options.TLS (CA, server and client
	// certificates as PEM files and as Go values), else nil.
	PKI *relaytest.PKI

	t         testing.TB
	threshold int
	hc        *http.Client
	validate  bool

	mu      sync.Mutex
	proxies map[string]string // a daemon's URL → its validating proxy's
}

// liveInProcess counts daemons running in this process: SoftHSM cannot
// show them tokens made after its module initialized.
var liveInProcess atomic.Int32

// Start starts a quorum for t and stops it when t ends. It fails t on any
// error, and skips it when SoftHSM2 is not installed.
//
// SoftHSM lists its tokens once, when the first HSM in the process opens:
// quorums run in-process one after another (not in parallel tests) unless
// their tokens were all made up front (Options.Tokens) or the daemons run
// from a binary (Options.QuorumdBinary). Start says so rather than hang.
func Start(t testing.TB, o Options) *Quorum {
	t.Helper()
	if o.Parties == 0 {
		o.Parties = 3
	}
	if o.Parties < 1 || o.Parties > 16 {
		t.Fatalf("quorumtest: %d parties: want 1 to 16", o.Parties)
	}
	if o.Threshold == 0 {
		o.Threshold = o.Parties/2 + 1
	}
	if o.Threshold < 1 || o.Threshold > o.Parties {
		t.Fatalf("quorumtest: threshold %d of %d parties", o.Threshold, o.Parties)
	}
	switch o.Store {
	case "", "bbolt", "postgres":
	default:
		t.Fatalf("quorumtest: store %q: want bbolt or postgres", o.Store)
	}
	if o.ClientAuth != "" && !o.TLS {
		t.Fatalf("quorumtest: ClientAuth %q without TLS", o.ClientAuth)
	}
	hsmtest.SkipIfMissing(t)
	q := &Quorum{t: t, threshold: o.Threshold, RelayAddr: o.RelayAddress, validate: !o.NoSpecValidation,
		proxies: map[string]string{}}
	var tc *tls.Config
	if o.TLS {
		q.PKI = relaytest.NewPKI(t)
		tc = q.PKI.ClientTLS(true) // a certificate the daemons may ignore (ClientAuth none)
	}
	q.hc = client.NewHTTPClient(tc, 4*o.Parties)
	if q.validate {
		q.hc.Transport = apispec.NewTransport(t, q.hc.Transport)
	}
	t.Cleanup(q.hc.CloseIdleConnections)

	tokens := o.Tokens
	if tokens == nil {
		if o.QuorumdBinary == "" && liveInProcess.Load() > 0 {
			t.Fatalf("quorumtest: another quorum runs in this process: SoftHSM lists tokens only when its module first initializes, " +
				"so new tokens stay invisible until every HSM is closed. Stop it first, pass Options.Tokens made up front, or set Options.QuorumdBinary")
		}
		prev, had := os.LookupEnv("SOFTHSM2_CONF")
		t.Cleanup(func() { // runs after the daemons stopped
			if had {
				os.Setenv("SOFTHSM2_CONF", prev)
			} else {
				os.Unsetenv("SOFTHSM2_CONF")
			}
		})
		labels := make([]string, o.Parties)
		for i := range labels {
			labels[i] = fmt.Sprintf("quorumtest-%d", i)
		}
		var err error
		if tokens, err = hsmtest.NewTokens(t.TempDir(), labels...); err != nil {
			t.Fatalf("quorumtest: %v", err)
		}
	}
	if len(tokens) != o.Parties {
		t.Fatalf("quorumtest: %d tokens for %d parties", len(tokens), o.Parties)
	}
	if q.RelayAddr == "" {
		q.RelayAddr = relaytest.Start(t)
	}
	var pg *pgtest.Cluster
	if o.Store == "postgres" {
		pg = pgtest.StartOrSkip(t)
	}

	for i := range o.Parties {
		do := DaemonOptions{Token: tokens[i], RelayAddress: q.RelayAddr, AllowedRelays: []string{q.RelayAddr},
			CeremonyTimeout: o.CeremonyTimeout, ExtraYAML: o.ExtraYAML, TLS: q.PKI, ClientAuth: o.ClientAuth, Policy: o.Policy}
		if pg != nil {
			dsn, err := pg.CreateDatabase(context.Background(), fmt.Sprintf("party%d", i))
			if err != nil {
				t.Fatalf("quorumtest: %v", err)
			}
			do.PostgresDSN = dsn
		}
		d := Configure(t, do, o.QuorumdBinary)
		d.Start()
		t.Cleanup(d.Stop)
		q.Daemons = append(q.Daemons, d)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, d := range q.Daemons {
				t.Logf("quorumtest: daemon %d (%s) logs, last 64 KiB:\n%s", i, d.URL, d.logs.Tail(64<<10))
			}
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i, d := range q.Daemons {
		u, err := q.AdminClient(i).CreateUser(ctx, "user")
		if err != nil {
			t.Fatalf("quorumtest: daemon %d: creating its user: %v", i, err)
		}
		d.UserKey, d.UserID = u.APIKey, u.UserID
	}
	return q
}

// N is the number of parties.
func (q *Quorum) N() int { return len(q.Daemons) }

// Threshold is the threshold Options asked for.
func (q *Quorum) Threshold() int { return q.threshold }

// URL is the base URL to reach daemon i with an HTTP client of one's own
// (curl, raw requests, another language's client): that of ValidatedURL's
// proxy, so that every exchange is checked against docs/openapi.yaml. With
// Options.NoSpecValidation it is DirectURL; so it is with Options.TLS, as
// the proxy speaks plain HTTP without a client certificate: reach the
// daemons there through HTTPClient, which validates.
func (q *Quorum) URL(i int) string {
	q.t.Helper()
	if !q.validate || q.PKI != nil {
		return q.DirectURL(i)
	}
	return q.ValidatedURL(i)
}

// DirectURL is daemon i's own base URL ("http://127.0.0.1:port", https
// with Options.TLS): no validation, no proxy hop (for benchmarks).
func (q *Quorum) DirectURL(i int) string { return q.Daemons[i].URL }

// UserKey is the API key of daemon i's user; AdminKey that of its admin.
func (q *Quorum) UserKey(i int) string { return q.Daemons[i].UserKey }

// AdminKey is the API key of daemon i's bootstrapped admin.
func (q *Quorum) AdminKey(i int) string { return q.Daemons[i].AdminKey }

// HTTPClient is the HTTP client the Quorum's clients share: it validates
// every exchange (unless Options.NoSpecValidation) and, with Options.TLS,
// trusts the test CA and presents the test client certificate.
func (q *Quorum) HTTPClient() *http.Client { return q.hc }

// Client is a client of daemon i as its user.
func (q *Quorum) Client(i int) *client.Client {
	return q.newClient(q.Daemons[i].URL, q.Daemons[i].UserKey)
}

// AdminClient is a client of daemon i as its admin.
func (q *Quorum) AdminClient(i int) *client.Client {
	return q.newClient(q.Daemons[i].URL, q.Daemons[i].AdminKey)
}

// Clients are the users' clients of every daemon, in order.
func (q *Quorum) Clients() []*client.Client {
	cs := make([]*client.Client, q.N())
	for i := range cs {
		cs[i] = q.Client(i)
	}
	return cs
}

// Driver is a client.Quorum of every daemon's user: it runs imports,
// keygens, signatures, refreshes and reshares across the parties.
func (q *Quorum) Driver() *client.Quorum { return &client.Quorum{Parties: q.Clients()} }

// ValidatedURL is the base URL of a reverse proxy in front of daemon i
// that fails the test on any exchange docs/openapi.yaml does not describe
// (even with Options.NoSpecValidation): for callers that bring their own
// HTTP client. One proxy serves each run of a daemon: after a restart (a
// new port) the next call starts another. Proxies stop when the test ends.
// Not with Options.TLS (see URL).
func (q *Quorum) ValidatedURL(i int) string {
	q.t.Helper()
	if q.PKI != nil {
		q.t.Fatalf("quorumtest: ValidatedURL: the daemons serve HTTPS, and the validating proxy speaks plain HTTP " +
			"without a client certificate: use HTTPClient (it validates) with DirectURL")
	}
	target := q.Daemons[i].URL
	q.mu.Lock()
	defer q.mu.Unlock()
	p, ok := q.proxies[target]
	if !ok {
		p = apispec.Proxy(q.t, target)
		q.proxies[target] = p
	}
	return p
}

func (q *Quorum) newClient(base, key string) *client.Client {
	c, err := client.New(base, key, client.WithHTTPClient(q.hc), client.WithUserAgent("quorumtest"))
	if err != nil {
		q.t.Fatalf("quorumtest: client of %s: %v", base, err)
	}
	return c
}
