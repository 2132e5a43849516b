package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/testkit"
)

// usePostgres switches n's configuration to a PostgreSQL key store whose
// DSN it writes to a file, as an operator would.
func usePostgres(t *testing.T, n *node, dsn string) {
	t.Helper()
	dsnFile := filepath.Join(n.dir, "pg-dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(n.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "store: postgres\npostgres:\n  dsn_file: %s\n", dsnFile); err != nil {
		t.Fatal(err)
	}
}

// replicaOf configures a second replica of n: the same HSM token and key
// label, policy file and database, its own state directory and listener.
func replicaOf(t *testing.T, n *node) *node {
	t.Helper()
	r := *n
	r.dir = t.TempDir()
	r.logs = &lockedBuffer{}
	r.d, r.running = nil, nil
	cfg, err := os.ReadFile(n.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(cfg), "state_dir: "+filepath.Join(n.dir, "state"), "state_dir: "+filepath.Join(r.dir, "state"), 1)
	r.cfgPath = filepath.Join(r.dir, "quorumd.yaml")
	if err := os.WriteFile(r.cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return &r
}

// TestE2EReplicasRaceSameKey: party C runs as two quorumd processes over
// one PostgreSQL database and one SoftHSM token. Two imports of C's one
// key slot race, each in its own room with its own A and B slots, C's side
// sent to a different replica. The key lock serialises C's ceremonies
// across the replicas, so exactly one room completes at every party; in the
// other, C answers already_performed_keygen without having joined the room,
// and its A and B abort naming C as the silent party, their slots never
// ready. (Without the lock both of C's ceremonies run until one store write
// fails; import v2 keeps that safe too, but C then joins a ceremony it
// cannot finish.) Then either replica signs with the key.
func TestE2EReplicasRaceSameKey(t *testing.T) {
	pg := testkit.PostgresOrSkip(t)
	dsn, err := pg.CreateDatabase(context.Background(), "party_c")
	if err != nil {
		t.Fatal(err)
	}
	bin := buildQuorumd(t)
	relayAddr := testkit.Relay(t)
	a := configureNode(t, tokens[0], relayAddr, crashCeremonyTimeout, relayAddr)
	b := configureNode(t, tokens[1], relayAddr, crashCeremonyTimeout, relayAddr)
	for _, n := range []*node{a, b} {
		n.start()
		t.Cleanup(n.stop)
	}
	c1 := configureNode(t, tokens[2], relayAddr, crashCeremonyTimeout, relayAddr)
	usePostgres(t, c1, dsn)
	c1.startProc(t, bin) // first: it creates the wrapping key on the token
	c2 := replicaOf(t, c1)
	c2.startProc(t, bin)
	for _, n := range []*node{a, b, c1} {
		n.userKey, n.userID = n.createUser("alice")
	}
	c2.userKey, c2.userID = c1.userKey, c1.userID
	q := &cluster{t: t}

	const rounds = 2
	for round := range rounds {
		priv, pub := newPrivateKey(t)
		cSlot := q.slots([]*node{c1})[0]
		// C's slot, created through c1, is served by c2 as well.
		if rec := c2.must("GET", "/bip340/keys/"+cSlot.keyID, c2.userKey, nil); rec["state"] != "created" {
			t.Fatalf("round %d: c2 sees c1's slot as %v", round, rec["state"])
		}
		type room struct {
			c     *node
			s     []slot // a, b, c
			ans   []answer
			uuid  string
			nodes []*node
		}
		rooms := []*room{{c: c1}, {c: c2}}
		for _, r := range rooms {
			r.s = append(q.slots([]*node{a, b}), cSlot)
			r.nodes = []*node{a, b, r.c}
			r.uuid = a.must("POST", "/create-room", a.userKey, map[string]any{"room_size": 3})["room_uuid"].(string)
			r.ans = make([]answer, 3)
		}
		var wg sync.WaitGroup
		for _, r := range rooms {
			for i, nd := range r.nodes {
				wg.Go(func() {
					body := map[string]any{"room_uuid": r.uuid, "key_id": r.s[i].keyID, "threshold": 2, "others_keygen_ids": others(r.s, i)}
					path := "/bip340/import/import-key-share-recipient"
					if i == 0 {
						body["private_key"] = priv
						path = "/bip340/import/key-importer"
					}
					r.ans[i] = nd.tryCall("POST", path, nd.userKey, body)
				})
			}
		}
		wg.Wait()
		var won, lost *room
		for _, r := range rooms {
			switch {
			case r.ans[2].status == 200:
				if won != nil {
					t.Fatalf("round %d: both replicas committed C's key", round)
				}
				won = r
			case r.ans[2].status == 400 && r.ans[2].body["err_type"] == "already_performed_keygen":
				lost = r
			default:
				t.Fatalf("round %d: replica answered %d %v", round, r.ans[2].status, r.ans[2].body["_raw"])
			}
		}
		if won == nil || lost == nil {
			t.Fatalf("round %d: want one winner and one loser", round)
		}
		for i := range 2 {
			if a := won.ans[i]; a.status != 200 || a.body["pubkey"] != fmt.Sprintf("%x", pub) {
				t.Fatalf("round %d: winning room, party %d: %d %v", round, i, a.status, a.body["_raw"])
			}
			if a := lost.ans[i]; a.status != 400 || a.body["err_type"] != "executor_result" {
				t.Fatalf("round %d: losing room, party %d: %d %v", round, i, a.status, a.body["_raw"])
			}
			// Serialised: the losing replica never joined the room, so its
			// peers name C as the silent culprit. (Unserialised, C ran the
			// ceremony up to its failed store write and reported that.)
			if msg, _ := lost.ans[i].body["err_msg"].(string); !strings.Contains(msg, "culprit "+cSlot.keygenID) {
				t.Fatalf("round %d: losing room, party %d does not name C as the silent party: %q", round, i, msg)
			}
			nd := lost.nodes[i]
			// Import v2: an aborted party may keep a pending record (the
			// importer prepares before the others sign), never a ready one.
			if rec := nd.must("GET", "/bip340/keys/"+lost.s[i].keyID, nd.userKey, nil); rec["state"] == "ready" {
				t.Fatalf("round %d: losing room's party %d holds a ready key C never stored", round, i)
			}
		}
		// Both replicas serve the committed key.
		q.signAndCheck([]*node{a, c1}, []string{won.s[0].keyID, cSlot.keyID}, pub)
		q.signAndCheck([]*node{c2, b}, []string{cSlot.keyID, won.s[1].keyID}, pub)
		t.Logf("round %d: room via %s won; the losing room answered %v / %v / %v", round, map[*node]string{c1: "c1", c2: "c2"}[won.c],
			lost.ans[0].body["_raw"], lost.ans[1].body["_raw"], lost.ans[2].body["_raw"])
	}
}

// TestE2EPostgresRestart: a daemon on PostgreSQL whose database restarts
// under load answers internal_problem (500) and an unready /readyz while
// the database is down, then serves again without a daemon restart.
func TestE2EPostgresRestart(t *testing.T) {
	pg := testkit.PostgresOrSkip(t)
	dsn, err := pg.CreateDatabase(context.Background(), "restart")
	if err != nil {
		t.Fatal(err)
	}
	relayAddr := testkit.Relay(t)
	n := configureNode(t, tokens[3], relayAddr, e2eCeremonyTimeout, relayAddr)
	usePostgres(t, n, dsn)
	n.start()
	t.Cleanup(n.stop)
	n.userKey, n.userID = n.createUser("alice")

	type tally struct{ ok, internal, other int }
	var mu sync.Mutex
	phase := "before" // the callers may finish a call before the first setPhase
	counts := map[string]*tally{"before": {}, "down": {}, "after": {}}
	var bad []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				ph := phase
				mu.Unlock()
				a := n.tryCall("GET", "/bip340/create", n.userKey, nil)
				mu.Lock()
				switch {
				case a.status == 200:
					counts[ph].ok++
				case a.status == 500 && a.body["err_type"] == "internal_problem":
					counts[ph].internal++
				default:
					counts[ph].other++
					bad = append(bad, fmt.Sprintf("%s: %d %v", ph, a.status, a.body["_raw"]))
				}
				mu.Unlock()
				if a.status != 200 {
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	get := func(ph string, f func(*tally) int) int { mu.Lock(); defer mu.Unlock(); return f(counts[ph]) }
	setPhase := func(ph string) { mu.Lock(); phase = ph; mu.Unlock() }
	await := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	setPhase("before")
	await("keys created before the restart", func() bool { return get("before", func(c *tally) int { return c.ok }) >= 10 })
	setPhase("down")
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	await("internal_problem while down", func() bool { return get("down", func(c *tally) int { return c.internal }) >= 5 })
	if st, _ := n.call("GET", "/readyz", "", nil); st != 503 {
		t.Errorf("/readyz with the database down: %d, want 503", st)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	setPhase("after")
	await("keys created after the restart", func() bool { return get("after", func(c *tally) int { return c.ok }) >= 10 })
	close(stop)
	wg.Wait()
	if st, _ := n.call("GET", "/readyz", "", nil); st != 200 {
		t.Errorf("/readyz after the restart: %d", st)
	}
	for _, b := range bad {
		t.Error(b)
	}
	if !strings.Contains(n.logs.String(), "database unavailable") {
		t.Error("the log does not say the database was unavailable")
	}
	t.Logf("before %+v, down %+v, after %+v", *counts["before"], *counts["down"], *counts["after"])
}

// TestE2EReplicaKilledMidImport: party C runs as two replicas over one
// database; C's side of a 2-of-3 import goes to c1, which is killed with
// SIGKILL at moments spread over the import (as TestE2ECrashMidCeremony
// does to a single daemon), and c1 stays dead. The outcomes match a
// single daemon's crash under import v2, now read through c2 without any
// restart: the two survivors agree; C's slot is created (only if they
// aborted), pending, or ready (only if they imported), never partial. The
// killed replica's key lock is gone with its session: a slot left created
// is imported again through c2 at once, a pending one of a completed
// import is recovered through c2, and the key signs through c2.
func TestE2EReplicaKilledMidImport(t *testing.T) {
	pg := testkit.PostgresOrSkip(t)
	dsn, err := pg.CreateDatabase(context.Background(), "party_c")
	if err != nil {
		t.Fatal(err)
	}
	bin := buildQuorumd(t)
	relayAddr := testkit.Relay(t)
	a := configureNode(t, tokens[4], relayAddr, crashCeremonyTimeout, relayAddr)
	b := configureNode(t, tokens[5], relayAddr, crashCeremonyTimeout, relayAddr)
	for _, n := range []*node{a, b} {
		n.start()
		t.Cleanup(n.stop)
	}
	c1 := configureNode(t, tokens[6], relayAddr, crashCeremonyTimeout, relayAddr)
	usePostgres(t, c1, dsn)
	proc := c1.startProc(t, bin)
	c2 := replicaOf(t, c1)
	c2.startProc(t, bin)
	for _, n := range []*node{a, b, c1} {
		n.userKey, n.userID = n.createUser("alice")
	}
	c2.userKey, c2.userID = c1.userKey, c1.userID
	q := &cluster{t: t}
	nodes := []*node{a, b, c1}

	// An undisturbed import sets the time scale.
	priv, pub := newPrivateKey(t)
	s := q.slots(nodes)
	start := time.Now()
	for i, ans := range q.importKey(nodes, s, 2, priv) {
		if ans.status != 200 {
			t.Fatalf("baseline import at node %d: %d %v", i, ans.status, ans.body["_raw"])
		}
	}
	base := time.Since(start)
	q.signAndCheck([]*node{c2, b}, []string{s[2].keyID, s[1].keyID}, pub)

	completed, aborted := 0, 0
	for trial := range crashTrials {
		frac := float64(trial) / float64(crashTrials-1)
		delay := time.Duration(frac * float64(base))
		priv, pub := newPrivateKey(t)
		s := q.slots(nodes)
		room := a.must("POST", "/create-room", a.userKey, map[string]any{"room_size": 3})["room_uuid"].(string)
		answers := make([]answer, 3)
		victimAnswered := make(chan struct{})
		var wg sync.WaitGroup
		for i, nd := range nodes {
			wg.Go(func() {
				if i == 2 {
					defer close(victimAnswered)
				}
				body := map[string]any{"room_uuid": room, "key_id": s[i].keyID, "threshold": 2, "others_keygen_ids": others(s, i)}
				path := "/bip340/import/import-key-share-recipient"
				if i == 0 {
					body["private_key"] = priv
					path = "/bip340/import/key-importer"
				}
				answers[i] = nd.tryCall("POST", path, nd.userKey, body)
			})
		}
		if trial == crashTrials-1 {
			<-victimAnswered
		} else if trial > 0 {
			time.Sleep(delay)
		}
		if err := proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-proc.done
		wg.Wait()

		a0, a1 := answers[0], answers[1]
		for i, ans := range []answer{a0, a1} {
			if ans.status != 200 && (ans.status != 400 || ans.body["err_type"] != "executor_result") {
				t.Fatalf("trial %d: survivor %d answered %d %v", trial, i, ans.status, ans.body["_raw"])
			}
		}
		if a0.status != a1.status {
			t.Fatalf("trial %d: survivors disagree: %d %v / %d %v", trial, a0.status, a0.body["_raw"], a1.status, a1.body["_raw"])
		}
		// c1 is dead: C answers through c2, with import v2's outcomes
		// (TestE2ECrashMidCeremony): created only if the survivors aborted,
		// ready only if they imported, pending either way.
		rec := c2.must("GET", "/bip340/keys/"+s[2].keyID, c2.userKey, nil)
		state := rec["state"]
		switch state {
		case "ready", "pending":
			if rec["pubkey"] != hex.EncodeToString(pub) {
				t.Fatalf("trial %d: C's %v record %v", trial, state, rec["_raw"])
			}
		case "created":
			if a0.status == 200 {
				t.Fatalf("trial %d: the survivors hold the key but C lost its share", trial)
			}
		default:
			t.Fatalf("trial %d: C's slot in state %v", trial, state)
		}
		if state == "ready" && a0.status != 200 {
			t.Fatalf("trial %d: C is ready but the survivors aborted", trial)
		}
		switch {
		case a0.status == 200:
			completed++
			if state == "pending" {
				// Recovery through c2 takes the key's lock: it would hang
				// if c1's lock had outlived it.
				rd := a.must("GET", "/bip340/recovery-data/"+s[0].keyID, a.userKey, nil)
				r := c2.must("POST", "/bip340/recover", c2.userKey, map[string]any{"key_id": s[2].keyID, "recovery_data": rd["recovery_data"]})
				if r["state"] != "ready" || r["pubkey"] != hex.EncodeToString(pub) {
					t.Fatalf("trial %d: recovery through c2 answered %v", trial, r)
				}
			}
			q.signAndCheck([]*node{a, c2}, []string{s[0].keyID, s[2].keyID}, pub)
			q.signAndCheck([]*node{a, b}, []string{s[0].keyID, s[1].keyID}, pub)
		case state == "created":
			aborted++
			// The slot is reusable at once through c2: no lock outlived c1.
			priv2, pub2 := newPrivateKey(t)
			s2 := append(q.slots([]*node{a, b}), s[2])
			t0 := time.Now()
			for i, ans := range q.importKey([]*node{a, b, c2}, s2, 2, priv2) {
				if ans.status != 200 {
					t.Fatalf("trial %d: re-import through c2, node %d: %d %v", trial, i, ans.status, ans.body["_raw"])
				}
			}
			t.Logf("trial %d: C's slot re-imported through c2 in %v", trial, time.Since(t0).Round(time.Millisecond))
			q.signAndCheck([]*node{c2, b}, []string{s[2].keyID, s2[1].keyID}, pub2)
		default:
			aborted++ // pending at C, aborted at the survivors: nothing usable anywhere
		}
		if a0.status != 200 {
			for i := range 2 {
				if r := nodes[i].must("GET", "/bip340/keys/"+s[i].keyID, nodes[i].userKey, nil); r["state"] == "ready" {
					t.Fatalf("trial %d: survivor %d aborted but its key is ready", trial, i)
				}
			}
		}
		t.Logf("trial %d: kill after %v (%.2f of an import): survivors %d, C's slot %v", trial, delay, frac, a0.status, state)
		proc = c1.startProc(t, bin)
	}
	if completed == 0 || aborted == 0 {
		t.Fatalf("kills never hit both outcomes (completed %d, aborted %d)", completed, aborted)
	}
}
