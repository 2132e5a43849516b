package quorum

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/hsm"
	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/relay"
)

// BenchmarkSignTrace signs with 2 of a 2-of-3 key through real Services
// (SoftHSM, bbolt, a quorum-relay process on loopback) and, with -v, logs the wall-clock
// trace of one signer's call: each store read, HSM open and relay request
// as median start → end (ms from the call's start); the gaps between are
// CPU (envelopes, FROST). Run it with -benchtime=200x or so:
//
//	go test ./daemon/quorum -run '^$' -bench SignTrace -benchtime 200x -v
func BenchmarkSignTrace(b *testing.B) {
	// The relay runs as its own process, as in a deployment; a room per
	// call needs its room limits lifted.
	ps := newPartiesOn(b, testkit.RelayProcess(b, "-max-rooms-per-client", "1000000",
		"-client-room-rate", "100000", "-client-room-burst", "100000"), 0, 0, 0)
	x, _ := btcec.NewPrivateKey()
	for i, err := range importAll(b, ps, x) {
		if err != nil {
			b.Fatalf("import, party %d: %v", i, err)
		}
	}
	signers := ps[:2]
	tr := &signTracer{}
	for i, p := range signers {
		p.svc.marks.wait(context.Background(), "alice", p.keyID)
		p.svc.Store = tracedStore{Store: p.svc.Store, tr: tr, party: i}
		p.svc.Sealer = tracedSealer{Sealer: p.svc.Sealer, tr: tr, party: i}
		c, err := relay.NewClient(p.svc.Relays.(*RelayPool).Default, relay.ClientConfig{
			Transport: &tracedRT{base: http.DefaultTransport.(*http.Transport).Clone(), tr: tr, party: i}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.Close)
		p.svc.Relays = fixedRelay{c}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	msg := make([]byte, 32)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		room, err := ps[2].svc.CreateRoom(ctx, len(signers))
		if err != nil {
			b.Fatal(err)
		}
		rand.Read(msg)
		b.StartTimer()
		tr.begin()
		errs := make([]error, len(signers))
		var wg sync.WaitGroup
		for i, p := range signers {
			wg.Go(func() {
				t0 := tr.now()
				_, errs[i] = p.svc.Sign(ctx, daemon.SignParams{Owner: "alice", KeyID: p.keyID, RoomUUID: room, Msg: msg})
				tr.add(i, "Sign (whole call)", t0)
			})
		}
		wg.Wait()
		tr.end()
		for i, err := range errs {
			if err != nil {
				b.Fatalf("signer %d: %v", i, err)
			}
		}
	}
	b.StopTimer()
	b.Log("\n" + tr.report(0))
}

// signTracer collects timed events per signer per iteration.
type signTracer struct {
	mu   sync.Mutex
	t0   time.Time
	cur  []traceEvent
	runs [][]traceEvent
}

type traceEvent struct {
	party      int
	name       string
	start, end time.Duration
}

func (t *signTracer) begin() {
	t.mu.Lock()
	t.t0, t.cur = time.Now(), nil
	t.mu.Unlock()
}

func (t *signTracer) end() {
	t.mu.Lock()
	t.runs = append(t.runs, t.cur)
	t.mu.Unlock()
}

func (t *signTracer) now() time.Time { return time.Now() }

func (t *signTracer) add(party int, name string, start time.Time) {
	end := time.Now()
	t.mu.Lock()
	t.cur = append(t.cur, traceEvent{party: party, name: name, start: start.Sub(t.t0), end: end.Sub(t.t0)})
	t.mu.Unlock()
}

// report gives party's events, the k-th occurrence of each name kept
// apart, as median start → end over all runs, ordered by start.
func (t *signTracer) report(party int) string {
	type key struct {
		name string
		k    int
	}
	starts, ends := map[key][]time.Duration{}, map[key][]time.Duration{}
	for _, run := range t.runs {
		seen := map[string]int{}
		for _, e := range run {
			if e.party != party {
				continue
			}
			k := key{e.name, seen[e.name]}
			seen[e.name]++
			starts[k] = append(starts[k], e.start)
			ends[k] = append(ends[k], e.end)
		}
	}
	med := func(ds []time.Duration) time.Duration {
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	var keys []key
	for k := range starts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return med(starts[keys[i]]) < med(starts[keys[j]]) })
	var sb strings.Builder
	fmt.Fprintf(&sb, "signer %d, medians of %d calls (ms from the call's start):\n", party, len(t.runs))
	for _, k := range keys {
		s, e := med(starts[k]), med(ends[k])
		fmt.Fprintf(&sb, "  %7.3f → %7.3f  (%6.3f)  %s\n", ms(s), ms(e), ms(e-s), k.name)
	}
	return sb.String()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

type tracedStore struct {
	store.Store
	tr    *signTracer
	party int
}

func (s tracedStore) GetOwned(ctx context.Context, owner, keyID string) (store.Record, error) {
	t0 := s.tr.now()
	defer s.tr.add(s.party, "store read", t0)
	return s.Store.GetOwned(ctx, owner, keyID)
}

type tracedSealer struct {
	hsm.Sealer
	tr    *signTracer
	party int
}

func (s tracedSealer) Open(blob, aad []byte) ([]byte, error) {
	t0 := s.tr.now()
	defer s.tr.add(s.party, "HSM open", t0)
	return s.Sealer.Open(blob, aad)
}

type fixedRelay struct{ c *relay.Client }

func (f fixedRelay) Client(string) (*relay.Client, error) { return f.c, nil }

// tracedRT times each relay request until its answer's body is closed.
type tracedRT struct {
	base  http.RoundTripper
	tr    *signTracer
	party int
}

func (r *tracedRT) RoundTrip(req *http.Request) (*http.Response, error) {
	t0 := r.tr.now()
	resp, err := r.base.RoundTrip(req)
	name := "relay " + relayOp(req)
	if err != nil {
		r.tr.add(r.party, name, t0)
		return nil, err
	}
	resp.Body = &tracedBody{ReadCloser: resp.Body, done: func() { r.tr.add(r.party, name, t0) }}
	return resp, nil
}

type tracedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *tracedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

func relayOp(req *http.Request) string {
	p := req.URL.Path
	switch {
	case p == "/v1/info":
		return "info"
	case strings.HasSuffix(p, "/seats"):
		return "claim seat"
	case strings.HasSuffix(p, "/messages") && req.Method == http.MethodPost:
		return "post"
	case strings.HasSuffix(p, "/messages"):
		return "fetch"
	case req.Method == http.MethodDelete:
		return "leave"
	case req.Method == http.MethodGet:
		return "room info"
	}
	return req.Method + " " + p
}
