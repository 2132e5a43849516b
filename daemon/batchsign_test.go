package daemon

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2/schnorr"
)

func TestDecodeBatchSign(t *testing.T) {
	const room, key = "0b5a2c58-1d6e-4c3f-9a57-3f0c2e8b9d41", "5f1e8a2b-7c3d-4e9f-8a1b-2c3d4e5f6a7b"
	item := `{"room_uuid":"` + room + `","key_id":"` + key + `","msg":"00"}`
	bad := func(body, wantType string) {
		t.Helper()
		_, err := decodeBatchSign([]byte(body), 3)
		var e *Error
		if !errors.As(err, &e) || e.Type != wantType {
			t.Errorf("%s: %v, want %s", body, err, wantType)
		}
	}
	bad(`[]`, ErrTypeBadRequestParams)
	bad(`{}`, ErrTypeBadRequestParams)
	bad(`{"sign_requests":{}}`, ErrTypeBadRequestParams)
	bad(`{"sign_requests":[]}`, ErrTypeBadRequestParams)
	bad(`{"sign_requests":[`+item+`],"extra":1}`, ErrTypeBadRequestParams)
	bad(`{"sign_requests":[`+strings.Repeat(item+",", 3)+item+`]}`, ErrTypeBatchTooLarge)

	// A bad item fails alone; the others decode.
	items, err := decodeBatchSign([]byte(`{"sign_requests":[`+item+`,{"msg":"zz"},7,`+item+`]}`), 4)
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range items {
		ok := it.err == nil && it.req != nil
		if ok != (i == 0 || i == 3) {
			t.Errorf("item %d: %+v", i, it)
		}
	}
	if !strings.Contains(items[1].err.Error(), "sign_requests[1]") {
		t.Errorf("item error %v does not name its index", items[1].err)
	}
	if r, _, err := batchRoom(items); err != nil || r != room {
		t.Errorf("room %q, %v", r, err)
	}
	other := strings.Replace(item, room, "1b5a2c58-1d6e-4c3f-9a57-3f0c2e8b9d41", 1)
	items, _ = decodeBatchSign([]byte(`{"sign_requests":[`+item+`,`+other+`]}`), 4)
	if _, _, err := batchRoom(items); err == nil {
		t.Error("two rooms in one batch accepted")
	}
}

