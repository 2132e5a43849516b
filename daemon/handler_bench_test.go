package daemon

import (
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
)

// presigned is a Ceremonies backend for BenchmarkHandlerSign alone: it
// reads the key record as the key service does and answers a signature
// made once, so the benchmark's time and allocations are the HTTP layer's
// own (the ceremony's are BenchmarkE2ESignTrace's and mpc/ceremony's).
type presigned struct {
	*memNet
	sig []byte
}

func (p presigned) Sign(ctx context.Context, sp SignParams) ([]byte, error) {
	if _, err := p.keys.Get(ctx, sp.Owner, sp.KeyID); err != nil {
		return nil, err
	}
	return p.sig, nil
}

// BenchmarkHandlerSign measures the HTTP layer's cost per sign call:
// routing, JSON decode and validation, authorization, the key record, the
// fair-share seat, contexts, metrics, the audit and access lines (JSON, to
// a discarding writer), the answer and the buffer wiping.
//
//	go test ./daemon -run '^$' -bench HandlerSign -benchmem
func BenchmarkHandlerSign(b *testing.B) {
	pol, keys := newMemPolicy(), newMemKeys()
	_, key := pol.add("u", false)
	c, _ := pol.Authorize(context.Background(), key, OpSign, AuthParams{})
	slot, _ := keys.Create(context.Background(), c.UserID, 0)
	priv, _ := btcec.NewPrivateKey()
	xonly := priv.PubKey().SerializeCompressed()[1:]
	if err := keys.commit(c.UserID, slot.KeyID, 1, [][]byte{slot.KeygenID}, xonly); err != nil {
		b.Fatal(err)
	}
	net := newMemNet(keys)
	cer := presigned{memNet: net, sig: make([]byte, 64)}
	srv, err := New(testConfig(), Backends{Auth: pol, Admin: pol, Keys: keys, Rooms: net, Ceremonies: cer},
		slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	body := `{"room_uuid":"00000000-0000-4000-8000-000000000000","key_id":"` + slot.KeyID +
		`","msg":"` + hex.EncodeToString(make([]byte, 32)) + `"}`
	b.ReportAllocs()
	for b.Loop() {
		var fc fastCtx
		fc.init("POST", "/bip340/sign", key, body)
		srv.Handler(fc.ctx)
		if fc.ctx.Response.StatusCode() != 200 {
			b.Fatal(string(fc.ctx.Response.Body()))
		}
	}
}
