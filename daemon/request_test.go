package daemon

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
)

func TestPrivateKeyField(t *testing.T) {
	cases := []struct {
		name, raw string
		ok        bool
	}{
		{"one", `"` + strings.Repeat("0", 63) + `1"`, true},
		{"n-1", `"` + curveN[:63] + `0"`, true},
		{"upper case", `"` + strings.ToUpper(curveN[:63]) + `0"`, true},
		{"zero", `"` + strings.Repeat("0", 64) + `"`, false},
		{"n", `"` + curveN + `"`, false},
		{"n+1", `"` + curveN[:63] + `2"`, false},
		{"2^256-1", `"` + strings.Repeat("f", 64) + `"`, false},
		{"non-hex", `"` + strings.Repeat("0", 63) + `g"`, false},
		{"space", `"` + strings.Repeat("0", 63) + ` "`, false},
		{"short", `"` + strings.Repeat("1", 62) + `"`, false},
		{"long", `"` + strings.Repeat("1", 66) + `"`, false},
		{"number", strings.Repeat("1", 66), false},
		{"escape", `"\u0031` + strings.Repeat("1", 58) + `"`, false},
		{"unterminated", `"` + strings.Repeat("1", 65), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var k btcec.ModNScalar
			var present bool
			err := privateKeyField(&k, &present).decode([]byte(c.raw))
			if (err == nil) != c.ok || present != c.ok {
				t.Fatalf("err %v present %v", err, present)
			}
			if !c.ok {
				if !k.IsZero() {
					t.Fatal("rejected key left in the scalar")
				}
				var e *Error
				if !errors.As(err, &e) || e.Type != ErrTypeBadRequestParams || e.Msg != privateKeyMsg {
					t.Fatalf("error %v", err)
				}
				return
			}
			want, _ := hex.DecodeString(strings.Trim(c.raw, `"`))
			if got := k.Bytes(); !bytes.Equal(got[:], want) {
				t.Fatalf("parsed %x", got)
			}
		})
	}
}

