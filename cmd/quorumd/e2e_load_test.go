package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/relay"
)

// editConfig rewrites a configured (not yet started) node's YAML: extra
// lines go at the top of the server section, limits is appended as a
// limits section.
func (n *node) editConfig(server, limits string) {
	n.t.Helper()
	raw, err := os.ReadFile(n.cfgPath)
	if err != nil {
		n.t.Fatal(err)
	}
	cfg := strings.Replace(string(raw), "server:\n", "server:\n"+server, 1)
	if limits != "" {
		cfg += "limits:\n" + limits
	}
	if err := os.WriteFile(n.cfgPath, []byte(cfg), 0o600); err != nil {
		n.t.Fatal(err)
	}
}

// floodSigns keeps workers signing requests of key (at nodes[0], as
// apiKey) in rooms made directly on the relay that nobody else joins, until
// ctx ends; each holds whatever the daemon gives it until the ceremony
// timeout. It returns the answers' status counts.
func floodSigns(ctx context.Context, t *testing.T, n *node, relayAddr, apiKey, keyID string, workers int) (wait func() map[int]int) {
	rc, err := relay.NewClient(relayAddr, relay.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 5 * time.Minute}
	for range workers {
		wg.Go(func() {
			var err error
			room := ""
			for ctx.Err() == nil {
				// A refused request took no seat in its room, so the room
				// is reused; the flood must not exhaust the relay itself
				// (that is the relay's own per-client limit).
				if room == "" {
					if room, err = rc.CreateRoom(ctx, 2); err != nil {
						room = ""
						time.Sleep(50 * time.Millisecond)
						continue
					}
				}
				msg := make([]byte, 32)
				rand.Read(msg)
				body := fmt.Sprintf(`{"room_uuid":%q,"key_id":%q,"msg":%q}`, room, keyID, hex.EncodeToString(msg))
				req, _ := http.NewRequestWithContext(ctx, "POST", n.base+"/bip340/sign", strings.NewReader(body))
				req.Header.Set("Authorization", apiKey)
				res, err := hc.Do(req)
				if err != nil {
					continue
				}
				res.Body.Close()
				if res.StatusCode != 503 {
					room = ""
				}
				mu.Lock()
				codes[res.StatusCode]++
				mu.Unlock()
				if res.StatusCode == 503 {
					time.Sleep(50 * time.Millisecond) // a flooder that honours nothing but keeps a little pace
				}
			}
		})
	}
	return func() map[int]int { wg.Wait(); return codes }
}

// latency records operation durations and failures.
type latency struct {
	mu   sync.Mutex
	ok   []time.Duration
	fail map[string]int
}

func (l *latency) add(d time.Duration, failure string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if failure == "" {
		l.ok = append(l.ok, d)
		return
	}
	if l.fail == nil {
		l.fail = map[string]int{}
	}
	l.fail[failure]++
}

func (l *latency) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	nfail := 0
	for _, c := range l.fail {
		nfail += c
	}
	total := len(l.ok) + nfail
	if total == 0 {
		return "no samples"
	}
	p50 := "-"
	if len(l.ok) > 0 {
		s := slices.Clone(l.ok)
		slices.Sort(s)
		p50 = s[len(s)/2].Round(100 * time.Microsecond).String()
	}
	return fmt.Sprintf("n=%d ok=%d p50(ok)=%s error_rate=%.1f%% failures=%v", total, len(l.ok), p50, 100*float64(nfail)/float64(total), l.fail)
}

