package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// Server is the quorumd REST server.
type Server struct {
	cfg     *Config
	b       Backends
	log     *slog.Logger
	metrics *Metrics
	table   []*route
	// segments are the literal segments of the routes (kept whole in the
	// logged path).
	segments map[string]bool
	budgets  *budgets   // fair sharing of the limited routes (fairshare.go)
	rooms    *roomQuota // per-user /create-room limits
	srv      *fasthttp.Server
	tls      *tls.Config

	// base parents every request's context. It is cancelled only by Close,
	// after a graceful shutdown gave ceremonies in flight their time.
	base     context.Context
	stopBase context.CancelFunc
	stopping atomic.Bool
	tails    tailGroup // requests' work after their answers (tail.go)
}

// New builds a server from the configuration and backends; cfg must have
// passed Validate. logger receives JSON access, audit and error lines.
func New(cfg *Config, b Backends, logger *slog.Logger) (*Server, error) {
	if cfg == nil || logger == nil {
		return nil, errors.New("daemon: config and logger are required")
	}
	if b.Auth == nil || b.Admin == nil || b.Keys == nil || b.Rooms == nil || b.Ceremonies == nil {
		return nil, errors.New("daemon: backends Auth, Admin, Keys, Rooms and Ceremonies are all required")
	}
	s := &Server{
		cfg:     cfg,
		b:       b,
		log:     logger,
		metrics: NewMetrics(),
		budgets: newBudgets(cfg.Server, cfg.Ceremony.Timeout),
		rooms:   newRoomQuota(cfg.Limits),
	}
	if c, ok := b.Auth.(interface{ Collectors() []prometheus.Collector }); ok {
		if err := registerAll(s.metrics.reg, c.Collectors()); err != nil {
			return nil, fmt.Errorf("daemon: metrics: %w", err)
		}
	}
	s.base, s.stopBase = context.WithCancel(context.Background())
	s.table = s.routes()
	s.segments = map[string]bool{}
	for _, r := range s.table {
		for _, seg := range r.segs {
			s.segments[seg] = true
		}
	}
	if cfg.Server.TLS.Enabled() {
		t, err := serverTLS(cfg.Server.TLS)
		if err != nil {
			return nil, err
		}
		s.tls = t
	}
	s.srv = &fasthttp.Server{
		Handler:      s.Handler,
		ErrorHandler: s.parseError,
		Name:         "quorumd",
		// Timeouts bound reading a request and writing its answer; the
		// handler's own time (a ceremony) is bounded by ceremony.timeout,
		// since fasthttp arms the write deadline only after the handler.
		ReadTimeout:                  cfg.Server.ReadTimeout,
		WriteTimeout:                 cfg.Server.WriteTimeout,
		IdleTimeout:                  cfg.Server.IdleTimeout,
		MaxRequestBodySize:           cfg.Server.MaxBodyBytes,
		Concurrency:                  cfg.Server.MaxConnections,
		DisablePreParseMultipartForm: true,
		SecureErrorLogMessage:        true,
		CloseOnShutdown:              true,
		Logger:                       fasthttpLogger{s.log},
	}
	return s, nil
}

// serverTLS loads the listener's certificate and, for client
// authentication, the CA pool.
func serverTLS(c TLSConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("daemon: tls key pair: %w", err)
	}
	t := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.NoClientCert,
	}
	if c.ClientAuth == "request" || c.ClientAuth == "require" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("daemon: tls client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("daemon: tls client CA %s: no PEM certificate", c.ClientCAFile)
		}
		t.ClientCAs = pool
		t.ClientAuth = tls.VerifyClientCertIfGiven
		if c.ClientAuth == "require" {
			t.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return t, nil
}

func (s *Server) rules() *errorRules {
	return &errorRules{classify: s.b.Classify, mappings: s.b.Errors}
}

// Metrics returns the server's metrics registry.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Serve serves on ln (wrapped in TLS when configured) until Shutdown;
// connections zero fasthttp's read buffers, and under TLS crypto/tls's
// record buffer, as they reuse them (wipe.go).
func (s *Server) Serve(ln net.Listener) error {
	if s.tls != nil {
		ln = tls.NewListener(wipingListener{ln}, s.tls)
	}
	return s.srv.Serve(wipingListener{ln})
}

// ListenAndServe listens on server.listen and serves.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("daemon: listen: %w", err)
	}
	return s.Serve(ln)
}

// Shutdown stops accepting connections, makes /readyz fail and waits, until
// ctx ends, for requests in flight (ceremonies included) to finish, and
// then for the work they left after their answers (tail.go: certificate
// broadcasts, leaves, ready marks). If ctx ends first, the remaining
// requests' contexts are cancelled so their ceremonies fail cleanly, and
// ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopping.Store(true)
	err := s.srv.ShutdownWithContext(ctx)
	if err == nil {
		err = s.tails.wait(ctx)
	}
	if err != nil {
		s.stopBase()
	}
	return err
}

// Close cancels every request context; ceremonies in flight abort.
func (s *Server) Close() { s.stopBase() }

// fasthttpLogger routes fasthttp's own messages (connection errors; request
// contents are suppressed by SecureErrorLogMessage) into slog.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Warn("http server", "detail", fmt.Sprintf(format, args...))
}