func TestDecodeObject(t *testing.T) {
	type out struct {
		A    string
		B    int
		L    []string
		hasB bool
	}
	decode := func(body string) (out, error) {
		var o out
		err := decodeObject([]byte(body), []field{
			stringField("a", true, 10, nil, &o.A),
			intField("b", false, &o.B, &o.hasB),
			stringListField("l", false, &o.L),
		})
		return o, err
	}
	cases := []struct {
		body    string
		want    out
		errPart string // "" = success
	}{
		{`{"a":"x"}`, out{A: "x"}, ""},
		{" \n{ \"a\" : \"x\" , \"b\" : -3 }\t", out{A: "x", B: -3, hasB: true}, ""},
		{`{"a":"x","b":null}`, out{A: "x"}, ""},
		{`{"l":["}",",","\"]"],"a":"x"}`, out{A: "x", L: []string{"}", ",", "\"]"}}, ""},
		{`{"\u0061":"x"}`, out{A: "x"}, ""},
		{`{"a":"\u00e9t\u00e9"}`, out{A: "été"}, ""},
		{`{"a":null}`, out{}, `missing field "a"`},
		{`{}`, out{}, `missing field "a"`},
		{`{"a":"x","a":"y"}`, out{}, `duplicate field "a"`},
		{`{"a":"x","b":null,"b":1}`, out{}, `duplicate field "b"`},
		{`{"a":"x","c":{"d":[1,{"e":"}"}]}}`, out{}, `unknown field "c"`},
		{`{"a":"x","b":1.5}`, out{}, `"b" must be an integer`},
		{`{"a":"x","b":1e2}`, out{}, `"b" must be an integer`},
		{`{"a":"x","b":99999999999}`, out{}, `"b" is out of range`},
		{`{"a":"x","b":"1"}`, out{}, `"b" must be an integer`},
		{`{"a":1}`, out{}, `"a" must be a string`},
		{`{"a":"` + strings.Repeat("x", 11) + `"}`, out{}, `longer than 10`},
		{`{"a":"x","l":[1]}`, out{}, `array of strings`},
		{`{"a":"x"} {}`, out{}, "not valid JSON"},
		{`{"a":"x",}`, out{}, "not valid JSON"},
		{`"a"`, out{}, "must be a JSON object"},
		{`null`, out{}, "must be a JSON object"},
		{``, out{}, "empty"},
		{"  ", out{}, "empty"},
		{`{"` + strings.Repeat("k", 33) + `":1}`, out{}, `unknown field "(name not shown)"`},
		{`{"` + strings.Repeat("0", 64) + `":1}`, out{}, `unknown field "(name not shown)"`},
		{`{"extra_field":1}`, out{}, `unknown field "extra_field"`},
	}
	for _, c := range cases {
		t.Run(c.body, func(t *testing.T) {
			got, err := decode(c.body)
			if c.errPart == "" {
				if err != nil || !reflect.DeepEqual(got, c.want) {
					t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Type != ErrTypeBadRequestParams || !strings.Contains(e.Msg, c.errPart) {
				t.Fatalf("err %v, want bad_request_params containing %q", err, c.errPart)
			}
		})
	}
}

func TestParseDerivationPath(t *testing.T) {
	cases := []struct {
		in   string
		want []uint32
		ok   bool
	}{
		{"m", []uint32{}, true},
		{"m/0", []uint32{0}, true},
		{"m/0/1/2147483647", []uint32{0, 1, 2147483647}, true},
		{"m/2147483648", nil, false},
		{"m/0'", nil, false},
		{"m/0h", nil, false},
		{"m/01", nil, false},
		{"m/", nil, false},
		{"m//1", nil, false},
		{"0/1", nil, false},
		{"M/1", nil, false},
		{"m/-1", nil, false},
		{"m/+1", nil, false},
		{"m/1 ", nil, false},
		{"m/99999999999", nil, false},
		{"m" + strings.Repeat("/1", 256), nil, false},
	}
	for _, c := range cases {
		got, err := ParseDerivationPath(c.in)
		if (err == nil) != c.ok || (c.ok && !reflect.DeepEqual(got, c.want)) {
			t.Errorf("%q: got %v %v", c.in, got, err)
		}
	}
	if p, err := ParseDerivationPath("m" + strings.Repeat("/1", 255)); err != nil || len(p) != 255 {
		t.Fatalf("depth 255: %v", err)
	}
}

func TestCheckRelayAddress(t *testing.T) {
	for in, ok := range map[string]bool{
		"relay.example.com:7000": true, "127.0.0.1:1": true, "[::1]:443": true, "relay:65535": true,
		"relay": false, "relay:0": false, "relay:65536": false, ":80": false, "relay:http": false,
		"relay:080": false, "-bad.example:1": false, "a..b:1": false, "a b:1": false, "relay:": false,
		"http://relay:1": false, strings.Repeat("a", 64) + ".b:1": false,
	} {
		if err := checkRelayAddress(in); (err == nil) != ok {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestKeyIDs(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		id := NewKeyID()
		if !ValidKeyID(id) || id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) || seen[id] {
			t.Fatalf("key id %q", id)
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "00000000-0000-4000-8000-00000000000", "00000000-0000-4000-8000-00000000000G", "00000000x0000-4000-8000-000000000000", "00000000-0000-4000-8000-0000000000AA"} {
		if ValidKeyID(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}

// --- fuzzing ----------------------------------------------------------------

// FuzzUnquote checks unquote's copy path against encoding/json on any
// string span (escapes, invalid UTF-8, control characters, non-strings).
func FuzzUnquote(f *testing.F) {
	for _, s := range []string{`"abc"`, `"a\"b"`, `"\u00e9"`, "\"\xff\"", "\"a\tb\"", `""`, `"`, `5`, `"<&>"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := unquote(raw)
		var want string
		werr := json.Unmarshal(raw, &want)
		if (err == nil) != (werr == nil) || got != want {
			t.Fatalf("unquote(%q) = %q, %v; encoding/json: %q, %v", raw, got, err, want, werr)
		}
	})
}

// FuzzDecodeObject checks the span walker against encoding/json: whenever
// decodeObject accepts a body, json.Unmarshal sees the same members.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{`{"a":"x"}`, `{"a":"x","b":[1,{"c":"}"}],"d":null}`, `{"a":"\"}"}`, ` { } `, `{"a":1,"a":2}`, `[{}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got := map[string]string{}
		var fields []field
		for _, name := range []string{"a", "b", "c", "d", "key_id"} {
			fields = append(fields, field{name: name, decode: func(raw []byte) error {
				got[name] = string(raw)
				return nil
			}})
		}
		if decodeObject(body, fields) != nil {
			return
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatalf("accepted %q that encoding/json rejects: %v", body, err)
		}
		for k, v := range want {
			if string(v) == "null" {
				if _, ok := got[k]; ok {
					t.Fatalf("%q: null delivered for %s", body, k)
				}
				continue
			}
			if got[k] != string(v) {
				t.Fatalf("%q: member %s = %q, encoding/json says %q", body, k, got[k], v)
			}
		}
		if len(got) > len(want) {
			t.Fatalf("%q: extra members %v", body, got)
		}
	})
}

// FuzzDecodeImport checks the import decoder's invariants: it never panics,
// fails only with the two request err_types and never echoes the private
// key, and what it accepts satisfies every request rule.
func FuzzDecodeImport(f *testing.F) {
	kg := func(seed byte) string {
		var k btcec.ModNScalar
		k.SetInt(uint32(seed) + 1)
		return hex.EncodeToString(btcec.PrivKeyFromScalar(&k).PubKey().SerializeCompressed())
	}
	priv := strings.Repeat("0", 62) + "2a"
	f.Add([]byte(importBody("00000000-0000-4000-8000-000000000000", "11111111-1111-4111-8111-111111111111", 2, []string{kg(1), kg(2)}, priv)), true)
	f.Add([]byte(importBody("00000000-0000-4000-8000-000000000000", "11111111-1111-4111-8111-111111111111", 1, []string{kg(1)}, "")), false)
	f.Add([]byte(`{"num_parties":2,"threshold":2,"others_keygen_ids":["`+kg(3)+`"],"room_uuid":"00000000-0000-4000-8000-000000000000","key_id":"11111111-1111-4111-8111-111111111111"}`), false)
	f.Add([]byte(`{"threshold":2,"others_keygen_ids":["`+kg(3)+`"],"dealer_id":"`+kg(4)+`","room_uuid":"00000000-0000-4000-8000-000000000000","key_id":"11111111-1111-4111-8111-111111111111"}`), false)
	f.Fuzz(func(t *testing.T, body []byte, importer bool) {
		const maxN = 8
		orig := string(body)
		r, err := decodeImport(body, importer, maxN)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (e.Type != ErrTypeBadRequestParams && e.Type != ErrTypeBadNAndTParams) {
				t.Fatalf("error %v", err)
			}
			var m map[string]any
			if json.Unmarshal([]byte(orig), &m) == nil {
				if pk, ok := m["private_key"].(string); ok && len(pk) >= 8 && strings.Contains(e.Msg, pk) {
					t.Fatalf("private key echoed: %s", e.Msg)
				}
			}
			return
		}
		n := len(r.Others) + 1
		if n < 2 || n > maxN || r.Threshold < 1 || r.Threshold > n || !ValidKeyID(r.KeyID) || !validUUID(r.RoomUUID) {
			t.Fatalf("accepted n=%d t=%d", n, r.Threshold)
		}
		for i, o := range r.Others {
			if _, err := btcec.ParsePubKey(o); err != nil || len(o) != 33 {
				t.Fatalf("accepted keygen id %x", o)
			}
			for _, p := range r.Others[:i] {
				if bytes.Equal(o, p) {
					t.Fatal("accepted duplicate keygen ids")
				}
			}
		}
		if r.Dealer != nil && (importer || len(r.Dealer) != 33 || slices.ContainsFunc(r.Others, func(o []byte) bool { return bytes.Equal(o, r.Dealer) })) {
			t.Fatalf("accepted dealer_id %x (importer %v)", r.Dealer, importer)
		}
		// An importer has exactly one of a decoded key and a ciphertext.
		if importer == (r.PrivateKey.IsZero() == (r.Encrypted == nil)) || (!importer && r.Encrypted != nil) {
			t.Fatalf("importer=%v with zero key=%v, encrypted=%v", importer, r.PrivateKey.IsZero(), r.Encrypted != nil)
		}
		r.PrivateKey.Zero()
	})
}

// TestDecodeEncryptedPrivateKey: key-importer takes exactly one of
// private_key and encrypted_private_key, the latter a well-formed object.
func TestDecodeEncryptedPrivateKey(t *testing.T) {
	var k btcec.ModNScalar
	k.SetInt(7)
	kg := hex.EncodeToString(btcec.PrivKeyFromScalar(&k).PubKey().SerializeCompressed())
	base := `{"room_uuid":"00000000-0000-4000-8000-000000000000","key_id":"11111111-1111-4111-8111-111111111111","threshold":1,"others_keygen_ids":["` + kg + `"]`
	enc := `"encrypted_private_key":{"key_id_label":"qd-import-1","ciphertext":"AAEC"}`
	priv := `"private_key":"` + strings.Repeat("0", 62) + `2a"`
	r, err := decodeImport([]byte(base+","+enc+"}"), true, 8)
	if err != nil || r.Encrypted == nil || r.Encrypted.Label != "qd-import-1" || !bytes.Equal(r.Encrypted.Ciphertext, []byte{0, 1, 2}) || !r.PrivateKey.IsZero() {
		t.Fatalf("encrypted: %v %+v", err, r)
	}
	for name, body := range map[string]string{
		"both":          base + "," + enc + "," + priv + "}",
		"neither":       base + "}",
		"not an object": base + `,"encrypted_private_key":"AAEC"}`,
		"no label":      base + `,"encrypted_private_key":{"ciphertext":"AAEC"}}`,
		"bad base64":    base + `,"encrypted_private_key":{"key_id_label":"x","ciphertext":"%%%"}}`,
		"unknown field": base + `,"encrypted_private_key":{"key_id_label":"x","ciphertext":"AAEC","kem":"x"}}`,
	} {
		if _, err := decodeImport([]byte(body), true, 8); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := decodeImport([]byte(base+","+enc+"}"), false, 8); err == nil {
		t.Error("a recipient accepted encrypted_private_key")
	}
}

// TestDecodeDealerID: the recipient endpoint takes an optional dealer_id
// (an external dealer, not one of the others); key-importer does not.
func TestDecodeDealerID(t *testing.T) {
	kg := func(i uint32) string {
		var k btcec.ModNScalar
		k.SetInt(i)
		return hex.EncodeToString(btcec.PrivKeyFromScalar(&k).PubKey().SerializeCompressed())
	}
	base := `{"room_uuid":"00000000-0000-4000-8000-000000000000","key_id":"11111111-1111-4111-8111-111111111111","threshold":2,"others_keygen_ids":["` + kg(7) + `"]`
	r, err := decodeImport([]byte(base+`,"dealer_id":"`+kg(9)+`"}`), false, 8)
	if err != nil || hex.EncodeToString(r.Dealer) != kg(9) {
		t.Fatalf("dealer_id: %v %+v", err, r)
	}
	if r, err := decodeImport([]byte(base+"}"), false, 8); err != nil || r.Dealer != nil {
		t.Fatalf("without dealer_id: %v %+v", err, r)
	}
	for name, body := range map[string]string{
		"one of the others": base + `,"dealer_id":"` + kg(7) + `"}`,
		"not a point":       base + `,"dealer_id":"02` + strings.Repeat("ff", 32) + `"}`,
		"short":             base + `,"dealer_id":"` + kg(9)[:64] + `"}`,
		"not a string":      base + `,"dealer_id":7}`,
	} {
		_, err := decodeImport([]byte(body), false, 8)
		var e *Error
		if !errors.As(err, &e) || e.Type != ErrTypeBadRequestParams {
			t.Errorf("%s: %v, want %s", name, err, ErrTypeBadRequestParams)
		}
	}
	if _, err := decodeImport([]byte(base+`,"private_key":"`+strings.Repeat("0", 62)+`2a","dealer_id":"`+kg(9)+`"}`), true, 8); err == nil {
		t.Error("key-importer accepted dealer_id")
	}
}

// FuzzDecodeSign checks the sign and derive decoders never panic, fail only
// with bad_request_params, and accept only well-formed values.
func FuzzDecodeSign(f *testing.F) {
	f.Add([]byte(`{"room_uuid":"00000000-0000-4000-8000-000000000000","key_id":"11111111-1111-4111-8111-111111111111","msg":"00ff","derivation_path":"m/0/1","tweak":"` + strings.Repeat("0", 64) + `"}`))
	f.Add([]byte(`{"key_id":"11111111-1111-4111-8111-111111111111","derivation_path":"m/1'"}`))
	f.Add([]byte(`{"room_uuid":"00000000-0000-4000-8000-000000000000","key_id":"11111111-1111-4111-8111-111111111111","msg":"00ff","derivation_path":[44, 60,0,0 ,0],"extra_data":"beef","hash_algo":"none"}`))
	f.Add([]byte(`{"key_id":"11111111-1111-4111-8111-111111111111","derivation_path":[2147483648]}`))
	f.Add([]byte(`{"key_id":"11111111-1111-4111-8111-111111111111","derivation_path":["1",1e2,-0]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(err error) {
			var e *Error
			if err != nil && (!errors.As(err, &e) || e.Type != ErrTypeBadRequestParams) {
				t.Fatalf("error %v", err)
			}
		}
		checkTweaks := func(tw Tweaks) {
			for _, i := range tw.Path {
				if i >= 1<<31 {
					t.Fatalf("hardened index %d accepted", i)
				}
			}
			if tw.Tweak != nil {
				var k btcec.ModNScalar
				if k.SetBytes(tw.Tweak) != 0 {
					t.Fatal("tweak >= n accepted")
				}
			}
		}
		s, err := decodeSign(bytes.Clone(body))
		check(err)
		if err == nil {
			if len(s.Msg) == 0 || !ValidKeyID(s.KeyID) || !validUUID(s.RoomUUID) || (s.HashAlgo != "" && s.HashAlgo != "none") || len(s.ExtraData) > maxExtraData {
				t.Fatalf("accepted %+v", s)
			}
			checkTweaks(s.Tweaks)
			// Either form of derivation_path means the same path.
			var m map[string]json.RawMessage
			if json.Unmarshal(body, &m) == nil && len(m["derivation_path"]) > 0 && m["derivation_path"][0] == '[' {
				var want []uint32
				if json.Unmarshal(m["derivation_path"], &want) != nil || !slices.Equal(want, s.Tweaks.Path) {
					t.Fatalf("array path %s decoded as %v", m["derivation_path"], s.Tweaks.Path)
				}
				str := "m"
				for _, i := range want {
					str += fmt.Sprintf("/%d", i)
				}
				if p, err := ParseDerivationPath(str); err != nil || !slices.Equal(p, want) {
					t.Fatalf("array path %v has no string form: %v", want, err)
				}
			}
		}
		d, err := decodeDerive(bytes.Clone(body))
		check(err)
		if err == nil {
			checkTweaks(d.Tweaks)
		}
	})
}

// FuzzParseDerivationPath: an accepted path prints back to itself.
func FuzzParseDerivationPath(f *testing.F) {
	for _, s := range []string{"m", "m/0/1", "m/2147483647", "m/0'", "m/01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseDerivationPath(s)
		if err != nil {
			return
		}
		var b strings.Builder
		b.WriteString("m")
		for _, i := range p {
			if i >= 1<<31 {
				t.Fatalf("%q: hardened index", s)
			}
			fmt.Fprintf(&b, "/%d", i)
		}
		if b.String() != s {
			t.Fatalf("%q parsed as %s", s, b.String())
		}
	})
}

// FuzzDecodeBatchRooms: the batch-room decoder fails only with the request
// err_types (batch_too_large included) and accepts only bounded sizes.
func FuzzDecodeBatchRooms(f *testing.F) {
	for _, s := range []string{`{"room_sizes":[2,3]}`, `{"room_size":2,"count":3}`, `{"room_size":2,"count":65}`, `{"room_sizes":[]}`, `{"room_sizes":[2],"count":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		sizes, err := decodeBatchRooms(body, 8)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (e.Type != ErrTypeBadRequestParams && e.Type != ErrTypeBadNAndTParams && e.Type != ErrTypeBatchTooLarge) {
				t.Fatalf("error %v", err)
			}
			return
		}
		if len(sizes) == 0 || len(sizes) > maxBatchRooms {
			t.Fatalf("accepted %d rooms", len(sizes))
		}
		for _, n := range sizes {
			if n < 1 || n > 8 {
				t.Fatalf("accepted size %d", n)
			}
		}
	})
}

func TestDerivationPathForms(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want []uint32
		ok   bool
	}{
		{`[44,60,0,0,0]`, []uint32{44, 60, 0, 0, 0}, true},
		{`[ 44 , 60 ]`, []uint32{44, 60}, true},
		{`[]`, []uint32{}, true},
		{`"m/44/60"`, []uint32{44, 60}, true},
		{`"m"`, []uint32{}, true},
		{`[2147483647]`, []uint32{1<<31 - 1}, true},
		{`[2147483648]`, nil, false},
		{`[4294967296]`, nil, false},
		{`[-1]`, nil, false},
		{`[1.0]`, nil, false},
		{`[1e2]`, nil, false},
		{`[01]`, nil, false},
		{`["1"]`, nil, false},
		{`[[1]]`, nil, false},
		{`{"a":1}`, nil, false},
		{`7`, nil, false},
		{`[` + strings.Repeat("0,", 255) + `0]`, nil, false},
	} {
		var got []uint32
		err := derivationPathField(&got).decode([]byte(tc.raw))
		if (err == nil) != tc.ok || (tc.ok && !slices.Equal(got, tc.want)) || (tc.ok && got == nil) {
			t.Errorf("%s: %v %v", tc.raw, got, err)
		}
	}
}

func TestUserNames(t *testing.T) {
	for _, ok := range []string{"ETH Custody User", "a", "Zürich ✓", strings.Repeat("é", 64), "a/b", "..", "x@y.z"} {
		if checkUserName(ok) != nil {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", strings.Repeat("x", 129), "a\nb", "a\tb", "\x00", "\xff\xfe", "zero\u200bwidth", "bidi\u202e"} {
		if checkUserName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzAppendStringMap: the string-map fast path of writeJSON writes the
// bytes encoding/json writes, or declines.
func FuzzAppendStringMap(f *testing.F) {
	f.Add("signature", "ab12", "key_id", "00000000-0000-4000-8000-000000000000")
	f.Add("a", "<&>", "b", "\x00\u2028")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		m := map[string]string{k1: v1, k2: v2}
		got, ok := appendStringMap(nil, m)
		if !ok {
			return
		}
		want, err := json.Marshal(m)
		if err != nil || string(got) != string(want) {
			t.Fatalf("%q: fast path %s, encoding/json %s (%v)", m, got, want, err)
		}
	})
}