// FuzzDecodeBatchSign: any body either fails as a whole with
// bad_request_params or batch_too_large, or yields 1..max entries, each a
// valid sign request or a bad_request_params error.
func FuzzDecodeBatchSign(f *testing.F) {
	item := `{"room_uuid":"00000000-0000-4000-8000-000000000000","key_id":"11111111-1111-4111-8111-111111111111","msg":"00ff"}`
	f.Add([]byte(`{"sign_requests":[` + item + `,` + item + `]}`))
	f.Add([]byte(`{"sign_requests":[` + item + `,{"msg":"zz"},null,[]]}`))
	f.Add([]byte(`{"sign_requests":[]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		const max = 4
		items, err := decodeBatchSign(body, max)
		var e *Error
		if err != nil {
			if !errors.As(err, &e) || (e.Type != ErrTypeBadRequestParams && e.Type != ErrTypeBatchTooLarge) {
				t.Fatalf("error %v", err)
			}
			return
		}
		if len(items) < 1 || len(items) > max {
			t.Fatalf("%d items accepted", len(items))
		}
		for i, it := range items {
			switch {
			case it.err != nil:
				if !errors.As(it.err, &e) || e.Type != ErrTypeBadRequestParams || it.req != nil {
					t.Fatalf("item %d: %v", i, it.err)
				}
			case it.req == nil || len(it.req.Msg) == 0 || !ValidKeyID(it.req.KeyID) || !validUUID(it.req.RoomUUID):
				t.Fatalf("item %d accepted: %+v", i, it.req)
			}
		}
		if _, _, err := batchRoom(items); err != nil && (!errors.As(err, &e) || e.Type != ErrTypeBadRequestParams) {
			t.Fatalf("room: %v", err)
		}
	})
}

// SignBatch is the in-memory quorum's batch (HTTP-layer tests only; the
// real ceremony is mpc/ceremony.SignBatch, end to end in cmd/quorumd).
func (n *memNet) SignBatch(ctx context.Context, p BatchSignParams) ([]BatchSignResult, error) {
	info, err := n.keys.Get(ctx, p.Owner, p.KeyID)
	if err != nil {
		return nil, err
	}
	r, err := n.join(p.RoomUUID)
	if err != nil {
		return nil, err
	}
	if err := wait(ctx, r.full); err != nil {
		return nil, err
	}
	n.mu.Lock()
	priv := n.secrets[hex.EncodeToString(info.Pubkey)]
	n.mu.Unlock()
	out := make([]BatchSignResult, len(p.Items))
	for i, it := range p.Items {
		switch {
		case it.Err != nil:
			out[i].Err = it.Err
		case priv == nil || len(it.Msg) != 32:
			out[i].Err = Errorf(ErrTypeExecutorResult, "the in-memory quorum signs 32-byte messages of imported keys only")
		default:
			sig, err := schnorr.Sign(priv, it.Msg)
			if err != nil {
				return nil, err
			}
			out[i].Signature = sig.Serialize()
		}
	}
	return out, nil
}

// TestVertexReplayBatchSign replays Vertex-shaped /bip340/batch-sign
// requests (items with the array derivation_path, extra_data and hash_algo)
// against the real policy layer: 200 with one entry per item in order, an
// item's own error in its place, batch_too_large and the request-level
// errors as documented.
func TestVertexReplayBatchSign(t *testing.T) {
	h, _ := newVertexHarness(t)
	alice := h.must(h.do("GET", "/admin/create-user?name=alice", h.adminKey, "")).str("api_key")
	bob := h.must(h.do("GET", "/admin/create-user?name=bob", h.adminKey, "")).str("api_key")
	privHex, _ := randomKeyHex(t)
	slots, _ := h.importQuorum([]string{alice, bob}, 2, privHex)
	msg := hex.EncodeToString(bytes.Repeat([]byte{0x5a}, 32))
	body := func(room string, s slot, items ...string) string {
		var reqs []string
		for _, extra := range items {
			reqs = append(reqs, fmt.Sprintf(`{"room_uuid":%q,"key_id":%q,"msg":%q%s}`, room, s.keyID, msg, extra))
		}
		return `{"sign_requests":[` + strings.Join(reqs, ",") + `]}`
	}
	items := []string{
		`,"derivation_path":[44,60,0,0,0],"extra_data":"7b22746f223a22307831227d","hash_algo":"none"`,
		`,"hash_algo":"sha256"`,
		`,"derivation_path":"m/44/60/0/0/1"`,
	}
	room := h.newRoom(alice, 2)
	var res [2]resp
	var wg sync.WaitGroup
	for j, p := range []struct {
		key string
		s   slot
	}{{alice, slots[0]}, {bob, slots[1]}} {
		wg.Go(func() { res[j] = h.do("POST", "/bip340/batch-sign", p.key, body(room, p.s, items...)) })
	}
	wg.Wait()
	for j, r := range res {
		var got []map[string]string
		if r.status != 200 || json.Unmarshal([]byte(r.raw), &got) != nil || len(got) != 3 {
			t.Fatalf("party %d: %d %s", j, r.status, r.raw)
		}
		if len(got[0]["signature"]) != 128 || len(got[2]["signature"]) != 128 || got[1]["err_type"] != ErrTypeBadRequestParams || got[1]["signature"] != "" {
			t.Errorf("party %d: %s", j, r.raw)
		}
	}
	if logs := h.logs.String(); !strings.Contains(logs, `"batch_item":0`) || !strings.Contains(logs, `"extra_data":"7b22746f223a22307831227d"`) {
		t.Error("batch items not in the audit log with extra_data")
	}
	room = h.newRoom(alice, 2)
	too := make([]string, h.cfg.Limits.MaxBatchSize+1)
	h.replay([]vertexCase{
		{"batch-sign too large", "POST", "/bip340/batch-sign", alice, body(room, slots[0], too...), 400, ErrTypeBatchTooLarge},
		{"batch-sign empty", "POST", "/bip340/batch-sign", alice, `{"sign_requests":[]}`, 400, ErrTypeBadRequestParams},
		{"batch-sign not a list", "POST", "/bip340/batch-sign", alice, `{"sign_requests":{}}`, 400, ErrTypeBadRequestParams},
		{"batch-sign unknown field", "POST", "/bip340/batch-sign", alice, `{"sign_requests":[],"chain":"eth"}`, 400, ErrTypeBadRequestParams},
		{"batch-sign without a key", "POST", "/bip340/batch-sign", "", body(room, slots[0], ""), 401, ErrTypeAccessDenied},
	})
}
