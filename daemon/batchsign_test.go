package daemon

import (
	"errors"
	"strings"
	"testing"
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
