package daemon

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/tail"
)

// tailEvents records, in order, what the server's connections wrote and
// closed and when tail work ran.
type tailEvents struct {
	mu sync.Mutex
	ev []string
}

func (e *tailEvents) add(s string) {
	e.mu.Lock()
	e.ev = append(e.ev, s)
	e.mu.Unlock()
}

func (e *tailEvents) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.ev)
}

// recordingListener's connections record each write once it returned, and
// their close: under the server's wipingConn, so a write recorded before
// "tail" is the answer written before the tail started.
type recordingListener struct {
	net.Listener
	ev *tailEvents
}

func (l recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, ev: l.ev}, nil
}

type recordingConn struct {
	net.Conn
	ev *tailEvents
}

func (c *recordingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.ev.add("write")
	return n, err
}

func (c *recordingConn) Close() error {
	err := c.Conn.Close()
	c.ev.add("close")
	return err
}

// tailCeremonies answers an import recipient at once (the HTTP layer is
// under test, not a ceremony) after running hook, which defers tail work.
type tailCeremonies struct {
	*memNet
	ev   *tailEvents
	hook func(ctx context.Context)
}

func (c *tailCeremonies) ImportRecipient(ctx context.Context, p ImportParams) (ImportResult, error) {
	c.ev.add("ceremony")
	c.hook(ctx)
	return ImportResult{KeyID: p.KeyID, Pubkey: make([]byte, 32)}, nil
}

// tailServer is a second server on the harness's backends, serving on a
// recordingListener.
type tailServer struct {
	srv      *Server
	addr     string
	ev       *tailEvents
	cer      *tailCeremonies
	stopOnce sync.Once
	stopErr  error
	served   chan error
	failedOK bool // the test made Shutdown fail on purpose
	// clientTLS is set when the server serves TLS.
	clientTLS *tls.Config
}

