package store

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

func slotRecord(id string, ident byte) Record {
	return Record{KeyID: id, Owner: "alice", Scheme: "bip340", State: StateCreated,
		KeygenID: []byte{2, 1, 2, 3}, SealedIdentityKey: []byte{ident, 9, 9}, CreatedAt: time.Unix(1700000000, 0).UTC()}
}

func mustEncode(t *testing.T, r Record) []byte {
	t.Helper()
	b, err := encode(&r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecodeCacheFresh: a cached decode is served only for the very bytes
// it came from, and a caller that scribbles on its copy changes nothing
// another read sees.
func TestDecodeCacheFresh(t *testing.T) {
	c := &decodeCache{entries: make(map[string]*decoded)}
	a, b := slotRecord("k1", 1), slotRecord("k1", 2)
	rawA, rawB := mustEncode(t, a), mustEncode(t, b)
	got, err := c.decode([]byte("k1"), rawA)
	if err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("first decode: %v %+v", err, got)
	}
	got.SealedIdentityKey[0], got.KeygenID[0] = 0xff, 0xff
	again, err := c.decode([]byte("k1"), rawA)
	if err != nil || !reflect.DeepEqual(again, a) {
		t.Fatalf("a caller's change reached the cache: %v %+v", err, again)
	}
	if other, err := c.decode([]byte("k1"), rawB); err != nil || !reflect.DeepEqual(other, b) {
		t.Fatalf("new bytes under the same key served stale: %v %+v", err, other)
	}
	if _, err := c.decode([]byte("k2"), rawA); err == nil {
		t.Fatal("bytes cached under k1 accepted under k2 (the stored key id must match)")
	}
	if _, err := c.decode([]byte("k1"), rawA[:len(rawA)-1]); err == nil {
		t.Fatal("truncated record decoded")
	}
}

// TestRecordCloneIsDeep: every slice field of Record, present and future,
// is copied by clone (a new field that is not would fail here).
func TestRecordCloneIsDeep(t *testing.T) {
	var r Record
	v := reflect.ValueOf(&r).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Type() {
		case reflect.TypeOf([]byte(nil)):
			f.Set(reflect.ValueOf([]byte{1, 2}))
		case reflect.TypeOf([][]byte(nil)):
			f.Set(reflect.ValueOf([][]byte{{1, 2}}))
		default:
			if f.Kind() == reflect.Slice || f.Kind() == reflect.Map || f.Kind() == reflect.Pointer {
				t.Fatalf("Record.%s is a %s clone does not know", v.Type().Field(i).Name, f.Type())
			}
		}
	}
	c := r.clone()
	cv := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		switch x := cv.Field(i).Interface().(type) {
		case []byte:
			x[0] = 0xee
		case [][]byte:
			x[0][0] = 0xee
		default:
			continue
		}
		if !reflect.DeepEqual(v.Field(i).Interface(), reflect.ValueOf(r.clone()).Field(i).Interface()) || reflect.DeepEqual(v.Field(i).Interface(), cv.Field(i).Interface()) {
			t.Fatalf("Record.%s shares memory with its clone", name)
		}
	}
}

// TestDecodeCacheBounded: a scan over many records keeps the cache within
// its entry bound.
func TestDecodeCacheBounded(t *testing.T) {
	c := &decodeCache{entries: make(map[string]*decoded)}
	for i := range decodeCacheEntries + 100 {
		id := fmt.Sprintf("k%d", i)
		if _, err := c.decode([]byte(id), mustEncode(t, slotRecord(id, 1))); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.entries); n > decodeCacheEntries {
		t.Fatalf("%d entries cached, bound %d", n, decodeCacheEntries)
	}
	total := 0
	for _, e := range c.entries {
		total += len(e.raw)
	}
	if total != c.bytes {
		t.Fatalf("byte count %d, entries hold %d", c.bytes, total)
	}
}
