package client_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/quorumd/quorumd/daemon/client"
	"github.com/quorumd/quorumd/daemon/quorumtest"
)

// BenchmarkClient measures calls through the client against a real quorum
// of three in-process daemons (quorumtest, without spec validation: the
// client and the daemon, not the validator): a key record (one HTTP round
// trip, the client's own overhead on top of the daemon's), and a whole
// 2-of-3 signature by Signers.Sign (room, two sign calls at once, three
// verifications).
func BenchmarkClient(b *testing.B) {
	q := quorumtest.Start(b, quorumtest.Options{Parties: 3, NoSpecValidation: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	users := q.Clients()
	qu := &client.Quorum{Parties: users}
	key := make([]byte, 32)
	key[31] = 7
	imp, err := qu.Import(ctx, key, client.ImportOptions{Threshold: 2})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("GetKey", func(b *testing.B) {
		for b.Loop() {
			if _, err := users[0].GetKey(ctx, imp.KeyIDs[0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Sign2of3", func(b *testing.B) {
		set, err := qu.PrepareSign(ctx, imp.KeyIDs, client.SignOptions{Signers: []int{0, 1}})
		if err != nil {
			b.Fatal(err)
		}
		msg := bytes.Repeat([]byte{1}, 32)
		for b.Loop() {
			if _, err := set.Sign(ctx, msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}
