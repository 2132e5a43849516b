package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/apispec"
	"github.com/quorumd/quorumd/internal/testkit"
)

// startProc runs n as a real quorumd process from bin and points n at it.
func (n *node) startProc(t *testing.T, bin string) *daemonProcess {
	t.Helper()
	p := startProcess(t, os.Environ(), bin, "-config", n.cfgPath)
	select {
	case addr := <-p.addr:
		n.base = apispec.Proxy(t, "http://"+addr)
	case err := <-p.done:
		t.Fatalf("quorumd exited (%v):\n%s", err, p)
	case <-time.After(30 * time.Second):
		t.Fatalf("quorumd did not start:\n%s", p)
	}
	return p
}

// tryCall is node.call for a daemon that may die under it: a transport
// error is status 0, never a test failure.
func (n *node) tryCall(method, path, key string, body any) answer {
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, n.base+path, rd)
	if err != nil {
		return answer{}
	}
	req.Header.Set("Authorization", key)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{body: map[string]any{"_raw": err.Error()}}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	_ = json.Unmarshal(b, &out)
	out["_raw"] = string(b)
	return answer{resp.StatusCode, out}
}

// TestE2ECrashMidCeremony kills a recipient daemon (a real process) with
// SIGKILL at moments spread over a 2-of-3 import, restarts it on the same
// state directory and token, and checks import v2's invariant (DESIGN §3):
//   - the two survivors answer alike: 200, or 400 executor_result after the
//     ceremony timeout;
//   - the crashed daemon restarts with its key slot empty ("created"),
//     "pending" or "ready" (the same public key), never anything else;
//   - the class "the victim lost its share while the others hold the key"
//     never occurs: survivors answering 200 means the victim is pending or
//     ready;
//   - every pending victim of a certified import becomes ready: on even
//     trials from a survivor's recovery data (POST /bip340/recover), on odd
//     ones by signing with a survivor, which attaches the certificate;
//   - a ready victim signs with a survivor, the survivors sign together
//     after a 200, and aborted survivors hold nothing usable (created or
//     pending, never ready).
//
// The moments are fractions of a measured undisturbed import, the first at
// once and the last after the victim answered, so both outcomes occur; the
// test fails if either never does.
func TestE2ECrashMidCeremony(t *testing.T) {
	bin := buildQuorumd(t)
	relayAddr := testkit.Relay(t)
	var nodes []*node
	for i := range 2 {
		n := configureNode(t, tokens[i], relayAddr, crashCeremonyTimeout, relayAddr)
		n.start()
		t.Cleanup(n.stop)
		nodes = append(nodes, n)
	}
	victim := configureNode(t, tokens[2], relayAddr, crashCeremonyTimeout, relayAddr)
	proc := victim.startProc(t, bin)
	nodes = append(nodes, victim)
	for _, nd := range nodes {
		nd.userKey, nd.userID = nd.createUser("alice")
	}
	q := &cluster{t: t, nodes: nodes}

	// An undisturbed import sets the time scale.
	priv, pub := newPrivateKey(t)
	s := q.slots(nodes)
	start := time.Now()
	for i, a := range q.importKey(nodes, s, 2, priv) {
		if a.status != 200 {
			t.Fatalf("baseline import at node %d: %d %v", i, a.status, a.body["_raw"])
		}
	}
	base := time.Since(start)
	q.signAndCheck(pick(nodes, 1, 2), []string{s[1].keyID, s[2].keyID}, pub)
	t.Logf("undisturbed import: %v", base)

	completed, aborted, recovered := 0, 0, 0
	for trial := range crashTrials {
		// At once (before the deal), then 1/(trials−1) … of the undisturbed
		// import (into each round; on a slow machine maybe later), and last
		// after the crashed daemon answered.
		frac := float64(trial) / float64(crashTrials-1)
		delay := time.Duration(frac * float64(base))
		priv, pub := newPrivateKey(t)
		s := q.slots(nodes)
		room := nodes[0].must("POST", "/create-room", nodes[0].userKey, map[string]any{"room_size": 3})["room_uuid"].(string)
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
			<-victimAnswered // a crash after the commit
		} else if trial > 0 {
			time.Sleep(delay)
		}
		if err := proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-proc.done
		wg.Wait()

		a0, a1 := answers[0], answers[1]
		for i, a := range []answer{a0, a1} {
			if a.status != 200 && (a.status != 400 || a.body["err_type"] != "executor_result") {
				t.Fatalf("trial %d: survivor %d answered %d %v", trial, i, a.status, a.body["_raw"])
			}
		}
		if a0.status != a1.status {
			t.Fatalf("trial %d: survivors disagree: %d %v / %d %v", trial, a0.status, a0.body["_raw"], a1.status, a1.body["_raw"])
		}

		proc = victim.startProc(t, bin)
		rec := victim.tryCall("GET", "/bip340/keys/"+s[2].keyID, victim.userKey, nil)
		if rec.status != 200 {
			t.Fatalf("trial %d: crashed daemon's key slot: %d %v", trial, rec.status, rec.body["_raw"])
		}
		state := rec.body["state"]
		msg := make([]byte, 32)
		rand.Read(msg)
		switch state {
		case "ready", "pending":
			if rec.body["pubkey"] != hex.EncodeToString(pub) || rec.body["t"] != 2.0 || rec.body["n"] != 3.0 {
				t.Fatalf("trial %d: %v record %v", trial, state, rec.body["_raw"])
			}
		case "created":
			if _, ok := rec.body["pubkey"]; ok && rec.body["pubkey"] != "" {
				t.Fatalf("trial %d: empty slot carries a public key: %v", trial, rec.body["_raw"])
			}
			if a0.status == 200 {
				t.Fatalf("trial %d: the survivors hold the key but the crashed daemon lost its share", trial)
			}
			st, body := victim.call("POST", "/bip340/sign", victim.userKey, map[string]any{"room_uuid": room, "key_id": s[2].keyID, "msg": hex.EncodeToString(msg)})
			expectErr(t, "sign with the crashed daemon's empty slot", st, body, 400, "key_operation_before_keygen")
		default:
			t.Fatalf("trial %d: crashed daemon's key slot in state %v", trial, state)
		}
		if state == "ready" && a0.status != 200 {
			t.Fatalf("trial %d: the crashed daemon is ready but the survivors aborted", trial)
		}
		if a0.status == 200 {
			completed++
			if state == "pending" {
				recovered++
				if trial%2 == 0 {
					rd := nodes[0].must("GET", "/bip340/recovery-data/"+s[0].keyID, nodes[0].userKey, nil)
					if rd["certified"] != true {
						t.Fatalf("trial %d: a survivor that answered 200 serves uncertified recovery data", trial)
					}
					r := victim.must("POST", "/bip340/recover", victim.userKey, map[string]any{"key_id": s[2].keyID, "recovery_data": rd["recovery_data"]})
					if r["state"] != "ready" || r["pubkey"] != hex.EncodeToString(pub) {
						t.Fatalf("trial %d: recovery answered %v", trial, r)
					}
				}
			}
			// Odd trials: a pending victim becomes ready by signing.
			q.signAndCheck(pick(nodes, 0, 2), []string{s[0].keyID, s[2].keyID}, pub)
			if r := victim.must("GET", "/bip340/keys/"+s[2].keyID, victim.userKey, nil); r["state"] != "ready" {
				t.Fatalf("trial %d: the crashed daemon is still %v after signing", trial, r["state"])
			}
			q.signAndCheck(pick(nodes, 0, 1), []string{s[0].keyID, s[1].keyID}, pub)
		} else {
			aborted++
			for i := range 2 {
				r := nodes[i].must("GET", "/bip340/keys/"+s[i].keyID, nodes[i].userKey, nil)
				if r["state"] == "ready" {
					t.Fatalf("trial %d: survivor %d aborted but its key is ready", trial, i)
				}
			}
		}
		when := fmt.Sprintf("%v (%.2f of an import)", delay, frac)
		if trial == crashTrials-1 {
			when = "the crashed daemon answered"
		}
		t.Logf("trial %d: kill after %s: survivors %d, crashed daemon's slot %v", trial, when, a0.status, state)
	}
	t.Logf("completed %d (of which the victim recovered from pending: %d), aborted %d", completed, recovered, aborted)
	if completed == 0 || aborted == 0 {
		t.Fatalf("crashes never hit both outcomes (completed %d, aborted %d): the trial moments are off", completed, aborted)
	}
}
