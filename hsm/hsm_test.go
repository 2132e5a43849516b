package hsm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"

	"github.com/quorumd/quorumd/hsm"
	"github.com/quorumd/quorumd/internal/testkit"
)

// Tokens are created before the first hsm.Open: SoftHSM lists tokens only
// when the module initializes. Tests that log out, close sessions or delete a
// token get a token of their own so they cannot disturb the others.
var tok struct {
	main, pin, logout, closeall, policy testkit.SoftHSMToken
	sized                               testkit.SoftHSMToken // BenchmarkDataKeyTokenSize fills it
}

// storeDir is the SoftHSM token store of this test binary.
var storeDir string

func TestMain(m *testing.M) {
	if destroyHelper() {
		return
	}
	dir, err := os.MkdirTemp("", "quorumd-hsm-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	storeDir = dir
	toks, err := testkit.NewSoftHSMTokens(dir, "main", "pin", "logout", "closeall", "policy", "sized")
	if err != nil {
		fmt.Fprintln(os.Stderr, "SoftHSM set-up:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	tok.main, tok.pin, tok.logout, tok.closeall, tok.policy, tok.sized = toks[0], toks[1], toks[2], toks[3], toks[4], toks[5]
	// Several tests list wrap-b as a read-only key, which Open never creates.
	for _, k := range []string{"wrap-a", "wrap-b"} {
		h, err := hsm.Open(cfgFor(tok.main, k))
		if err != nil {
			fmt.Fprintln(os.Stderr, "creating key", k, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
		h.Close()
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func cfgFor(t testkit.SoftHSMToken, key string) hsm.Config {
	return hsm.Config{
		ModulePath: t.Module,
		TokenLabel: t.Label,
		PIN:        t.PIN,
		KeyLabel:   key,
		CreateKey:  true,
	}
}

func mustOpen(t testing.TB, cfg hsm.Config) *hsm.HSM {
	t.Helper()
	h, err := hsm.Open(cfg)
	if err != nil {
		t.Fatalf("hsm.Open(%v): %v", cfg, err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestSealOpenRoundTrip(t *testing.T) {
	h := mustOpen(t, cfgFor(tok.main, "wrap-a"))
	for _, tc := range []struct {
		name string
		size int
		aad  string
	}{
		{"one byte", 1, "a"},
		{"scalar", 32, "key_id=k1|user=u1|id=0|v=1"},
		{"odd", 1000, strings.Repeat("x", 300)},
		{"max", hsm.MaxPlaintext, "max"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pt := bytes.Repeat([]byte{0xA5}, tc.size)
			pt[0] = byte(tc.size)
			blob, err := h.Seal(pt, []byte(tc.aad))
			if err != nil {
				t.Fatal(err)
			}
			if want := hsm.Overhead("wrap-a") + tc.size; len(blob) != want {
				t.Fatalf("blob is %d bytes, want %d", len(blob), want)
			}
			if blob[0] != hsm.BlobVersion {
				t.Fatalf("version byte %d", blob[0])
			}
			if l, err := hsm.BlobKeyLabel(blob); err != nil || l != "wrap-a" {
				t.Fatalf("BlobKeyLabel = %q, %v", l, err)
			}
			if bytes.Contains(blob, pt[:min(tc.size, 16)]) && tc.size >= 16 {
				t.Fatal("blob contains the plaintext")
			}
			got, err := h.Open(blob, []byte(tc.aad))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, pt) {
				t.Fatal("round trip changed the plaintext")
			}
			clear(got)
			again, err := h.Seal(pt, []byte(tc.aad))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(again, blob) {
				t.Fatal("two seals of the same plaintext are identical: nonce reused")
			}
		})
	}
}

func TestSealRejectsBadInput(t *testing.T) {
	h := mustOpen(t, cfgFor(tok.main, "wrap-a"))
	for _, tc := range []struct {
		name    string
		pt, aad []byte
		want    error
	}{
		{"nil aad", []byte("s"), nil, hsm.ErrEmptyAAD},
		{"empty aad", []byte("s"), []byte{}, hsm.ErrEmptyAAD},
		{"empty plaintext", nil, []byte("a"), hsm.ErrPlaintextSize},
		{"too large", make([]byte, hsm.MaxPlaintext+1), []byte("a"), hsm.ErrPlaintextSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := h.Seal(tc.pt, tc.aad); !errors.Is(err, tc.want) {
				t.Fatalf("Seal: %v, want %v", err, tc.want)
			}
		})
	}
	blob, err := h.Seal([]byte("secret"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Open(blob, nil); !errors.Is(err, hsm.ErrEmptyAAD) {
		t.Fatalf("Open with empty aad: %v", err)
	}
}

// TestOpenRejectsTampering flips every bit of a blob, truncates and extends
// it, and checks each variant fails with the right class of error.
func TestOpenRejectsTampering(t *testing.T) {
	h := mustOpen(t, hsm.Config{
		ModulePath: tok.main.Module, TokenLabel: "main", PIN: tok.main.PIN,
		KeyLabel: "wrap-a", CreateKey: true, ReadKeyLabels: []string{"wrap-b"},
	})
	aad := []byte("key_id=k|user=u")
	pt := bytes.Repeat([]byte{7}, 32)
	blob, err := h.Seal(pt, aad)
	if err != nil {
		t.Fatal(err)
	}
	hdr := 2 + len("wrap-a")
	for i := range blob {
		for bit := 0; bit < 8; bit++ {
			bad := bytes.Clone(blob)
			bad[i] ^= 1 << bit
			got, err := h.Open(bad, aad)
			if err == nil {
				t.Fatalf("byte %d bit %d flipped: Open succeeded (%x)", i, bit, got)
			}
			switch {
			case i == 0:
				if !errors.Is(err, hsm.ErrMalformed) {
					t.Fatalf("version byte flipped: %v", err)
				}
			case i < hdr:
				if !errors.Is(err, hsm.ErrAuth) && !errors.Is(err, hsm.ErrKeyNotFound) {
					t.Fatalf("header byte %d flipped: %v", i, err)
				}
			default:
				if !errors.Is(err, hsm.ErrAuth) || errors.Is(err, hsm.ErrMalformed) {
					t.Fatalf("byte %d flipped: %v, want an authentication failure", i, err)
				}
			}
		}
	}
	for _, tc := range []struct {
		name string
		blob []byte
		aad  []byte
		want error
	}{
		{"wrong aad", blob, []byte("key_id=k|user=v"), hsm.ErrAuth},
		{"aad prefix", blob, aad[:len(aad)-1], hsm.ErrAuth},
		{"aad extended", blob, append(bytes.Clone(aad), 0), hsm.ErrAuth},
		{"empty", nil, aad, hsm.ErrMalformed},
		{"header only", blob[:hdr], aad, hsm.ErrMalformed},
		{"no ciphertext", blob[:hdr+hsm.NonceSize+hsm.TagSize], aad, hsm.ErrMalformed},
		{"truncated tag", blob[:len(blob)-1], aad, hsm.ErrAuth},
		{"extended", append(bytes.Clone(blob), 0), aad, hsm.ErrAuth},
		{"zero label length", append([]byte{hsm.BlobVersion, 0}, blob[2:]...), aad, hsm.ErrMalformed},
		{"unknown label", relabel(blob, "wrap-z"), aad, hsm.ErrKeyNotFound},
		{"label of another configured key", relabel(blob, "wrap-b"), aad, hsm.ErrAuth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := h.Open(tc.blob, tc.aad); !errors.Is(err, tc.want) {
				t.Fatalf("Open: %v, want %v", err, tc.want)
			}
		})
	}
	// The original still opens: failures did not break the HSM.
	if got, err := h.Open(blob, aad); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Open after tampering tests: %v", err)
	}
}

// relabel rewrites a blob's key label, keeping everything else.
func relabel(blob []byte, label string) []byte {
	l := int(blob[1])
	out := []byte{blob[0], byte(len(label))}
	out = append(out, label...)
	return append(out, blob[2+l:]...)
}

func TestBlobUnderAnotherKey(t *testing.T) {
	a := mustOpen(t, cfgFor(tok.main, "wrap-a"))
	b := mustOpen(t, cfgFor(tok.main, "wrap-b"))
	aad := []byte("aad")
	blobA, err := a.Seal([]byte("share"), aad)
	if err != nil {
		t.Fatal(err)
	}
	// b does not know wrap-a.
	if _, err := b.Open(blobA, aad); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("Open under unconfigured key: %v", err)
	}
	// A blob sealed by wrap-a but claiming wrap-b fails authentication.
	if _, err := b.Open(relabel(blobA, "wrap-b"), aad); !errors.Is(err, hsm.ErrAuth) {
		t.Fatalf("Open relabelled blob: %v", err)
	}
	// A different token holding its own "wrap-a" cannot open it either.
	other := mustOpen(t, cfgFor(tok.policy, "wrap-a"))
	if _, err := other.Open(blobA, aad); !errors.Is(err, hsm.ErrAuth) {
		t.Fatalf("Open on another token's key of the same label: %v", err)
	}
}

func TestRotation(t *testing.T) {
	old := mustOpen(t, cfgFor(tok.main, "rot-1"))
	aad := []byte("key_id=rot")
	secret := []byte("a 32-byte secret scalar........")
	blob1, err := old.Seal(secret, aad)
	if err != nil {
		t.Fatal(err)
	}
	old.Close()

	cfg := cfgFor(tok.main, "rot-2")
	cfg.ReadKeyLabels = []string{"rot-1"}
	rot := mustOpen(t, cfg)
	if rot.ActiveKeyLabel() != "rot-2" {
		t.Fatalf("active key %q", rot.ActiveKeyLabel())
	}
	if got, err := rot.Open(blob1, aad); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open old blob after rotation: %v", err)
	}
	blob2, err := rot.Reseal(blob1, aad)
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := hsm.BlobKeyLabel(blob2); l != "rot-2" {
		t.Fatalf("resealed under %q", l)
	}
	if _, err := rot.Reseal(blob1, []byte("other aad")); !errors.Is(err, hsm.ErrAuth) {
		t.Fatalf("Reseal with wrong aad: %v", err)
	}
	rot.Close()

	// Once the old key is dropped from the config only re-sealed blobs open.
	onlyNew := mustOpen(t, cfgFor(tok.main, "rot-2"))
	if got, err := onlyNew.Open(blob2, aad); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open resealed blob: %v", err)
	}
	if _, err := onlyNew.Open(blob1, aad); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("open old blob without the old key: %v", err)
	}
	// Read-only labels are never created.
	cfg = cfgFor(tok.main, "rot-2")
	cfg.ReadKeyLabels = []string{"rot-never-created"}
	if _, err := hsm.Open(cfg); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("missing read-only key: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	goodPIN := filepath.Join(dir, "good.pin")
	if err := os.WriteFile(goodPIN, []byte(tok.main.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	openPIN := filepath.Join(dir, "open.pin")
	if err := os.WriteFile(openPIN, []byte(tok.main.PIN), 0o644); err != nil {
		t.Fatal(err)
	}
	emptyPIN := filepath.Join(dir, "empty.pin")
	if err := os.WriteFile(emptyPIN, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("QUORUMD_TEST_PIN", tok.main.PIN)
	noSlot := 987654
	mainSlot := tok.main.Slot
	base := cfgFor(tok.main, "wrap-a")
	with := func(f func(*hsm.Config)) hsm.Config {
		c := base
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  hsm.Config
		want error // nil: Open must succeed
	}{
		{"ok inline PIN", base, nil},
		{"ok PIN file", with(func(c *hsm.Config) { c.PIN, c.PINFile = "", goodPIN }), nil},
		{"ok PIN env", with(func(c *hsm.Config) { c.PIN, c.PINEnv = "", "QUORUMD_TEST_PIN" }), nil},
		{"ok slot number", with(func(c *hsm.Config) { c.TokenLabel, c.SlotNumber = "", &mainSlot }), nil},
		{"missing token label", with(func(c *hsm.Config) { c.TokenLabel = "no-such-token" }), hsm.ErrTokenNotFound},
		{"missing slot", with(func(c *hsm.Config) { c.TokenLabel, c.SlotNumber = "", &noSlot }), hsm.ErrTokenNotFound},
		{"wrong PIN", hsm.Config{ModulePath: tok.pin.Module, TokenLabel: "pin", PIN: "wrong-pin-0000", KeyLabel: "k", CreateKey: true}, hsm.ErrLogin},
		{"missing key, creation off", with(func(c *hsm.Config) { c.KeyLabel, c.CreateKey = "never-created", false }), hsm.ErrKeyNotFound},
		{"module missing", with(func(c *hsm.Config) { c.ModulePath = "/nonexistent/libpkcs11.so" }), hsm.ErrModule},
		{"module not PKCS#11", with(func(c *hsm.Config) { c.ModulePath = "/etc/hostname" }), hsm.ErrModule},
		{"module relative", with(func(c *hsm.Config) { c.ModulePath = "libsofthsm2.so" }), hsm.ErrConfig},
		{"no module", with(func(c *hsm.Config) { c.ModulePath = "" }), hsm.ErrConfig},
		{"label and slot", with(func(c *hsm.Config) { c.SlotNumber = &mainSlot }), hsm.ErrConfig},
		{"neither label nor slot", with(func(c *hsm.Config) { c.TokenLabel = "" }), hsm.ErrConfig},
		{"two PIN sources", with(func(c *hsm.Config) { c.PINFile = goodPIN }), hsm.ErrConfig},
		{"no PIN", with(func(c *hsm.Config) { c.PIN = "" }), hsm.ErrConfig},
		{"PIN file world-readable", with(func(c *hsm.Config) { c.PIN, c.PINFile = "", openPIN }), hsm.ErrPINSource},
		{"PIN file empty", with(func(c *hsm.Config) { c.PIN, c.PINFile = "", emptyPIN }), hsm.ErrPINSource},
		{"PIN file missing", with(func(c *hsm.Config) { c.PIN, c.PINFile = "", filepath.Join(dir, "nope") }), hsm.ErrPINSource},
		{"PIN env unset", with(func(c *hsm.Config) { c.PIN, c.PINEnv = "", "QUORUMD_TEST_PIN_UNSET" }), hsm.ErrPINSource},
		{"no key label", with(func(c *hsm.Config) { c.KeyLabel = "" }), hsm.ErrConfig},
		{"key label too long", with(func(c *hsm.Config) { c.KeyLabel = strings.Repeat("k", 256) }), hsm.ErrConfig},
		{"key label control char", with(func(c *hsm.Config) { c.KeyLabel = "a\nb" }), hsm.ErrConfig},
		{"read label repeats active", with(func(c *hsm.Config) { c.ReadKeyLabels = []string{"wrap-a"} }), hsm.ErrConfig},
		{"one session", with(func(c *hsm.Config) { c.MaxSessions = 1 }), hsm.ErrConfig},
		{"negative wait", with(func(c *hsm.Config) { c.PoolWaitTimeout = -time.Second }), hsm.ErrConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := hsm.Open(tc.cfg)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer h.Close()
				if err := h.Ping(context.Background()); err != nil {
					t.Fatalf("Ping: %v", err)
				}
				return
			}
			if err == nil {
				h.Close()
				t.Fatalf("Open succeeded, want %v", tc.want)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open: %v, want %v", err, tc.want)
			}
			for _, pin := range []string{tok.main.PIN, tok.pin.PIN, "wrong-pin-0000"} {
				if strings.Contains(err.Error(), pin) {
					t.Fatalf("error %q contains a PIN", err)
				}
			}
		})
	}
}

func TestConfigNeverPrintsPIN(t *testing.T) {
	pin := "s3cr3t-PIN-value"
	slot := 4
	for _, cfg := range []hsm.Config{
		{ModulePath: "/m.so", TokenLabel: "t", PIN: pin, KeyLabel: "k"},
		{ModulePath: "/m.so", SlotNumber: &slot, PIN: pin, KeyLabel: "k", ReadKeyLabels: []string{"old"}},
	} {
		var logged bytes.Buffer
		slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "hsm", cfg)
		for _, s := range []string{
			fmt.Sprint(cfg), fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg),
			fmt.Sprintf("%s", &cfg), logged.String(),
		} {
			if strings.Contains(s, pin) {
				t.Fatalf("PIN printed: %s", s)
			}
			if !strings.Contains(s, "/m.so") {
				t.Fatalf("config description lost its content: %s", s)
			}
		}
	}
}

// c11 opens a raw crypto11 context on a token, for creating keys the hsm
// package would refuse to create.
func c11(t *testing.T, tk testkit.SoftHSMToken) *crypto11.Context {
	t.Helper()
	ctx, err := crypto11.Configure(&crypto11.Config{Path: tk.Module, TokenLabel: tk.Label, Pin: tk.PIN})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctx.Close() })
	return ctx
}

func TestKeyPolicy(t *testing.T) {
	ctx := c11(t, tok.policy)
	// Labels are unique per run: keys persist on the token under -count.
	run := fmt.Sprintf("-%d", time.Now().UnixNano())
	gen := func(label string, extra map[crypto11.AttributeType]any, bits int, cipher *crypto11.SymmetricCipher) {
		label += run
		attrs, err := crypto11.NewAttributeSetWithIDAndLabel([]byte(label), []byte(label))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range extra {
			if err := attrs.Set(k, v); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := ctx.GenerateSecretKeyWithAttributes(attrs, bits, cipher); err != nil {
			t.Fatalf("generate %s: %v", label, err)
		}
	}
	gen("extractable", map[crypto11.AttributeType]any{pkcs11.CKA_EXTRACTABLE: true}, 256, crypto11.CipherAES)
	gen("not-sensitive", map[crypto11.AttributeType]any{pkcs11.CKA_SENSITIVE: false}, 256, crypto11.CipherAES)
	gen("aes128", nil, 128, crypto11.CipherAES)
	gen("no-decrypt", map[crypto11.AttributeType]any{pkcs11.CKA_DECRYPT: false}, 256, crypto11.CipherAES)
	gen("twice", nil, 256, crypto11.CipherAES)
	gen("twice", nil, 256, crypto11.CipherAES)

	for _, tc := range []struct {
		label string
		want  error
	}{
		{"extractable", hsm.ErrKeyPolicy},
		{"not-sensitive", hsm.ErrKeyPolicy},
		{"aes128", hsm.ErrKeyPolicy},
		{"no-decrypt", hsm.ErrKeyPolicy},
		{"twice", hsm.ErrKeyAmbiguous},
	} {
		t.Run(tc.label, func(t *testing.T) {
			cfg := cfgFor(tok.policy, tc.label+run)
			if _, err := hsm.Open(cfg); !errors.Is(err, tc.want) {
				t.Fatalf("Open: %v, want %v", err, tc.want)
			}
		})
	}

	// The key hsm creates has the attributes the policy demands, and its
	// value cannot be read.
	h := mustOpen(t, cfgFor(tok.policy, "created"+run))
	h.Close()
	key, err := ctx.FindKey(nil, []byte("created"+run))
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := ctx.GetAttributes(key, []crypto11.AttributeType{
		pkcs11.CKA_SENSITIVE, pkcs11.CKA_EXTRACTABLE, pkcs11.CKA_TOKEN, pkcs11.CKA_PRIVATE,
		pkcs11.CKA_WRAP, pkcs11.CKA_UNWRAP, pkcs11.CKA_ALWAYS_SENSITIVE, pkcs11.CKA_NEVER_EXTRACTABLE,
	})
	if err != nil {
		t.Fatal(err)
	}
	for typ, want := range map[crypto11.AttributeType]byte{
		pkcs11.CKA_SENSITIVE: 1, pkcs11.CKA_EXTRACTABLE: 0, pkcs11.CKA_TOKEN: 1, pkcs11.CKA_PRIVATE: 1,
		pkcs11.CKA_WRAP: 0, pkcs11.CKA_UNWRAP: 0, pkcs11.CKA_ALWAYS_SENSITIVE: 1, pkcs11.CKA_NEVER_EXTRACTABLE: 1,
	} {
		if a := attrs[typ]; a == nil || len(a.Value) != 1 || a.Value[0] != want {
			t.Errorf("attribute %#x = %v, want %d", typ, a, want)
		}
	}
	if _, err := ctx.GetAttribute(key, pkcs11.CKA_VALUE); err == nil {
		t.Error("the key value of the created wrapping key is readable")
	}
}

func TestConcurrentSealOpen(t *testing.T) {
	h := mustOpen(t, cfgFor(tok.main, "wrap-a"))
	const workers, perWorker = 64, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				pt := []byte(fmt.Sprintf("secret %d/%d", w, i))
				aad := []byte(fmt.Sprintf("aad %d/%d", w, i))
				blob, err := h.Seal(pt, aad)
				if err != nil {
					errs <- err
					return
				}
				got, err := h.Open(blob, aad)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, pt) {
					errs <- fmt.Errorf("worker %d op %d: wrong plaintext", w, i)
					return
				}
				// Another worker's AAD must not open this blob.
				if _, err := h.Open(blob, []byte(fmt.Sprintf("aad %d/%d", (w+1)%workers, i))); !errors.Is(err, hsm.ErrAuth) {
					errs <- fmt.Errorf("cross-AAD open: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// load runs Seal/Open loops on n goroutines until stop is closed and
// classifies the outcomes; any error that is not ErrUnavailable (or ErrClosed)
// fails the test.
type load struct {
	ok, failed atomic.Int64
	wg         sync.WaitGroup
	stop       chan struct{}
	mu         sync.Mutex
	unexpected []error
}

func startLoad(h *hsm.HSM, n int) *load {
	l := &load{stop: make(chan struct{})}
	for w := range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			aad := []byte(fmt.Sprintf("load %d", w))
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				blob, err := h.Seal([]byte("payload"), aad)
				if err == nil {
					var pt []byte
					pt, err = h.Open(blob, aad)
					if err == nil && string(pt) != "payload" {
						err = errors.New("wrong plaintext")
					}
				}
				if err == nil {
					l.ok.Add(1)
					continue
				}
				l.failed.Add(1)
				if !errors.Is(err, hsm.ErrUnavailable) {
					l.mu.Lock()
					l.unexpected = append(l.unexpected, err)
					l.mu.Unlock()
				}
				if errors.Is(err, hsm.ErrClosed) {
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	return l
}

func (l *load) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("load goroutines hung")
	}
	t.Logf("operations: %d succeeded, %d failed", l.ok.Load(), l.failed.Load())
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, err := range l.unexpected {
		if i == 5 {
			break
		}
		t.Errorf("unexpected error class: %v", err)
	}
}

// waitOK waits until f succeeds or the deadline passes.
func waitOK(t *testing.T, what string, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not recover: %v", what, err)
}

func TestCloseUnderLoad(t *testing.T) {
	h := mustOpen(t, cfgFor(tok.main, "wrap-a"))
	l := startLoad(h, 16)
	time.Sleep(150 * time.Millisecond)
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	l.finish(t)
	if l.ok.Load() == 0 {
		t.Fatal("no operation succeeded before Close")
	}
	if _, err := h.Seal([]byte("x"), []byte("a")); !errors.Is(err, hsm.ErrClosed) {
		t.Fatalf("Seal after Close: %v", err)
	}
	if _, err := h.Open([]byte{1, 1, 'k'}, []byte("a")); err == nil {
		t.Fatal("Open after Close succeeded")
	}
	if err := h.Ping(context.Background()); !errors.Is(err, hsm.ErrClosed) {
		t.Fatalf("Ping after Close: %v", err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// foreign opens the SoftHSM module through its own handle, as another
// application thread would, and runs f with a session on tk's slot. The
// module is already initialized by the HSM under test; this handle neither
// initializes nor finalizes it.
func foreign(t *testing.T, tk testkit.SoftHSMToken, f func(p *pkcs11.Ctx, s pkcs11.SessionHandle)) {
	t.Helper()
	p := pkcs11.New(tk.Module)
	if p == nil {
		t.Fatal("pkcs11.New failed")
	}
	defer p.Destroy()
	if err := p.Initialize(); err == nil {
		p.Finalize()
		t.Fatal("module was not initialized by the HSM under test")
	} else if !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		t.Fatalf("Initialize: %v", err)
	}
	s, err := p.OpenSession(uint(tk.Slot), pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		t.Fatalf("OpenSession: %v", err)
	}
	f(p, s)
	_ = p.CloseSession(s)
}

// TestLogoutUnderLoad logs the application out of the token while 16
// goroutines are sealing: every session loses its login. Operations must
// fail with ErrUnavailable (crypto11 panics inside Seal here), never crash,
// and the HSM must log in again by itself.
func TestLogoutUnderLoad(t *testing.T) {
	h := mustOpen(t, cfgFor(tok.logout, "k"))
	l := startLoad(h, 16)
	time.Sleep(150 * time.Millisecond)
	foreign(t, tok.logout, func(p *pkcs11.Ctx, s pkcs11.SessionHandle) {
		if err := p.Logout(s); err != nil {
			t.Errorf("Logout: %v", err)
		}
	})
	before := l.ok.Load()
	waitOK(t, "load after logout", 10*time.Second, func() error {
		if l.ok.Load() < before+100 {
			return errors.New("fewer than 100 successful operations since the logout")
		}
		return nil
	})
	l.finish(t)
	if l.failed.Load() == 0 {
		t.Fatal("logging out did not make a single operation fail: the test exercised nothing")
	}
	if err := h.Ping(context.Background()); err != nil {
		t.Fatalf("Ping after recovery: %v", err)
	}
}

// TestSessionsClosedWhileIdle closes every session of the application on the
// token (SoftHSM's C_CloseAllSessions is not safe against operations in
// flight in the same process, so this runs while idle). The next operation
// reports ErrUnavailable and the HSM then reconnects.
func TestSessionsClosedWhileIdle(t *testing.T) {
	h := mustOpen(t, cfgFor(tok.closeall, "k"))
	aad := []byte("aad")
	blob, err := h.Seal([]byte("before"), aad)
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		foreign(t, tok.closeall, func(p *pkcs11.Ctx, _ pkcs11.SessionHandle) {
			if err := p.CloseAllSessions(uint(tok.closeall.Slot)); err != nil {
				t.Fatalf("CloseAllSessions: %v", err)
			}
		})
		if _, err := h.Open(blob, aad); !errors.Is(err, hsm.ErrUnavailable) {
			t.Fatalf("round %d: Open with all sessions closed: %v", round, err)
		}
		waitOK(t, "Ping after sessions closed", 5*time.Second, func() error { return h.Ping(context.Background()) })
		if got, err := h.Open(blob, aad); err != nil || string(got) != "before" {
			t.Fatalf("round %d: Open after reconnect: %v", round, err)
		}
	}
}

// TestTokenRemovedUnderLoad deletes the token's files while 16 goroutines
// are sealing: operations must fail with ErrUnavailable, not crash, and Ping
// must keep failing because the key is gone.
func TestTokenRemovedUnderLoad(t *testing.T) {
	// A token of its own, created now so the test also runs under -count:
	// no context is open between tests, so the next Open re-initializes the
	// module and SoftHSM lists the new token.
	toks, err := testkit.NewSoftHSMTokens(storeDir, fmt.Sprintf("doomed-%d", time.Now().UnixNano()%1e9))
	if err != nil {
		t.Fatal(err)
	}
	doomed := toks[0]
	h := mustOpen(t, cfgFor(doomed, "k"))
	l := startLoad(h, 16)
	time.Sleep(150 * time.Millisecond)
	// Move the token out of the token directory in one step: SoftHSM rescans
	// that directory when the HSM reconnects, so a slow RemoveAll in place
	// could race with the rescan.
	gone := filepath.Join(storeDir, "removed-"+filepath.Base(doomed.TokenDir))
	if err := os.Rename(doomed.TokenDir, gone); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(gone)
	deadline := time.Now().Add(10 * time.Second)
	for l.failed.Load() < 100 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	l.finish(t)
	if l.failed.Load() == 0 {
		t.Fatal("no operation failed after the token was deleted")
	}
	for i := 0; i < 3; i++ {
		if err := h.Ping(context.Background()); !errors.Is(err, hsm.ErrUnavailable) {
			t.Fatalf("Ping on a deleted token: %v", err)
		}
		time.Sleep(400 * time.Millisecond)
	}
}

func TestPing(t *testing.T) {
	h := mustOpen(t, cfgFor(tok.main, "wrap-a"))
	if err := h.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Either the probe wins the race or the cancelled context does; both
	// outcomes are legal, but a failure must be ErrUnavailable.
	if err := h.Ping(ctx); err != nil && !errors.Is(err, hsm.ErrUnavailable) {
		t.Fatalf("Ping with cancelled context: %v", err)
	}
}
