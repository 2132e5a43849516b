package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/apispec"
	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/policy"
)

// serveTLS gives the node's configuration a fresh self-signed certificate
// for 127.0.0.1 and makes http.DefaultClient trust it for this test.
func serveTLS(t *testing.T, n *node) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "quorumd test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(n.dir, "tls.crt"), filepath.Join(n.dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(n.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(raw), "server:\n", fmt.Sprintf("server:\n  tls:\n    cert_file: %s\n    key_file: %s\n", certFile, keyFile), 1)
	if err := os.WriteFile(n.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	tr := http.DefaultTransport.(*http.Transport)
	prev := tr.TLSClientConfig
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	t.Cleanup(func() { tr.CloseIdleConnections(); tr.TLSClientConfig = prev })
}

// needle is a secret's byte form looked for in a process's memory.
type needle struct {
	name string
	b    []byte
}

// keyNeedles are every form of a 32-byte private key: big- and
// little-endian bytes (ModNScalar's limbs are the latter), lower- and
// upper-case hex.
func keyNeedles(name string, be []byte) []needle {
	le := slices.Clone(be)
	slices.Reverse(le)
	h := hex.EncodeToString(be)
	return []needle{{name + " (big-endian)", be}, {name + " (little-endian)", le},
		{name + " (hex)", []byte(h)}, {name + " (HEX)", []byte(strings.ToUpper(h))}}
}

// apiKeyNeedles: an API key's secret part (what the whole key contains).
func apiKeyNeedles(name, key string) []needle {
	_, secret, _ := strings.Cut(key, ".")
	return []needle{{name + " secret", []byte(secret)}}
}

// scanMemory reads every readable mapping of pid (those up to maxMapping
// bytes, when > 0) through /proc/pid/mem and returns where each needle
// occurs.
func scanMemory(t *testing.T, pid int, needles []needle, maxMapping uint64) []string {
	t.Helper()
	maps, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer maps.Close()
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatalf("opening the daemon's memory (needs root or CAP_SYS_PTRACE): %v", err)
	}
	defer mem.Close()
	var found []string
	scanned := 0
	sc := bufio.NewScanner(maps)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[1][0] != 'r' {
			continue
		}
		if len(f) >= 6 && (f[5] == "[vvar]" || f[5] == "[vsyscall]" || f[5] == "[vvar_vclock]") {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("maps line %q", sc.Text())
		}
		if maxMapping > 0 && end-start > maxMapping {
			continue
		}
		buf := make([]byte, end-start)
		n, _ := mem.ReadAt(buf, int64(start))
		buf = buf[:n]
		scanned += n
		for _, nd := range needles {
			for off := 0; ; {
				i := bytes.Index(buf[off:], nd.b)
				if i < 0 {
					break
				}
				found = append(found, fmt.Sprintf("%s at %#x in %s", nd.name, start+uint64(off+i), sc.Text()))
				off += i + 1
			}
		}
	}
	if scanned < 1<<20 {
		t.Fatalf("scanned only %d bytes of the daemon's memory", scanned)
	}
	return found
}

// TestMemoryHoldsNoSecrets runs the importer of a 2-of-3 import as a real
// process, then sends it requests whose API keys it must not keep (a wrong
// secret and an unknown key, both answered 401, one with Connection:
// close; a revoke-api-key whose body carries a whole API key), and scans
// its memory: the imported private key (raw bytes in both byte orders, hex
// in both cases) and those API key secrets must be nowhere. Over plain HTTP
// and over TLS.
func TestMemoryHoldsNoSecrets(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("reading another process's memory under PR_SET_DUMPABLE=0 needs root (CI runs as root)")
	}
	bin := buildQuorumd(t)
	t.Run("http", func(t *testing.T) { memoryHoldsNoSecrets(t, bin, false) })
	t.Run("tls", func(t *testing.T) { memoryHoldsNoSecrets(t, bin, true) })
}

func memoryHoldsNoSecrets(t *testing.T, bin string, useTLS bool) {
	relayAddr := testkit.Relay(t)
	importer := configureNode(t, tokens[7], relayAddr, e2eCeremonyTimeout, relayAddr)
	scheme := "http://"
	if useTLS {
		scheme = "https://"
		serveTLS(t, importer)
	}
	// Users made in the policy file, not by the daemon: it never generated
	// (and so never held) these keys; it only receives them in requests.
	src, err := policy.OpenFile(importer.policyFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var bobKey, bobID string
	if importer.userKey, importer.userID, err = src.CreateUser(ctx, "alice", false, "default"); err == nil {
		bobKey, bobID, err = src.CreateUser(ctx, "bob", false, "default")
	}
	if err != nil {
		t.Fatal(err)
	}
	src.Close()
	d := startProcess(t, []string{"PATH=/usr/bin:/bin", "SOFTHSM2_CONF=" + tokens[7].ConfPath},
		bin, "-config", importer.cfgPath)
	select {
	case a := <-d.addr:
		importer.base = apispec.Proxy(t, scheme+a)
	case err := <-d.done:
		t.Fatalf("quorumd exited: %v\n%s", err, d)
	case <-time.After(60 * time.Second):
		t.Fatalf("quorumd did not start\n%s", d)
	}
	pid := d.cmd.Process.Pid

	q := &cluster{t: t, nodes: []*node{importer,
		newNode(t, tokens[5], relayAddr, relayAddr), newNode(t, tokens[6], relayAddr, relayAddr)}}
	for _, nd := range q.nodes[1:] {
		nd.userKey, nd.userID = nd.createUser("alice")
	}
	_, _, privHex := q.importAndCheck(q.nodes, 2)
	priv, _ := hex.DecodeString(privHex)

	// 401s: alice's lookup id with a wrong secret, and an unknown key.
	var sec [32]byte
	rand.Read(sec[:])
	lookup, _, _ := strings.Cut(importer.userKey, ".")
	wrong := lookup + "." + base64.RawURLEncoding.EncodeToString(sec[:])
	rand.Read(sec[:])
	unknown := "0123456789abcdef." + base64.RawURLEncoding.EncodeToString(sec[:])
	for i, k := range []string{wrong, unknown} {
		req, _ := http.NewRequest("GET", importer.base+"/bip340/create", nil)
		req.Header.Set("Authorization", k)
		req.Close = i == 1 // Connection: close
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("request with a bad API key answered %d", res.StatusCode)
		}
	}
	importer.must("DELETE", "/admin/revoke-api-key", importer.adminKey, map[string]string{"user_id": bobID, "api_key": bobKey})

	needles := keyNeedles("private key", priv)
	for _, k := range []struct{ name, key string }{{"wrong API key", wrong}, {"unknown API key", unknown},
		{"revoked API key", bobKey}, {"alice's API key", importer.userKey}, {"admin API key", importer.adminKey}} {
		needles = append(needles, apiKeyNeedles(k.name, k.key)...)
	}
	// The connections' last reads zero their buffers as soon as fasthttp
	// waits for the next request; allow for a loaded machine.
	var found []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		found = scanMemory(t, pid, needles, 0)
		if len(found) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(found) > 0 {
		t.Fatalf("secrets found in the importer's memory after the requests:\n%s", strings.Join(found, "\n"))
	}
	// The scan can find things: the test process's own copy of the key
	// (its heap; the race detector's shadow mappings are skipped).
	if len(scanMemory(t, os.Getpid(), keyNeedles("private key", priv)[2:3], 1<<30)) == 0 {
		t.Fatal("the scan does not find the key even in the test process, which holds it")
	}
}
