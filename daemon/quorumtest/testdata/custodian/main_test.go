package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/quorumd/quorumd/daemon/client"
	"github.com/quorumd/quorumd/daemon/quorumtest"
	"github.com/quorumd/quorumd/mpc/bip340"
)

// TestImportAndSign runs docs/clients.md's importAndSign against a
// throwaway quorum, from a module outside quorumd's, and checks the
// signature with an independent verifier.
func TestImportAndSign(t *testing.T) {
	q := quorumtest.Start(t, quorumtest.Options{Parties: 3})
	var urls, keys []string
	for i := range q.N() {
		urls = append(urls, q.ValidatedURL(i))
		keys = append(keys, q.UserKey(i))
	}
	priv := make([]byte, 32)
	rand.Read(priv)
	pub, err := client.XOnlyPubkey(priv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	msg := []byte("hello, quorum")
	res, err := importAndSign(ctx, urls, keys, hex.EncodeToString(priv), msg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Pubkey != hex.EncodeToString(pub[:]) {
		t.Fatalf("signed for %s, imported %x", res.Pubkey, pub)
	}
	sig, err := hex.DecodeString(res.Signature)
	if err != nil {
		t.Fatal(err)
	}
	if err := bip340.VerifyReference(pub[:], msg, sig); err != nil {
		t.Fatal(err)
	}
	// The error envelope reaches an outside module as a typed error.
	var apiErr *client.APIError
	_, err = q.Client(0).GetKey(ctx, "0f0e0d0c-0b0a-4908-8706-050403020100")
	if !errors.As(err, &apiErr) || apiErr.ErrType != "key_id_not_exists" {
		t.Fatalf("unknown key_id: %v", err)
	}
}
