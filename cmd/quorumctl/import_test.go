package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/quorumd/quorumd/daemon/client"
)

func TestRunImport(t *testing.T) {
	tests := []struct {
		name      string
		n, t      int
		importer  int
		fault     func(q *fakeQuorum)
		wantErr   error  // errors.Is target
		wantType  string // err_type of an *APIError in the chain
		wantInErr string
	}{
		{name: "2-of-3", n: 3, t: 2},
		{name: "3-of-5, importer 3", n: 5, t: 3, importer: 3},
		{name: "1-of-2", n: 2, t: 1, importer: 1},
		{name: "a recipient answers another pubkey", n: 3, t: 2,
			fault: func(q *fakeQuorum) { q.daemons[2].wrongPubkey = true }, wantErr: client.ErrMismatch},
		{name: "the importer answers another pubkey", n: 3, t: 2,
			fault: func(q *fakeQuorum) { q.daemons[0].wrongPubkey = true }, wantErr: client.ErrMismatch},
		{name: "a recipient fails; the others are cancelled", n: 3, t: 2,
			fault:    func(q *fakeQuorum) { q.daemons[1].failImport = "executor_result" },
			wantType: "executor_result", wantInErr: "daemon 1 (recipient)"},
		{name: "the importer rejects the request", n: 3, t: 2,
			fault:    func(q *fakeQuorum) { q.daemons[0].failImport = "policy_validation_failed" },
			wantType: "policy_validation_failed", wantInErr: "daemon 0 (importer)"},
		{name: "threshold above N", n: 3, t: 4, wantErr: errUsage},
		{name: "importer out of range", n: 3, t: 2, importer: 3, wantErr: errUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := newFakeQuorum(t, tc.n)
			// A party waits long for the others: a failure must not make
			// quorumctl wait for that (the others are cancelled).
			q.wait = 20 * time.Second
			if tc.fault != nil {
				tc.fault(q)
			}
			key, err := generatePrivateKey()
			if err != nil {
				t.Fatal(err)
			}
			want, _ := key.xonlyPubkey()
			var out bytes.Buffer
			start := time.Now()
			qu := &client.Quorum{Parties: q.clients(t), Log: (&printer{w: &out}).step}
			res, err := qu.Import(context.Background(), key.b[:], client.ImportOptions{Threshold: tc.t, Importer: tc.importer})
			if elapsed := time.Since(start); elapsed > 10*time.Second {
				t.Errorf("took %s: a failed party must cancel the others", elapsed)
			}
			if tc.wantErr != nil || tc.wantType != "" {
				if err == nil {
					t.Fatalf("no error; output:\n%s", out.String())
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("error %v, want %v", err, tc.wantErr)
				}
				if tc.wantType != "" {
					var ae *client.APIError
					if !errors.As(err, &ae) || ae.ErrType != tc.wantType {
						t.Errorf("error %v, want err_type %s", err, tc.wantType)
					}
				}
				if !strings.Contains(err.Error(), tc.wantInErr) {
					t.Errorf("error %q does not mention %q", err, tc.wantInErr)
				}
				if strings.Contains(err.Error(), hex.EncodeToString(key.b[:])) || strings.Contains(out.String(), hex.EncodeToString(key.b[:])) {
					t.Fatal("the private key appears in the output or the error")
				}
				return
			}
			if err != nil {
				t.Fatalf("import: %v\n%s", err, out.String())
			}
			if res.Pubkey != hex.EncodeToString(want[:]) {
				t.Errorf("pubkey %s, want %x", res.Pubkey, want)
			}
			if len(res.KeyIDs) != tc.n || res.N != tc.n || res.Threshold != tc.t {
				t.Errorf("result %+v", res)
			}
			// Every daemon now holds a ready key with the same participants.
			for i, d := range q.daemons {
				k := d.keys[res.KeyIDs[i]]
				if k == nil || !k.ready || k.t != tc.t || k.n != tc.n {
					t.Errorf("daemon %d: key %+v", i, k)
				}
			}
			// One human line per multi-party step: n slots, the room, n
			// ceremony results, the agreement.
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != 2*tc.n+2 {
				t.Errorf("%d step lines, want %d:\n%s", len(lines), 2*tc.n+2, out.String())
			}
			if strings.Contains(out.String(), hex.EncodeToString(key.b[:])) {
				t.Fatal("the private key appears in the output")
			}
		})
	}
}

