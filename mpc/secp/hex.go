package secp

// DecodeHex decodes len(dst)*2 hex digits (either case) from src into dst and
// returns 1 if any character is not a hex digit, else 0. Constant time: no
// branch or table lookup depends on the characters, so a secret (a private
// key in a request) can be decoded without leaking it. src must hold at
// least 2*len(dst) bytes.
func DecodeHex(dst, src []byte) (bad uint32) {
	for i := range dst {
		hi, b1 := hexNibble(src[2*i])
		lo, b2 := hexNibble(src[2*i+1])
		dst[i] = hi<<4 | lo
		bad |= b1 | b2
	}
	return bad
}

// hexNibble maps one hex digit to its value, branch-free; bad is 1 for a
// non-hex character.
func hexNibble(c byte) (val byte, bad uint32) {
	d := int32(c) - '0'
	isDigit := (^(d >> 31) & ^((9 - d) >> 31)) & 1
	l := int32(c|0x20) - 'a'
	isLetter := (^(l >> 31) & ^((5 - l) >> 31)) & 1
	v := (d & -isDigit) | ((l + 10) & -isLetter)
	return byte(v), uint32(1 ^ (isDigit | isLetter))
}
