package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/quorumd/quorumd/daemon/client"
	"github.com/quorumd/quorumd/mpc/bip340"
)

// serveBatchSign is the fake's /bip340/batch-sign: one room for the batch,
// each item signed with the (whole) key, failItem answering an error.
func (d *fakeDaemon) serveBatchSign(w http.ResponseWriter, r *http.Request) {
	var req struct {
		SignRequests []struct {
			RoomUUID string `json:"room_uuid"`
			KeyID    string `json:"key_id"`
			Msg      string `json:"msg"`
		} `json:"sign_requests"`
	}
	if err := decodeStrict(r, &req); err != nil || len(req.SignRequests) == 0 {
		apiErr(w, 400, "bad_request_params", "bad body")
		return
	}
	items := req.SignRequests
	d.mu.Lock()
	k, ok := d.keys[items[0].KeyID]
	d.mu.Unlock()
	if !ok || !k.ready {
		apiErr(w, 400, "key_id_not_exists", "key_id does not exist")
		return
	}
	room, fail := d.join(r, items[0].RoomUUID, fakeJoin{daemon: d.idx, keygenID: k.keygenID, t: k.t},
		func(*fakeRoom) {},
		func(room *fakeRoom) {
			sc, _ := bip340.ParsePrivateKey((*[32]byte)(k.priv))
			for _, it := range items {
				msg, _ := hex.DecodeString(it.Msg)
				sig, err := bip340.Sign(sc, msg, [32]byte{})
				if err != nil {
					room.failure = err.Error()
					return
				}
				room.sigs = append(room.sigs, sig[:])
			}
		})
	if fail != "" {
		apiErr(w, 400, "executor_result", fail)
		return
	}
	out := make([]map[string]string, len(items))
	for i := range items {
		sig := slices.Clone(room.sigs[i])
		if d.corruptSig {
			sig[63] ^= 1
		}
		out[i] = map[string]string{"signature": hex.EncodeToString(sig)}
		if d.failItem == i+1 {
			out[i] = map[string]string{"err_type": "policy_validation_failed", "err_msg": "refused"}
		}
	}
	writeJSON(w, 200, out)
}

func TestRunBatchSign(t *testing.T) {
	msgs := [][]byte{bytes.Repeat([]byte{1}, 32), []byte("short"), bytes.Repeat([]byte{3}, 32)}
	for _, tc := range []struct {
		name       string
		fault      func(q *fakeQuorum)
		wantErr    error
		wantSigned int
	}{
		{name: "all signed", wantSigned: 3},
		{name: "one item refused at one daemon", fault: func(q *fakeQuorum) { q.daemons[2].failItem = 2 }, wantErr: client.ErrMismatch},
		{name: "one item refused everywhere", fault: func(q *fakeQuorum) { q.daemons[0].failItem, q.daemons[2].failItem = 2, 2 }, wantSigned: 2},
		{name: "corrupt signatures", fault: func(q *fakeQuorum) { q.daemons[0].corruptSig, q.daemons[2].corruptSig = true, true }, wantErr: client.ErrInvalidSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newFakeQuorum(t, 3)
			imp, _ := importedFake(t, q, 2)
			if tc.fault != nil {
				tc.fault(q)
			}
			var out bytes.Buffer
			qu := &client.Quorum{Parties: q.clients(t), Log: (&printer{w: &out}).step}
			set, err := qu.PrepareSign(context.Background(), imp.KeyIDs, client.SignOptions{Signers: []int{0, 2}})
			if err != nil {
				t.Fatal(err)
			}
			res, err := set.BatchSign(context.Background(), msgs)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v\n%s", err, tc.wantErr, out.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if res.Signed != tc.wantSigned || len(res.Items) != len(msgs) {
				t.Fatalf("%d of %d items signed, want %d: %+v", res.Signed, len(res.Items), tc.wantSigned, res.Items)
			}
			pub, _ := hex.DecodeString(imp.Pubkey)
			for i, it := range res.Items {
				if it.Signature == "" {
					if len(it.Errors) != 2 || !strings.HasPrefix(it.Errors["0"], "policy_validation_failed") {
						t.Errorf("item %d: errors %v", i, it.Errors)
					}
					continue
				}
				sig, _ := hex.DecodeString(it.Signature)
				if err := bip340.Verify(pub, msgs[i], sig); err != nil {
					t.Errorf("item %d: %v", i, err)
				}
			}
			raw, _ := json.Marshal(res)
			if !strings.Contains(string(raw), `"signed":`) {
				t.Errorf("report %s", raw)
			}
		})
	}
}

// TestBatchSignCmd: the command's flags, output and exit status (an item
// not signed fails the command).
func TestBatchSignCmd(t *testing.T) {
	q := newFakeQuorum(t, 3)
	imp, _ := importedFake(t, q, 2)
	m1, m2 := strings.Repeat("11", 32), strings.Repeat("22", 32)
	args := []string{"batch-sign", "-daemons", q.urls(), "-keys", q.keys(), "-key-ids", strings.Join(imp.KeyIDs, ","),
		"-signers", "0,1", "-msgs", m1 + "," + m2}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), args, nil, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "item 1: message "+m2+" signature ") {
		t.Errorf("output:\n%s", stdout.String())
	}
	q.daemons[0].failItem, q.daemons[1].failItem = 1, 1
	stdout.Reset()
	if code := run(context.Background(), args, nil, &stdout, &stderr); code != exitFailure {
		t.Fatalf("exit %d with an item refused\n%s", code, stdout.String())
	}
	if !strings.Contains(stdout.String(), "item 0: message "+m1+" NOT SIGNED") {
		t.Errorf("output:\n%s", stdout.String())
	}
	if code := run(context.Background(), []string{"batch-sign", "-daemons", q.urls(), "-keys", q.keys(), "-key-ids", strings.Join(imp.KeyIDs, ","), "-msgs", "zz"}, nil, &stdout, &stderr); code != exitUsage {
		t.Errorf("bad -msgs: exit %d", code)
	}
}
