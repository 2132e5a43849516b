package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/boot"
	"github.com/quorumd/quorumd/daemon/quorum"
	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/hsm"
	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/relay"
)

// BenchmarkE2ESignTrace signs with 2 of a 2-of-3 key through HTTP against
// three in-process daemons (real SoftHSM tokens, stores, policy files) and
// a quorum-relay process, one signature at a time, and logs (-v) the
// wall-clock trace of signer 0's call of median duration: the HTTP call
// as the client saw it, the key service's Sign inside it, and each store
// read, HSM open and relay request, start → end in ms from the call's
// start. Gaps inside Sign are CPU (envelopes, FROST); before and after it,
// the HTTP layer (authorization, policy, the key record, JSON, audit).
//
//	go test ./cmd/quorumd -run '^$' -bench E2ESignTrace -benchtime 300x -v
func BenchmarkE2ESignTrace(b *testing.B) {
	t := &testing.T{}
	tr := &signTracer{}
	q := tracedCluster(b, t, "", func(i int, relayAddr string) boot.OpenFunc { return tracedBackends(tr, i, relayAddr) })
	priv, pub := newPrivateKey(t)
	s := q.slots(q.nodes)
	for i, a := range q.importKey(q.nodes, s, 2, priv) {
		if a.status != 200 {
			b.Fatalf("import at node %d: %d %v", i, a.status, a.body["_raw"])
		}
	}
	signers := q.nodes[:2]
	keyIDs := []string{s[0].keyID, s[1].keyID}
	msg := make([]byte, 32)
	for b.Loop() {
		b.StopTimer()
		rand.Read(msg)
		room := signers[0].must("POST", "/create-room", signers[0].userKey, map[string]any{"room_size": 2})["room_uuid"].(string)
		b.StartTimer()
		tr.begin()
		out := make([]answer, len(signers))
		var wg sync.WaitGroup
		for i, nd := range signers {
			wg.Go(func() {
				t0 := time.Now()
				st, body := nd.call("POST", "/bip340/sign", nd.userKey, map[string]any{"room_uuid": room, "key_id": keyIDs[i], "msg": hex.EncodeToString(msg)})
				tr.add(i, "HTTP call (client)", t0)
				out[i] = answer{st, body}
			})
		}
		wg.Wait()
		tr.end()
		for i, a := range out {
			if a.status != 200 {
				b.Fatalf("sign at node %d: %d %v", i, a.status, a.body["_raw"])
			}
		}
	}
	b.StopTimer()
	verify(t, pub, msg, out0(q, signers, keyIDs, msg))
	b.ReportMetric(msOf(tr.answerGap("key service Sign", "HTTP call (client)")), "gap-p50-ms")
	b.Log("\n" + tr.report(0, "HTTP call (client)") + tr.report(1, "HTTP call (client)"))
}

// tracedCluster starts three in-process daemons (log level info, the
// demo's and a deployment's: debug lines cost time too) with room limits
// lifted, behind a quorum-relay process, each with a user alice and the
// backends open returns; hsm adds lines to each daemon's hsm section.
func tracedCluster(b *testing.B, t *testing.T, hsm string, open func(party int, relayAddr string) boot.OpenFunc) *cluster {
	relayAddr := testkit.RelayProcess(b, "-max-rooms-per-client", "1000000",
		"-client-room-rate", "100000", "-client-room-burst", "100000")
	q := &cluster{t: t}
	for i := range 3 {
		n := configureNode(t, tokens[i], relayAddr, e2eCeremonyTimeout, relayAddr)
		n.editConfig("", "  user_rooms: 1000000\n  user_room_rate: 100000\n  user_room_burst: 100000\n")
		raw, err := os.ReadFile(n.cfgPath)
		if err != nil {
			b.Fatal(err)
		}
		cfg := strings.Replace(string(raw), "level: debug", "level: info", 1)
		cfg = strings.Replace(cfg, "hsm:\n", "hsm:\n"+hsm, 1)
		if err := os.WriteFile(n.cfgPath, []byte(cfg), 0o600); err != nil {
			b.Fatal(err)
		}
		n.base = startTraced(b, n, open(i, relayAddr))
		n.userKey, n.userID = n.createUser("alice")
		q.nodes = append(q.nodes, n)
	}
	return q
}

// startTraced runs n's configured daemon in-process as quorumd does, with
// open for its backends, until the benchmark ends; it returns its URL.
func startTraced(b *testing.B, n *node, open boot.OpenFunc) string {
	cfg, _, err := daemon.LoadConfig(n.cfgPath, os.Environ())
	if err != nil {
		b.Fatal(err)
	}
	log, err := boot.NewLogger(n.logs, cfg.Log.Level)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- boot.Run(ctx, cfg, log, boot.Options{Open: open, Ready: ready}) }()
	b.Cleanup(func() { cancel(); <-done })
	select {
	case addr := <-ready:
		return "http://" + addr
	case err := <-done:
		b.Fatalf("daemon: %v:\n%s", err, n.logs.String())
	}
	return ""
}

// out0 signs msg once more and returns signer 0's signature.
func out0(q *cluster, signers []*node, keyIDs []string, msg []byte) string {
	a := q.sign(signers, keyIDs, msg)[0]
	s, _ := a.body["signature"].(string)
	return s
}

