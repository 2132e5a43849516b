package daemon

import "slices"

// appendStringMap appends v as encoding/json would encode it when v is a
// small map[string]string of plain printable ASCII (ids, hex), the answers
// of the hot endpoints, without reflection or a sorted key slice on the
// heap; ok is false for anything else, which the caller gives to
// encoding/json.
func appendStringMap(dst []byte, v any) ([]byte, bool) {
	m, ok := v.(map[string]string)
	if !ok || len(m) > 8 {
		return dst, false
	}
	var arr [8]string
	keys := arr[:0]
	for k, val := range m {
		if !plainJSON(k) || !plainJSON(val) {
			return dst, false
		}
		keys = append(keys, k)
	}
	slices.Sort(keys) // encoding/json sorts map keys
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, k...)
		dst = append(dst, `":"`...)
		dst = append(dst, m[k]...)
		dst = append(dst, '"')
	}
	return append(dst, '}'), true
}

// plainJSON reports whether encoding/json writes s between quotes as is:
// printable ASCII other than the quote, the backslash and the characters
// it escapes for HTML.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}