// dial connects to the server (through TLS when it serves it).
func (ts *tailServer) dial(t *testing.T) net.Conn {
	t.Helper()
	var c net.Conn
	var err error
	if ts.clientTLS != nil {
		c, err = tls.Dial("tcp", ts.addr, ts.clientTLS)
	} else {
		c, err = net.Dial("tcp", ts.addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// selfSignedTLS makes a server configuration with a fresh self-signed
// certificate for 127.0.0.1, and a client configuration trusting it.
func selfSignedTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
}

func newTailServer(t *testing.T, withTLS bool) (*harness, *tailServer) {
	t.Helper()
	ts := &tailServer{ev: &tailEvents{}, served: make(chan error, 1)}
	var b Backends
	h := newHarnessWith(t, nil, func(h *harness, bk *Backends) {
		ts.cer = &tailCeremonies{memNet: h.net, ev: ts.ev}
		bk.Ceremonies = ts.cer
		b = *bk
	})
	srv, err := New(h.cfg, b, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if withTLS {
		srv.tls, ts.clientTLS = selfSignedTLS(t)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.srv, ts.addr = srv, ln.Addr().String()
	go func() { ts.served <- srv.Serve(recordingListener{ln, ts.ev}) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ts.stop(ctx); err != nil && !ts.failedOK {
			t.Errorf("shutdown: %v", err)
		}
		srv.Close()
	})
	return h, ts
}

// stop shuts the server down once and waits for Serve to return.
func (ts *tailServer) stop(ctx context.Context) error {
	ts.stopOnce.Do(func() {
		ts.stopErr = ts.srv.Shutdown(ctx)
		if err := <-ts.served; err != nil && ts.stopErr == nil {
			ts.stopErr = err
		}
	})
	return ts.stopErr
}

// rawImportRequest is a raw import-recipient request for a fresh slot of a
// fresh user.
func rawImportRequest(h *harness) string {
	u := h.newUser(fmt.Sprintf("tail%d", time.Now().UnixNano()))
	a, b := h.newSlot(u), h.newSlot(u)
	room := h.newRoom(u, 2)
	body := importBody(room, b.keyID, 2, []string{a.keygenID}, "")
	return "POST /bip340/import/import-key-share-recipient HTTP/1.1\r\nHost: quorumd\r\nAuthorization: " + u +
		"\r\nContent-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body
}

// once is tail work that records "tail" and closes done, counting runs.
type once struct {
	ev   *tailEvents
	runs atomic.Int32
	done chan struct{}
}

func newOnce(ev *tailEvents) *once { return &once{ev: ev, done: make(chan struct{})} }

func (o *once) run() {
	o.ev.add("tail")
	if o.runs.Add(1) == 1 {
		close(o.done)
	}
}

// wait waits (generously) for the tail work to have run, exactly once.
func (o *once) wait(t *testing.T) {
	t.Helper()
	select {
	case <-o.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the tail work never ran")
	}
	if n := o.runs.Load(); n != 1 {
		t.Fatalf("the tail work ran %d times", n)
	}
}

// deferAndLinger defers o and then gives an eager start (one that does
// not wait for the answer) a moment to happen inside the handler, where
// the event order would show it.
func deferAndLinger(ctx context.Context, o *once) {
	tail.Go(ctx, o.run)
	select {
	case <-o.done:
	case <-time.After(100 * time.Millisecond):
	}
}

// wroteBeforeTail asserts that the connection wrote (or closed) between
// the ceremony and the tail work.
func wroteBeforeTail(t *testing.T, ev []string) {
	t.Helper()
	c, i := slices.Index(ev, "ceremony"), slices.Index(ev, "tail")
	if c < 0 || i < c || (!slices.Contains(ev[c:i], "write") && !slices.Contains(ev[c:i], "close")) {
		t.Fatalf("the tail work ran before the answer was written: %v", ev)
	}
}

func readAnswer(t *testing.T, br *bufio.Reader) (int, string) {
	t.Helper()
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

// TestTailStartsAfterAnswer: a ceremony's tail work starts once the answer
// was written (ordering observed at the connection, not timed), runs once,
// and the connection stays usable (keep-alive); in plain HTTP and in TLS.
func TestTailStartsAfterAnswer(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", withTLS), func(t *testing.T) { tailStartsAfterAnswer(t, withTLS) })
	}
}

func tailStartsAfterAnswer(t *testing.T, withTLS bool) {
	h, ts := newTailServer(t, withTLS)
	o := newOnce(ts.ev)
	ts.cer.hook = func(ctx context.Context) { deferAndLinger(ctx, o) }
	req := rawImportRequest(h)
	c := ts.dial(t)
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	if st, body := readAnswer(t, br); st != 200 {
		t.Fatalf("import: %d %s", st, body)
	}
	o.wait(t)
	wroteBeforeTail(t, ts.ev.list())
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: quorumd\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if st, body := readAnswer(t, br); st != 200 {
		t.Fatalf("healthz on the same connection: %d %s", st, body)
	}
	if n := o.runs.Load(); n != 1 {
		t.Fatalf("the tail work ran %d times", n)
	}
}

// TestTailRunsWhenClientLeaves: the client closes its connection while the
// ceremony runs; the answer's write fails or goes nowhere, and the tail
// work still runs, once, after it.
func TestTailRunsWhenClientLeaves(t *testing.T) {
	h, ts := newTailServer(t, false)
	o := newOnce(ts.ev)
	gone := make(chan struct{})
	ts.cer.hook = func(ctx context.Context) {
		deferAndLinger(ctx, o)
		<-gone
	}
	req := rawImportRequest(h)
	c := ts.dial(t)
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	// Closed without reading: the server's answer meets a reset.
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	close(gone)
	o.wait(t)
	wroteBeforeTail(t, ts.ev.list())
}

// TestTailRunsAfterPanic: a handler that panics after deferring tail work
// answers 500, and the work runs after that answer.
func TestTailRunsAfterPanic(t *testing.T) {
	h, ts := newTailServer(t, false)
	o := newOnce(ts.ev)
	ts.cer.hook = func(ctx context.Context) {
		deferAndLinger(ctx, o)
		panic(errors.New("ceremony bug"))
	}
	req := rawImportRequest(h)
	c := ts.dial(t)
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	if st, body := readAnswer(t, bufio.NewReader(c)); st != 500 {
		t.Fatalf("import that panicked: %d %s", st, body)
	}
	o.wait(t)
	wroteBeforeTail(t, ts.ev.list())
}

// TestTailPipelined: fasthttp holds back the answer of a request followed
// by a pipelined one until that one is answered too; the tail work starts
// when the next request is read instead (a read of the key on the same
// connection must not wait for a ready mark still held).
func TestTailPipelined(t *testing.T) {
	h, ts := newTailServer(t, false)
	o := newOnce(ts.ev)
	ts.cer.hook = func(ctx context.Context) { tail.Go(ctx, o.run) }
	req := rawImportRequest(h)
	c := ts.dial(t)
	defer c.Close()
	if _, err := io.WriteString(c, req+"GET /healthz HTTP/1.1\r\nHost: quorumd\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for _, what := range []string{"import", "healthz"} {
		if st, body := readAnswer(t, br); st != 200 {
			t.Fatalf("%s: %d %s", what, st, body)
		}
	}
	o.wait(t)
}

// TestTailWithoutConnection: a request served without the server's
// connection wrapper (Handler called directly) starts its tail work when
// the handler returns.
func TestTailWithoutConnection(t *testing.T) {
	h, ts := newTailServer(t, false)
	o := newOnce(ts.ev)
	ts.cer.hook = func(ctx context.Context) { tail.Go(ctx, o.run) }
	u := h.newUser("direct")
	a, b := h.newSlot(u), h.newSlot(u)
	room := h.newRoom(u, 2)
	var fc fastCtx
	fc.init("POST", "/bip340/import/import-key-share-recipient", u, importBody(room, b.keyID, 2, []string{a.keygenID}, ""))
	ts.srv.Handler(fc.ctx)
	if st := fc.ctx.Response.StatusCode(); st != 200 {
		t.Fatalf("import: %d %s", st, fc.ctx.Response.Body())
	}
	o.wait(t)
}

// TestShutdownWaitsForTails: Shutdown returns only once the tail work of
// answered requests ended, and reports a grace period that ends first.
func TestShutdownWaitsForTails(t *testing.T) {
	for _, graceEnds := range []bool{false, true} {
		t.Run(fmt.Sprintf("grace_ends=%v", graceEnds), func(t *testing.T) {
			h, ts := newTailServer(t, false)
			started, release := make(chan struct{}), make(chan struct{})
			var finished atomic.Bool
			ts.cer.hook = func(ctx context.Context) {
				tail.Go(ctx, func() {
					close(started)
					<-release
					finished.Store(true)
				})
			}
			req := rawImportRequest(h)
			c := ts.dial(t)
			defer c.Close()
			if _, err := io.WriteString(c, req); err != nil {
				t.Fatal(err)
			}
			if st, body := readAnswer(t, bufio.NewReader(c)); st != 200 {
				t.Fatalf("import: %d %s", st, body)
			}
			<-started
			grace := 10 * time.Second
			if graceEnds {
				grace, ts.failedOK = 200*time.Millisecond, true
			}
			ctx, cancel := context.WithTimeout(context.Background(), grace)
			defer cancel()
			stopped := make(chan error, 1)
			go func() { stopped <- ts.stop(ctx) }()
			if graceEnds {
				if err := <-stopped; !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("shutdown with a tail still running: %v", err)
				}
				close(release)
				wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer wcancel()
				if err := ts.srv.tails.wait(wctx); err != nil || !finished.Load() {
					t.Fatalf("tail work after release: %v, finished %v", err, finished.Load())
				}
				return
			}
			select {
			case err := <-stopped:
				t.Fatalf("shutdown returned (%v) while tail work ran", err)
			case <-time.After(200 * time.Millisecond):
			}
			close(release)
			if err := <-stopped; err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			if !finished.Load() {
				t.Fatal("shutdown returned before the tail work ended")
			}
		})
	}
}