// tracedBackends opens a daemon's real backends and routes its key
// service's store reads, HSM opens and relay requests through tr as party.
func tracedBackends(tr *signTracer, party int, relayAddr string) boot.OpenFunc {
	return func(ctx context.Context, cfg *daemon.Config, log *slog.Logger) (daemon.Backends, io.Closer, error) {
		bk, cl, err := openBackends(ctx, cfg, log)
		if err != nil {
			return bk, cl, err
		}
		svc := bk.Ceremonies.(*quorum.Service)
		svc.Store = tracedStore{Store: svc.Store, tr: tr, party: party}
		svc.Sealer = tracedSealer{Sealer: svc.Sealer, tr: tr, party: party}
		c, err := relay.NewClient(relayAddr, relay.ClientConfig{
			OnRequest: func(method, path string, t0 time.Time) { tr.add(party, "relay "+relayOp(method, path), t0) }})
		if err != nil {
			cl.Close()
			return bk, nil, err
		}
		svc.Relays = fixedRelay{c}
		bk.Ceremonies = tracedSign{Ceremonies: svc, tr: tr, party: party}
		return bk, cl, nil
	}
}

// signTracer collects timed events per signer per call.
type signTracer struct {
	mu   sync.Mutex
	on   bool // within a call
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
	t.t0, t.cur, t.on = time.Now(), nil, true
	t.mu.Unlock()
}

func (t *signTracer) end() {
	t.mu.Lock()
	t.runs = append(t.runs, t.cur)
	t.on = false
	t.mu.Unlock()
}

func (t *signTracer) add(party int, name string, start time.Time) {
	end := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.on || start.Before(t.t0) {
		return // between calls, or a previous call's background work
	}
	t.cur = append(t.cur, traceEvent{party: party, name: name, start: start.Sub(t.t0), end: end.Sub(t.t0)})
}

// report gives party's events in the call (whole: the event that spans
// it) of median duration, one real trace rather than a blend of calls,
// ordered by start.
func (t *signTracer) report(party int, whole string) string {
	type run struct {
		d  time.Duration
		ev []traceEvent
	}
	var runs []run
	for _, r := range t.runs {
		var mine []traceEvent
		var d time.Duration
		for _, e := range r {
			if e.party == party {
				mine = append(mine, e)
				if e.name == whole {
					d = e.end - e.start
				}
			}
		}
		runs = append(runs, run{d, mine})
	}
	if len(runs) == 0 {
		return "no calls"
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].d < runs[j].d })
	m := runs[len(runs)/2]
	sort.Slice(m.ev, func(i, j int) bool { return m.ev[i].start < m.ev[j].start })
	var sb strings.Builder
	fmt.Fprintf(&sb, "signer %d: the median of %d calls (p10 %.3f ms, p90 %.3f ms); ms from the call's start:\n",
		party, len(runs), msOf(runs[len(runs)/10].d), msOf(runs[len(runs)*9/10].d))
	for _, e := range m.ev {
		fmt.Fprintf(&sb, "  %7.3f → %7.3f  (%6.3f)  %s\n", msOf(e.start), msOf(e.end), msOf(e.end-e.start), e.name)
	}
	return sb.String()
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// answerGap is the median, over calls and parties, of the time from the
// end of the event inner (the key service's call) to the end of outer
// (the client's HTTP call): writing the answer, and whatever competes with
// it.
func (t *signTracer) answerGap(inner, outer string) time.Duration {
	var gaps []time.Duration
	for _, r := range t.runs {
		ends := map[int][2]time.Duration{}
		for _, e := range r {
			x := ends[e.party]
			switch e.name {
			case inner:
				x[0] = e.end
			case outer:
				x[1] = e.end
			}
			ends[e.party] = x
		}
		for _, x := range ends {
			if x[0] > 0 && x[1] > 0 {
				gaps = append(gaps, x[1]-x[0])
			}
		}
	}
	if len(gaps) == 0 {
		return 0
	}
	slices.Sort(gaps)
	return gaps[len(gaps)/2]
}

type tracedSign struct {
	daemon.Ceremonies
	tr    *signTracer
	party int
}

func (s tracedSign) Sign(ctx context.Context, p daemon.SignParams) ([]byte, error) {
	t0 := time.Now()
	defer s.tr.add(s.party, "key service Sign", t0)
	return s.Ceremonies.Sign(ctx, p)
}

type tracedStore struct {
	store.Store
	tr    *signTracer
	party int
}

func (s tracedStore) GetOwned(ctx context.Context, owner, keyID string) (store.Record, error) {
	t0 := time.Now()
	defer s.tr.add(s.party, "store read", t0)
	return s.Store.GetOwned(ctx, owner, keyID)
}

type tracedSealer struct {
	hsm.Sealer
	tr    *signTracer
	party int
}

func (s tracedSealer) Open(blob, aad []byte) ([]byte, error) {
	t0 := time.Now()
	defer s.tr.add(s.party, "HSM open", t0)
	return s.Sealer.Open(blob, aad)
}

type fixedRelay struct{ c *relay.Client }

func (f fixedRelay) Client(string) (*relay.Client, error) { return f.c, nil }

func relayOp(method, p string) string {
	switch {
	case p == "/v1/info":
		return "info"
	case strings.HasSuffix(p, "/seats"):
		return "claim seat"
	case strings.HasSuffix(p, "/messages") && method == http.MethodPost:
		return "post"
	case strings.HasSuffix(p, "/messages"):
		return "fetch"
	case method == http.MethodDelete:
		return "leave"
	case method == http.MethodGet:
		return "room info"
	}
	return method + " " + p
}
