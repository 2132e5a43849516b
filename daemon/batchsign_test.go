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
