package quorumtest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/quorumd/quorumd/daemon/client"
	"github.com/quorumd/quorumd/daemon/quorumtest"
	"github.com/quorumd/quorumd/internal/testkit/paths"
	"github.com/quorumd/quorumd/mpc/bip340"
)

// docExample returns the fenced code block that follows the marker
// "<!-- example: name -->" in docs/clients.md.
func docExample(t *testing.T, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(paths.ModuleRoot(t), "docs", "clients.md"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- example: " + regexp.QuoteMeta(name) + " -->\n```[a-z]*\n(.*?)\n```\n")
	m := re.FindSubmatch(raw)
	if m == nil {
		t.Fatalf("docs/clients.md has no example %q", name)
	}
	return string(m[1]) + "\n"
}

// newPrivateKey returns a random valid private key and its x-only pubkey.
func newPrivateKey(t *testing.T) ([]byte, [32]byte) {
	t.Helper()
	priv := make([]byte, 32)
	rand.Read(priv)
	pub, err := client.XOnlyPubkey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

// checkOutput checks "<pubkey hex> <signature hex>" against the key
// imported and msg, with the pure-Go BIP340 verifier.
func checkOutput(t *testing.T, out string, pub [32]byte, msg []byte) {
	t.Helper()
	f := strings.Fields(out)
	if len(f) != 2 || f[0] != hex.EncodeToString(pub[:]) {
		t.Fatalf("example printed %q, want the pubkey %x and a signature", out, pub)
	}
	sig, err := hex.DecodeString(f[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := bip340.VerifyReference(pub[:], msg, sig); err != nil {
		t.Fatalf("the example's signature: %v", err)
	}
}

// TestDocsCurl runs docs/clients.md's curl example with bash against a
// quorum, through spec-validating proxies.
func TestDocsCurl(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq", "xxd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the curl example needs %s: %v", tool, err)
		}
	}
	script := docExample(t, "importsign.sh")
	q := quorumtest.Start(t, quorumtest.Options{Parties: 3})
	priv, pub := newPrivateKey(t)
	env := append(os.Environ(), "PRIV="+hex.EncodeToString(priv))
	for i := range q.N() {
		env = append(env, "D"+string(rune('0'+i))+"="+q.ValidatedURL(i), "K"+string(rune('0'+i))+"="+q.UserKey(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir, cmd.Env = t.TempDir(), env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl example: %v\n%s", err, stderr.String())
	}
	checkOutput(t, string(out), pub, []byte("hello, quorum"))
}
