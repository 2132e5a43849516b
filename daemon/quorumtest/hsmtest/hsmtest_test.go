package hsmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// softhsmSlotsRE matches "Slot <id>" headers and "Label: <label>" lines of
// softhsm2-util --show-slots.
var softhsmSlotsRE = regexp.MustCompile(`(?m)^Slot (\d+)$|^\s+Label:\s+(\S+)\s*$`)

func TestNewTokens(t *testing.T) {
	t.Setenv("SOFTHSM2_CONF", "") // restored after the test
	dir := t.TempDir()
	labels := []string{"alpha", "beta", "gamma"}
	toks, err := NewTokens(dir, labels...)
	if err != nil {
		t.Fatal(err)
	}
	if got := os.Getenv("SOFTHSM2_CONF"); got != filepath.Join(dir, "softhsm2.conf") {
		t.Fatalf("SOFTHSM2_CONF = %q", got)
	}
	out, err := exec.Command("softhsm2-util", "--show-slots").CombinedOutput()
	if err != nil {
		t.Fatalf("show-slots: %v: %s", err, out)
	}
	// Map each listed label to the slot header preceding it.
	slotOf := map[string]int{}
	cur := -1
	for _, m := range softhsmSlotsRE.FindAllStringSubmatch(string(out), -1) {
		if m[1] != "" {
			cur, _ = strconv.Atoi(m[1])
		} else if m[2] != "" {
			slotOf[m[2]] = cur
		}
	}
	seenDirs := map[string]bool{}
	pins := map[string]bool{}
	for i, tok := range toks {
		if tok.Label != labels[i] {
			t.Errorf("token %d label %q, want %q", i, tok.Label, labels[i])
		}
		if s, ok := slotOf[tok.Label]; !ok || s != tok.Slot {
			t.Errorf("token %q: show-slots slot %d (listed %t), NewTokens said %d", tok.Label, s, ok, tok.Slot)
		}
		if st, err := os.Stat(tok.TokenDir); err != nil || !st.IsDir() {
			t.Errorf("token %q: TokenDir %q: %v", tok.Label, tok.TokenDir, err)
		}
		if seenDirs[tok.TokenDir] {
			t.Errorf("token %q shares its directory", tok.Label)
		}
		seenDirs[tok.TokenDir] = true
		if len(tok.PIN) < 16 || pins[tok.PIN] {
			t.Errorf("token %q: weak or repeated PIN", tok.Label)
		}
		pins[tok.PIN] = true
		if tok.Module != Module() {
			t.Errorf("module %q", tok.Module)
		}
		p, err := tok.WritePINFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("PIN file %s: %v %v", p, st.Mode(), err)
		}
	}
	if _, err := NewTokens(t.TempDir()); err == nil {
		t.Error("NewTokens without labels succeeded")
	}
}

func TestNewTokensFailsWithoutUtil(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("SOFTHSM2_CONF", "")
	if _, err := NewTokens(t.TempDir(), "x"); err == nil {
		t.Fatal("NewTokens succeeded without softhsm2-util on PATH")
	}
}

func TestSoftHSMSetsAndRestoresConf(t *testing.T) {
	t.Setenv("SOFTHSM2_CONF", "/previous/softhsm2.conf")
	var tok Token
	t.Run("inner", func(t *testing.T) {
		tok = NewToken(t, "single")
		if got := os.Getenv("SOFTHSM2_CONF"); got != tok.ConfPath {
			t.Fatalf("SOFTHSM2_CONF = %q, want %q", got, tok.ConfPath)
		}
		if tok.Label != "single" || tok.PIN == "" || tok.SOPIN == "" || tok.TokenDir == "" {
			t.Fatalf("incomplete token: %+v", tok)
		}
	})
	if got := os.Getenv("SOFTHSM2_CONF"); got != "/previous/softhsm2.conf" {
		t.Fatalf("SOFTHSM2_CONF not restored: %q", got)
	}
	if _, err := os.Stat(tok.TokenDir); !os.IsNotExist(err) {
		t.Fatalf("token directory outlived its test: %v", err)
	}
}
