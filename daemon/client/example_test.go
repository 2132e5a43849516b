package client_test

import (
	"context"
	"fmt"
	"log"

	"github.com/quorumd/quorumd/daemon/client"
)

// Import a key 2-of-3 through three daemons, then sign with two of them.
// (Compiled, not run: it needs daemons; TestEndpoints runs the same calls.)
func Example() {
	ctx := context.Background()
	var parties []*client.Client
	for _, d := range []struct{ url, key string }{
		{"https://quorum-a.example:8443", "<alice's API key on a>"},
		{"https://quorum-b.example:8443", "<alice's API key on b>"},
		{"https://quorum-c.example:8443", "<alice's API key on c>"},
	} {
		c, err := client.New(d.url, d.key)
		if err != nil {
			log.Fatal(err)
		}
		parties = append(parties, c)
	}
	q := &client.Quorum{Parties: parties}
	privateKey := make([]byte, 32) // the key to import, from wherever it is kept
	defer clear(privateKey)
	imp, err := q.Import(ctx, privateKey, client.ImportOptions{Threshold: 2})
	if err != nil {
		log.Fatal(client.ErrType(err), err) // e.g. executor_result, naming the culprit
	}
	sig, err := q.Sign(ctx, imp.KeyIDs, []byte("message"), client.SignOptions{Signers: []int{0, 2}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(imp.Pubkey, sig.Signature) // verified by Sign under the pubkey
}