// TestE2ELoadFairShare is the load figure of issue 11 (long mode only:
// QUORUMD_TIMING=long): while one user floods a daemon with signing
// requests in rooms nobody joins, honest users look keys up and sign with
// a 2-of-2 quorum; it logs their p50 and error rate. It asserts nothing
// about time, and uses only configuration keys older than fair sharing so
// the same file measures the code before it.
func TestE2ELoadFairShare(t *testing.T) {
	if os.Getenv("QUORUMD_TIMING") != "long" {
		t.Skip("load figure: set QUORUMD_TIMING=long")
	}
	relayAddr := testkit.Relay(t)
	nodes := make([]*node, 2)
	for i := range nodes {
		nodes[i] = configureNode(t, tokens[i], relayAddr, "20s", relayAddr)
		nodes[i].editConfig("  max_concurrent_requests: 64\n", "")
		nodes[i].start()
		t.Cleanup(nodes[i].stop)
	}
	q := &cluster{t: t, nodes: nodes}
	for _, nd := range nodes {
		nd.userKey, nd.userID = nd.createUser("alice")
	}
	aliceIDs, alicePub, _ := q.importAndCheck(nodes, 2)
	malloryKeys := make([]string, 2)
	for i, nd := range nodes {
		malloryKeys[i], _ = nd.createUser("mallory")
	}
	mq := &cluster{t: t, nodes: []*node{{t: t, base: nodes[0].base, userKey: malloryKeys[0]}, {t: t, base: nodes[1].base, userKey: malloryKeys[1]}}}
	malloryIDs, _, _ := mq.importAndCheck(mq.nodes, 2)

	// honest runs four key lookup loops and one signing loop for d.
	honest := func(d time.Duration) (lookups, signs *latency) {
		lookups, signs = &latency{}, &latency{}
		var wg sync.WaitGroup
		end := time.Now().Add(d)
		for range 4 {
			wg.Go(func() {
				for time.Now().Before(end) {
					start := time.Now()
					st, body := nodes[0].call("GET", "/bip340/keys/"+aliceIDs[0], nodes[0].userKey, nil)
					fail := ""
					if st != 200 {
						fail = fmt.Sprintf("%d %v", st, body["err_type"])
					}
					lookups.add(time.Since(start), fail)
					time.Sleep(20 * time.Millisecond)
				}
			})
		}
		wg.Go(func() {
			for time.Now().Before(end) {
				msg := make([]byte, 32)
				rand.Read(msg)
				start := time.Now()
				fail := ""
				st, body := nodes[0].call("POST", "/create-room", nodes[0].userKey, map[string]any{"room_size": 2})
				if st != 200 {
					fail = fmt.Sprintf("create-room %d %v", st, body["err_type"])
				} else {
					room := body["room_uuid"].(string)
					out := make([]answer, 2)
					var sw sync.WaitGroup
					for i, nd := range nodes {
						sw.Go(func() {
							st, b := nd.call("POST", "/bip340/sign", nd.userKey, map[string]any{"room_uuid": room, "key_id": aliceIDs[i], "msg": hex.EncodeToString(msg)})
							out[i] = answer{st, b}
						})
					}
					sw.Wait()
					for i, a := range out {
						if a.status != 200 {
							fail = fmt.Sprintf("sign@%d %d %v", i, a.status, a.body["err_type"])
							break
						}
					}
					if fail == "" {
						verify(t, alicePub, msg, out[0].body["signature"].(string))
					}
				}
				signs.add(time.Since(start), fail)
				time.Sleep(200 * time.Millisecond) // an honest pace, within its room rate
			}
		})
		wg.Wait()
		return lookups, signs
	}
	baseLookups, baseSigns := honest(10 * time.Second)

	ctx, stop := context.WithCancel(context.Background())
	flood := floodSigns(ctx, t, nodes[0], relayAddr, malloryKeys[0], malloryIDs[0], 200)
	time.Sleep(3 * time.Second) // let the flood take its seats
	lookups, signs := honest(30 * time.Second)
	st, _ := nodes[0].call("GET", "/readyz", "", nil)
	stop()
	codes := flood()
	t.Logf("no flood: honest lookups %s; honest 2-of-2 signatures %s", baseLookups, baseSigns)
	t.Logf("flooded: honest lookups %s; honest 2-of-2 signatures %s", lookups, signs)
	t.Logf("flooder's answers: %v; /readyz during the flood: %d", codes, st)
}
