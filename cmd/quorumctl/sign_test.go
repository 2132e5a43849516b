package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quorumd/quorumd/daemon/client"
	"github.com/quorumd/quorumd/mpc/bip340"
)

// importedFake imports a fresh key t-of-n into a fake quorum and returns the
// key ids and pubkey.
func importedFake(t *testing.T, q *fakeQuorum, threshold int) (*client.ImportResult, *privateKey) {
	t.Helper()
	k, err := generatePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	qu := &client.Quorum{Parties: q.clients(t)}
	res, err := qu.Import(context.Background(), k.b[:], client.ImportOptions{Threshold: threshold})
	if err != nil {
		t.Fatal(err)
	}
	return res, k
}

func TestRunSign(t *testing.T) {
	tests := []struct {
		name    string
		n, t    int
		signers []int
		msg     []byte
		fault   func(q *fakeQuorum)
		wantErr error
	}{
		{name: "2 of 3, daemons 0 and 2", n: 3, t: 2, signers: []int{0, 2}, msg: bytes.Repeat([]byte{7}, 32)},
		{name: "all 3 of a 2-of-3", n: 3, t: 2, signers: []int{2, 1, 0}, msg: []byte("not 32 bytes")},
		{name: "3 of 5", n: 5, t: 3, signers: []int{4, 0, 2}, msg: bytes.Repeat([]byte{1}, 32)},
		{name: "every signer corrupts the signature", n: 3, t: 2, signers: []int{0, 1}, msg: bytes.Repeat([]byte{2}, 32),
			fault: func(q *fakeQuorum) {
				for _, d := range q.daemons {
					d.corruptSig = true
				}
			}, wantErr: client.ErrInvalidSignature},
		{name: "signers disagree", n: 3, t: 2, signers: []int{0, 1}, msg: bytes.Repeat([]byte{3}, 32),
			fault: func(q *fakeQuorum) { q.daemons[1].corruptSig = true }, wantErr: client.ErrMismatch},
		{name: "fewer signers than t", n: 3, t: 3, signers: []int{0, 1}, msg: []byte{1}, wantErr: errUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := newFakeQuorum(t, tc.n)
			imp, _ := importedFake(t, q, tc.t)
			if tc.fault != nil {
				tc.fault(q)
			}
			var out bytes.Buffer
			qu := &client.Quorum{Parties: q.clients(t), Log: (&printer{w: &out}).step}
			res, err := qu.Sign(context.Background(), imp.KeyIDs, tc.msg, client.SignOptions{Signers: tc.signers})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v\n%s", err, tc.wantErr, out.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("sign: %v\n%s", err, out.String())
			}
			if res.Pubkey != imp.Pubkey {
				t.Errorf("verified against %s, want the imported %s", res.Pubkey, imp.Pubkey)
			}
			sig, _ := hex.DecodeString(res.Signature)
			pub, _ := hex.DecodeString(imp.Pubkey)
			if err := bip340.Verify(pub, tc.msg, sig); err != nil {
				t.Errorf("the reported signature does not verify: %v", err)
			}
			// Key checks (one per signer), the room, one line per signer,
			// the agreement.
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if want := 2*len(tc.signers) + 2; len(lines) != want {
				t.Errorf("%d step lines, want %d:\n%s", len(lines), want, out.String())
			}
		})
	}
}

func TestCheckSignKey(t *testing.T) {
	q := newFakeQuorum(t, 3)
	imp, _ := importedFake(t, q, 2)
	other, _ := importedFake(t, q, 2)
	all := q.clients(t)
	// A slot that never saw an import.
	fresh, err := all[1].CreateKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		idx     []int
		keyIDs  []string
		wantErr error
		inErr   string
	}{
		{"keys of two different imports", []int{0, 1}, []string{imp.KeyIDs[0], other.KeyIDs[1]}, client.ErrMismatch, "not shares of one key"},
		{"the same daemon twice", []int{0, 0}, []string{imp.KeyIDs[0], imp.KeyIDs[0]}, client.ErrMismatch, "participant"},
		{"a key before its import", []int{0, 1}, []string{imp.KeyIDs[0], fresh.KeyID}, nil, "not ready"},
		{"an unknown key", []int{0, 1}, []string{imp.KeyIDs[0], "00000000-0000-4000-8000-000000000000"}, nil, "key_id_not_exists"},
		{"a malformed key id", []int{0, 1}, []string{imp.KeyIDs[0], "nope"}, errUsage, "UUID"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The key ids are per party; a party listed twice signs twice
			// with its one key id.
			ids := make([]string, len(all))
			for k, i := range tc.idx {
				ids[i] = tc.keyIDs[k]
			}
			_, err := (&client.Quorum{Parties: all}).PrepareSign(context.Background(), ids, client.SignOptions{Signers: tc.idx})
			if err == nil {
				t.Fatal("no error")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.inErr) {
				t.Errorf("error %q lacks %q", err, tc.inErr)
			}
		})
	}
}

