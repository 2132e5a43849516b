package relay_test

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/relay"
)

// tls12 is a client TLS config trusting only the system roots.
var tls12 = tls.Config{MinVersion: tls.VersionTLS12}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func jsonEncode(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

// fakeRelay is a hostile relay that seats anyone and answers every other
// request with a fixed status and body, to check the client's validation
// of untrusted answers.
func fakeRelay(t *testing.T, status int, body string) string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/info":
			_, _ = w.Write([]byte(`{"name":"fake"}`))
		case strings.HasSuffix(r.URL.Path, "/seats"):
			_, _ = w.Write([]byte(`{"token":"` + strings.Repeat("ab", 32) + `","set":"` + strings.Repeat("cd", 32) + `","seats":2}`))
		default:
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

// serveOn runs srv on a loopback listener; the test shuts it down itself
// (a second Shutdown at cleanup is harmless).
func serveOn(t *testing.T, srv *relay.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return")
		}
	})
	// Serve must be running before the test may shut it down.
	c, err := relay.NewClient(ln.Addr().String(), relay.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ln.Addr().String()
}

// Test parties: party(i) is the keygen_id (hex) of a fixed identity, and
// every test seat declares the member set of all of them, so parties of a
// room share one set unless a test says otherwise.
const testParties = 10

var testIDs = sync.OnceValue(func() []*envelope.Identity {
	ids := make([]*envelope.Identity, testParties)
	for i := range ids {
		var k btcec.ModNScalar
		k.SetInt(uint32(1000 + i))
		id, err := envelope.NewIdentity(&k)
		if err != nil {
			panic(err)
		}
		ids[i] = id
	}
	return ids
})

func testMembers() []envelope.Party {
	var ms []envelope.Party
	for _, id := range testIDs() {
		ms = append(ms, id.Public())
	}
	return ms
}

// party returns the name of test party i (0 ≤ i < testParties).
func party(i int) string { return hex.EncodeToString(testIDs()[i].Public().Bytes()) }

func identityOf(name string) *envelope.Identity {
	for _, id := range testIDs() {
		if hex.EncodeToString(id.Public().Bytes()) == name {
			return id
		}
	}
	return nil
}

// seats caches the seat each (room, party) took, so the tests can act as
// any party: the first post, fetch or leave claims it (as a ceremony's
// first step would).
var seats sync.Map

func seatOf(ctx context.Context, c *relay.Client, room, name string) (*relay.Seat, error) {
	key := fmt.Sprintf("%p/%s/%s", c, room, name)
	if st, ok := seats.Load(key); ok {
		return st.(*relay.Seat), nil
	}
	id := identityOf(name)
	if id == nil {
		return nil, fmt.Errorf("no test identity %q: %w", name, relay.ErrBadRequest)
	}
	st, err := c.TakeSeat(ctx, room, id, testMembers())
	if err != nil {
		return nil, err
	}
	actual, _ := seats.LoadOrStore(key, st)
	return actual.(*relay.Seat), nil
}

func postAs(c *relay.Client, ctx context.Context, room, from, to string, body []byte) error {
	st, err := seatOf(ctx, c, room, from)
	if err != nil {
		return err
	}
	_, err = st.Post(ctx, to, body)
	return err
}

func fetchAs(c *relay.Client, ctx context.Context, room, name string, after uint64, wait time.Duration) ([]relay.Message, error) {
	st, err := seatOf(ctx, c, room, name)
	if err != nil {
		return nil, err
	}
	return st.Fetch(ctx, after, wait)
}

func leaveAs(c *relay.Client, ctx context.Context, room, name string) error {
	st, err := seatOf(ctx, c, room, name)
	if err != nil {
		return err
	}
	return st.Leave(ctx)
}

func joinAs(t testing.TB, c *relay.Client, room, name string) *relay.Conn {
	t.Helper()
	st, err := seatOf(ctxT(t), c, room, name)
	if err != nil {
		t.Fatalf("seat of %s: %v", name[:8], err)
	}
	return st.Conn()
}
