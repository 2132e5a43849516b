// Command quorum-rule-server is an example external rule server for
// quorumd (docs/operations.md, "External rule servers"): it approves a
// signature only when the message starts with one of the allowed hex
// prefixes, answering with a JWT signed by its key (ES256 or EdDSA).
//
//	quorum-rule-server -listen 127.0.0.1:9700 -key rule.pem -prefix beef -prefix cafe
//
// The key file is a PEM "PRIVATE KEY" (PKCS#8) of a P-256 or Ed25519 key;
// -print-pubkey prints the public key to register with
// POST /admin/policies/add-external-rule.
package main

import (
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/quorumd/quorumd/policy/rules"
)

type prefixes [][]byte

func (p *prefixes) String() string { return fmt.Sprint(len(*p), " prefixes") }

func (p *prefixes) Set(s string) error {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) == 0 {
		return errors.New("a prefix is non-empty hex")
	}
	*p = append(*p, b)
	return nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9700", "address to serve on")
	keyFile := flag.String("key", "", "PEM PKCS#8 private key (P-256 or Ed25519)")
	printPub := flag.Bool("print-pubkey", false, "print the PEM public key (stdout) and the jwt_alg (stderr), then exit")
	var allow prefixes
	flag.Var(&allow, "prefix", "allowed message prefix in hex (repeatable)")
	flag.Parse()
	key, err := loadKey(*keyFile)
	if err != nil {
		log.Fatal(err)
	}
	srv := &rules.PrefixServer{Key: key, Prefixes: allow}
	alg, err := srv.Alg()
	if err != nil {
		log.Fatal(err)
	}
	if *printPub {
		der, err := x509.MarshalPKIXPublicKey(key.Public())
		if err != nil {
			log.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "jwt_alg: %s\n", alg.Alg())
		os.Stdout.Write(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		return
	}
	if len(allow) == 0 {
		log.Fatal("no -prefix given: every signature would be denied")
	}
	log.Printf("rule server on %s (%s, %d prefixes)", *listen, alg.Alg(), len(allow))
	hs := &http.Server{Addr: *listen, Handler: srv, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	log.Fatal(hs.ListenAndServe())
}

func loadKey(path string) (crypto.Signer, error) {
	if path == "" {
		return nil, errors.New("-key is required")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || !strings.HasSuffix(blk.Type, "PRIVATE KEY") {
		return nil, fmt.Errorf("%s: no PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: not a signing key", path)
	}
	return s, nil
}