// TestSignCommand drives import then sign through the CLI, as the demo
// does, and checks the printed lines.
func TestSignCommand(t *testing.T) {
	q := newFakeQuorum(t, 3)
	env := map[string]string{"QUORUMCTL_KEYS": q.keys(), "QUORUMCTL_DAEMONS": q.urls()}
	code, stdout, stderr := runCLI(t, env, "import", "-threshold", "2", "-generate", "-json")
	if code != exitOK {
		t.Fatalf("import: exit %d: %s", code, stderr)
	}
	var imp client.ImportResult
	if err := json.Unmarshal([]byte(stdout), &imp); err != nil {
		t.Fatal(err)
	}
	msg := strings.Repeat("ab", 32)
	code, stdout, stderr = runCLI(t, env, "sign", "-key-ids", strings.Join(imp.KeyIDs, ","), "-signers", "0,2", "-msg", msg)
	if code != exitOK {
		t.Fatalf("sign: exit %d: %s", code, stderr)
	}
	var sigHex string
	for _, l := range strings.Split(stdout, "\n") {
		if s, ok := strings.CutPrefix(l, "signature: "); ok {
			sigHex = s
		}
	}
	if !strings.Contains(stdout, "\nmessage: "+msg+"\n") || len(sigHex) != 128 {
		t.Fatalf("output lacks the message or signature lines:\n%s", stdout)
	}
	code, _, stderr = runCLI(t, nil, "verify", "-pubkey", imp.Pubkey, "-msg", msg, "-sig", sigHex)
	if code != exitOK {
		t.Fatalf("verify: exit %d: %s", code, stderr)
	}

	usage := []struct {
		name string
		args []string
	}{
		{"key id count", []string{"-key-ids", imp.KeyIDs[0], "-msg", msg}},
		{"bad message hex", []string{"-key-ids", strings.Join(imp.KeyIDs, ","), "-msg", "xyz"}},
		{"empty message", []string{"-key-ids", strings.Join(imp.KeyIDs, ",")}},
		{"signer out of range", []string{"-key-ids", strings.Join(imp.KeyIDs, ","), "-msg", msg, "-signers", "0,3"}},
		{"signer twice", []string{"-key-ids", strings.Join(imp.KeyIDs, ","), "-msg", msg, "-signers", "1,1"}},
	}
	for _, tc := range usage {
		t.Run(tc.name, func(t *testing.T) {
			if code, _, stderr := runCLI(t, env, append([]string{"sign"}, tc.args...)...); code != exitUsage {
				t.Errorf("exit %d, want %d: %s", code, exitUsage, stderr)
			}
		})
	}
}

// TestVerifyVectors checks client.VerifySignature (bip340.Verify, plus btcec's
// schnorr for 32-byte messages) against every BIP340 test vector.
func TestVerifyVectors(t *testing.T) {
	path := filepath.Join(repoRoot(t), "..", "shared", "vectors", "bip340-test-vectors.csv")
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("BIP340 vectors: %v", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 16 {
		t.Fatalf("only %d rows in %s", len(rows), path)
	}
	for _, r := range rows[1:] {
		t.Run("vector "+r[0], func(t *testing.T) {
			pub, _ := hex.DecodeString(r[2])
			msg, _ := hex.DecodeString(r[4])
			sig, _ := hex.DecodeString(r[5])
			err := client.VerifySignature(pub, msg, sig)
			if want := r[6] == "TRUE"; (err == nil) != want {
				t.Errorf("verify = %v, want valid=%v (%s)", err, want, r[7])
			}
			// The CLI agrees, with the right exit status.
			code, _, _ := runCLI(t, nil, "verify", "-pubkey", r[2], "-msg", r[4], "-sig", r[5])
			switch {
			case r[6] == "TRUE" && code != exitOK:
				t.Errorf("verify command: exit %d for a valid signature", code)
			case r[6] == "FALSE" && code == exitOK:
				t.Error("verify command accepted an invalid signature")
			}
		})
	}
}