// TestImportCommand runs the subcommand as a user would, keys from the
// environment, and checks the human and JSON outputs.
func TestImportCommand(t *testing.T) {
	q := newFakeQuorum(t, 3)
	const privHex = "b7e151628aed2a6abf7158809cf4f3c762e7160f38b4da56a784d9045190cfef"
	const pubHex = "dff1d77f2a671c5f36183726db2341be58feae1da2deced843240f7b502ba659" // BIP340 vector 1
	env := map[string]string{"QUORUMCTL_KEYS": q.keys(), "QUORUMCTL_PRIVATE_KEY": privHex}
	code, stdout, stderr := runCLI(t, env, "import", "-daemons", q.urls(), "-threshold", "2")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "\npubkey: "+pubHex+"\n") {
		t.Errorf("no pubkey line in:\n%s", stdout)
	}
	if strings.Contains(stdout+stderr, privHex) {
		t.Fatal("the private key was printed")
	}

	code, stdout, stderr = runCLI(t, map[string]string{"QUORUMCTL_KEYS": q.keys()}, "import", "-json",
		"-daemons", q.urls(), "-threshold", "3", "-generate", "-importer", "2")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res client.ImportResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("JSON output: %v\n%s", err, stdout)
	}
	if res.Threshold != 3 || res.N != 3 || res.Importer != 2 || len(res.Pubkey) != 64 || len(res.KeyIDs) != 3 {
		t.Errorf("JSON result %+v", res)
	}
}

func TestImportCommandUsage(t *testing.T) {
	q := newFakeQuorum(t, 3)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want int
	}{
		{"no key source", nil, []string{"-daemons", q.urls(), "-keys", q.keys(), "-threshold", "2"}, exitUsage},
		{"two key sources", nil, []string{"-daemons", q.urls(), "-keys", q.keys(), "-threshold", "2", "-generate",
			"-private-key", strings.Repeat("11", 32)}, exitUsage},
		{"private key zero", nil, []string{"-daemons", q.urls(), "-keys", q.keys(), "-threshold", "2",
			"-private-key", strings.Repeat("00", 32)}, exitUsage},
		{"private key = n", map[string]string{"QUORUMCTL_PRIVATE_KEY": "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"},
			[]string{"-daemons", q.urls(), "-keys", q.keys(), "-threshold", "2"}, exitUsage},
		{"key count mismatch", nil, []string{"-daemons", q.urls(), "-keys", "a,b", "-threshold", "2", "-generate"}, exitUsage},
		{"no daemons", nil, []string{"-keys", q.keys(), "-threshold", "2", "-generate"}, exitUsage},
		{"wrong API key", nil, []string{"-daemons", q.urls(), "-keys", "0000000000000000.nope", "-threshold", "2", "-generate"}, exitFailure},
		{"deal locally without a relay", nil, []string{"-daemons", q.urls(), "-keys", q.keys(), "-threshold", "2", "-generate", "-deal-locally"}, exitUsage},
		{"deal locally with an importer", nil, []string{"-daemons", q.urls(), "-keys", q.keys(), "-threshold", "2", "-generate",
			"-deal-locally", "-relay-address", "127.0.0.1:1", "-importer", "1"}, exitUsage},
		{"deal locally encrypted", map[string]string{"QUORUMCTL_ENCRYPT": "true"}, []string{"-daemons", q.urls(), "-keys", q.keys(),
			"-threshold", "2", "-generate", "-deal-locally", "-relay-address", "127.0.0.1:1"}, exitUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tc.env, append([]string{"import"}, tc.args...)...)
			if code != tc.want {
				t.Errorf("exit %d, want %d: %s", code, tc.want, stderr)
			}
			if v := tc.env["QUORUMCTL_PRIVATE_KEY"]; v != "" && strings.Contains(stderr, v) {
				t.Error("the private key was echoed")
			}
		})
	}
}
