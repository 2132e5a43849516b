package daemon

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/internal/uuid"
	"github.com/quorumd/quorumd/mpc/secp"
	"github.com/quorumd/quorumd/policy"
)

// Request decoding is hand-rolled on top of encoding/json for one reason:
// private_key must be parsed straight out of the request buffer into a
// ModNScalar, with no copy in a Go string or a decoder buffer that could not
// be zeroed. json.Valid vets the syntax first; the walker below then only
// has to split a well-formed top-level object into (key, raw value) spans,
// which lets it reject unknown and duplicate fields too. Non-secret values
// are decoded from their spans with encoding/json.

// field describes one member of a request object.
type field struct {
	name     string
	required bool
	// decode receives the raw JSON value (never the literal null, which
	// counts as absent) and returns a client-safe error.
	decode func(raw []byte) error
}

// decodeObject decodes body, a JSON object, into fields. Errors are
// bad_request_params and never contain a field's value. Constant-time
// property: the syntax check and the span walk branch on JSON structure
// only; a secret string's characters all take the same path through both.
func decodeObject(body []byte, fields []field) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("the request body is empty; a JSON object is expected")
	}
	if !json.Valid(body) {
		return badRequest("the request body is not valid JSON")
	}
	i := skipWS(body, 0)
	if body[i] != '{' {
		return badRequest("the request body must be a JSON object")
	}
	seen := make([]bool, len(fields)) // the key occurred
	set := make([]bool, len(fields))  // the key occurred with a non-null value
	i = skipWS(body, i+1)
	if body[i] == '}' {
		return checkRequired(fields, set)
	}
	for {
		// json.Valid guarantees a string key here.
		kEnd := skipString(body, i)
		name, err := unquote(body[i:kEnd])
		if err != nil {
			return badRequest("the request body is not valid JSON")
		}
		i = skipWS(body, kEnd)
		i = skipWS(body, i+1) // ':'
		vEnd := skipValue(body, i)
		raw := body[i:vEnd]
		idx := -1
		for j := range fields {
			if fields[j].name == name {
				idx = j
				break
			}
		}
		if idx < 0 {
			return badRequest("unknown field %q", echo(name))
		}
		if seen[idx] {
			return badRequest("duplicate field %q", echo(name))
		}
		seen[idx] = true
		if !bytes.Equal(raw, []byte("null")) { // null counts as absent
			if err := fields[idx].decode(raw); err != nil {
				return err
			}
			set[idx] = true
		}
		i = skipWS(body, vEnd)
		if body[i] == '}' {
			break
		}
		i = skipWS(body, i+1) // ','
	}
	return checkRequired(fields, set)
}

func checkRequired(fields []field, seen []bool) error {
	for j, f := range fields {
		if f.required && !seen[j] {
			return badRequest("missing field %q", f.name)
		}
	}
	return nil
}

// echo returns a client-chosen member or parameter name for an error
// message only when it looks like one of ours (lowercase letters and
// underscores, at most 32), so a confused client's secret is never sent
// back or logged.
func echo(s string) string {
	if len(s) == 0 || len(s) > 32 || strings.Trim(s, "abcdefghijklmnopqrstuvwxyz_") != "" {
		return "(name not shown)"
	}
	return s
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the (valid) JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		switch c := b[i]; c {
		case '"':
			i = skipString(b, i)
			if depth == 0 {
				return i
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
		i++
	}
	return i
}

// --- field decoders -------------------------------------------------------

// unquote decodes a JSON string span exactly as encoding/json does; the
// common span (no escapes, valid UTF-8) is copied without the reflective
// decoder, which cost a sign call a fifth of its HTTP-layer time.
func unquote(raw []byte) (string, error) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		in := raw[1 : len(raw)-1]
		plain := utf8.Valid(in)
		for _, c := range in {
			if c < 0x20 || c == '\\' || c == '"' {
				plain = false
				break
			}
		}
		if plain {
			return string(in), nil
		}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", err
	}
	return s, nil
}

func jsonString(name string, raw []byte, maxLen int) (string, error) {
	s, err := unquote(raw)
	if raw[0] != '"' || err != nil {
		return "", badRequest("field %q must be a string", name)
	}
	if len(s) > maxLen {
		return "", badRequest("field %q is longer than %d characters", name, maxLen)
	}
	return s, nil
}

func stringField(name string, required bool, maxLen int, check func(string) error, dst *string) field {
	return field{name: name, required: required, decode: func(raw []byte) error {
		s, err := jsonString(name, raw, maxLen)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(s); err != nil {
				return err
			}
		}
		*dst = s
		return nil
	}}
}

// secretStringField decodes a required string holding a secret as a view
// of the body (aliasString), so that wiping the body wipes it; it accepts
// no escapes, which secrets here (API keys) never need.
func secretStringField(name string, maxLen int, check func(string) error, dst *string) field {
	return field{name: name, required: true, decode: func(raw []byte) error {
		if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' || bytes.IndexByte(raw, '\\') >= 0 {
			return badRequest("field %q must be a string without escapes", name)
		}
		if len(raw)-2 > maxLen {
			return badRequest("field %q is longer than %d characters", name, maxLen)
		}
		s := aliasString(raw[1 : len(raw)-1])
		if err := check(s); err != nil {
			return err
		}
		*dst = s
		return nil
	}}
}

func intField(name string, required bool, dst *int, present *bool) field {
	return field{name: name, required: required, decode: func(raw []byte) error {
		var v int64
		if raw[0] == '"' || json.Unmarshal(raw, &v) != nil {
			return badRequest("field %q must be an integer", name)
		}
		if v < -1<<31 || v > 1<<31-1 {
			return badRequest("field %q is out of range", name)
		}
		*dst = int(v)
		if present != nil {
			*present = true
		}
		return nil
	}}
}

func stringListField(name string, required bool, dst *[]string) field {
	return field{name: name, required: required, decode: func(raw []byte) error {
		var v []string
		if raw[0] != '[' || json.Unmarshal(raw, &v) != nil {
			return badRequest("field %q must be an array of strings", name)
		}
		*dst = v
		return nil
	}}
}

// privateKeyMsg is the one message for every rejected private_key, so the
// answer says nothing about the value.
const privateKeyMsg = `field "private_key" must be a 64-character hex string encoding an integer in [1, n-1]`

// privateKeyField parses private_key from its raw JSON span directly into
// dst. Constant time in the key: the hex decoding is branch-free, the range
// check uses ModNScalar.SetBytes' constant-time overflow flag and
// IsZeroBit, and the only branch is on the combined validity bit. The
// intermediate 32-byte buffer is zeroed; the caller zeroes body and dst.
func privateKeyField(dst *btcec.ModNScalar, present *bool) field {
	return field{name: "private_key", decode: func(raw []byte) error {
		if len(raw) != 66 || raw[0] != '"' || raw[65] != '"' {
			return badRequest(privateKeyMsg)
		}
		var buf [32]byte
		bad := secp.DecodeHex(buf[:], raw[1:65])
		bad |= dst.SetBytes(&buf)
		clear(buf[:])
		bad |= dst.IsZeroBit()
		if bad != 0 {
			dst.Zero()
			return badRequest(privateKeyMsg)
		}
		*present = true
		return nil
	}}
}

// --- value validators -----------------------------------------------------

// ValidKeyID reports whether s is a key_id: a canonical lowercase UUID
// (8-4-4-4-12 hex digits), as NewKeyID makes.
func ValidKeyID(s string) bool { return validUUID(s) }

// NewKeyID returns a random (version 4) UUID in canonical lowercase form.
func NewKeyID() string { return uuid.New() }

// validUUID is uuid.Valid: room ids and key ids share the form.
func validUUID(s string) bool { return uuid.Valid(s) }

func checkKeyID(s string) error {
	if !ValidKeyID(s) {
		return badRequest(`field "key_id" must be a lowercase UUID`)
	}
	return nil
}

func checkRoomUUID(s string) error {
	if !validUUID(s) {
		return badRequest(`field "room_uuid" must be a lowercase UUID`)
	}
	return nil
}

// checkRelayAddress checks host:port syntax only; whether the caller may use
// the address is the Authorizer's decision.
func checkRelayAddress(s string) error {
	bad := badRequest(`field "relay_address" must be host:port`)
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return bad
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 || strconv.Itoa(p) != port {
		return bad
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	if len(host) > 253 {
		return bad
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return bad
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return bad
			}
		}
	}
	return nil
}

// maxPathDepth is BIP32's depth limit (one byte).
const maxPathDepth = 255

// ParseDerivationPath parses a BIP32 unhardened path "m/0/1" (or "m" for no
// derivation). Hardened steps cannot be derived from a threshold public key
// and are rejected.
func ParseDerivationPath(s string) ([]uint32, error) {
	if s == "m" {
		return []uint32{}, nil
	}
	if !strings.HasPrefix(s, "m/") {
		return nil, badRequest(`field "derivation_path" must look like "m/0/1"`)
	}
	parts := strings.Split(s[2:], "/")
	if len(parts) > maxPathDepth {
		return nil, badRequest(`field "derivation_path" is deeper than %d`, maxPathDepth)
	}
	out := make([]uint32, 0, len(parts))
	for _, p := range parts {
		if strings.ContainsAny(p, "'hH") {
			return nil, badRequest(`field "derivation_path": hardened steps cannot be derived from a threshold key`)
		}
		if p == "" || len(p) > 10 || (len(p) > 1 && p[0] == '0') || strings.Trim(p, "0123456789") != "" {
			return nil, badRequest(`field "derivation_path" must look like "m/0/1"`)
		}
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil || v >= 1<<31 {
			return nil, badRequest(`field "derivation_path": index %s is not below 2^31 (unhardened)`, p)
		}
		out = append(out, uint32(v))
	}
	return out, nil
}

// derivationPathField accepts derivation_path in both of DESIGN §2's forms:
// Vertex's JSON array of uint32 indices ([44, 0, 1], unhardened only) and
// the string "m/0/1". Either form sets *dst (an empty array or "m" to a
// non-nil empty path: no derivation).
func derivationPathField(dst *[]uint32) field {
	return field{name: "derivation_path", decode: func(raw []byte) error {
		if raw[0] == '"' {
			s, err := jsonString("derivation_path", raw, 4096)
			if err != nil {
				return err
			}
			p, err := ParseDerivationPath(s)
			if err != nil {
				return err
			}
			*dst = p
			return nil
		}
		return decodePathArray(raw, dst)
	}}
}

// decodePathArray decodes Vertex's array form. Numbers must be plain
// non-negative integers: 1e3, -0 or 1.0 are refused rather than guessed.
func decodePathArray(raw []byte, dst *[]uint32) error {
	bad := badRequest(`field "derivation_path" must be "m/0/1" or an array of unhardened indices like [0, 1]`)
	var nums []json.RawMessage
	if raw[0] != '[' || json.Unmarshal(raw, &nums) != nil {
		return bad
	}
	if len(nums) > maxPathDepth {
		return badRequest(`field "derivation_path" is deeper than %d`, maxPathDepth)
	}
	out := make([]uint32, 0, len(nums))
	for _, n := range nums {
		s := string(n)
		if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') || strings.Trim(s, "0123456789") != "" {
			return bad
		}
		v, err := strconv.ParseUint(s, 10, 32)
		if err != nil || v >= 1<<31 {
			return badRequest(`field "derivation_path": index %s is not below 2^31 (unhardened)`, s)
		}
		out = append(out, uint32(v))
	}
	*dst = out
	return nil
}

// parseTweak decodes a 32-byte hex tweak, which must be a scalar below n
// (BIP445 ApplyTweak). Tweaks are public: variable time is fine.
func parseTweak(s string) (*[32]byte, error) {
	var t [32]byte
	if len(s) != 64 {
		return nil, badRequest(`field "tweak" must be 64 hex characters`)
	}
	if _, err := hex.Decode(t[:], []byte(s)); err != nil {
		return nil, badRequest(`field "tweak" must be 64 hex characters`)
	}
	var k btcec.ModNScalar
	if k.SetBytes(&t) != 0 {
		return nil, badRequest(`field "tweak" must be below the curve order`)
	}
	return &t, nil
}

// parseKeygenID decodes a 33-byte compressed secp256k1 point.
func parseKeygenID(s string) ([]byte, error) {
	if len(s) != 66 {
		return nil, fmt.Errorf("not 66 hex characters")
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not hex")
	}
	if b[0] != 2 && b[0] != 3 {
		return nil, fmt.Errorf("not a compressed point")
	}
	if _, err := btcec.ParsePubKey(b); err != nil {
		return nil, fmt.Errorf("not a point on secp256k1")
	}
	return b, nil
}

func checkUserID(s string) error {
	if !validToken(s, 128, "._:-") {
		return badRequest(`"user_id" must be 1-128 characters of [A-Za-z0-9._:-]`)
	}
	return nil
}

// checkUserName accepts Vertex's user names (policy.ValidUserName):
// printable UTF-8, spaces included, 1 to 128 bytes.
func checkUserName(s string) error {
	if !policy.ValidUserName(s) {
		return badRequest(`"name" must be 1-%d bytes of printable UTF-8`, policy.MaxUserName)
	}
	return nil
}

// checkAPIKeyShape rejects what cannot be an API key without echoing it.
func checkAPIKeyShape(s string) error {
	if len(s) == 0 || len(s) > 512 {
		return badRequest(`field "api_key" is not a well-formed API key`)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return badRequest(`field "api_key" is not a well-formed API key`)
		}
	}
	return nil
}

func validToken(s string, maxLen int, extra string) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

// --- requests ---------------------------------------------------------------

// importRequest is a validated body of either import endpoint.
type importRequest struct {
	RoomUUID     string
	KeyID        string
	Threshold    int
	Others       [][]byte
	RelayAddress string
	PrivateKey   *btcec.ModNScalar // importer only, in the caller's (locked) memory; zeroed by the handler
	hasKey       bool
	Encrypted    *encryptedKey // importer only: encrypted_private_key, decrypted into PrivateKey later
	Dealer       []byte        // recipient only: dealer_id, an external dealer's identity (nil: the importer is among the others)
}

// importAux holds the import fields validated after decoding.
type importAux struct {
	others        []string
	numParties    int
	hasNumParties bool
	hasThreshold  bool
	dealer        string
}

// importFields lists the members of an import body; importer adds
// private_key.
func importFields(r *importRequest, a *importAux, importer bool) []field {
	fields := []field{
		stringField("room_uuid", true, 36, checkRoomUUID, &r.RoomUUID),
		stringField("key_id", true, 36, checkKeyID, &r.KeyID),
		intField("threshold", true, &r.Threshold, &a.hasThreshold),
		intField("num_parties", false, &a.numParties, &a.hasNumParties),
		stringListField("others_keygen_ids", true, &a.others),
		stringField("relay_address", false, 261, checkRelayAddress, &r.RelayAddress),
	}
	if importer {
		fields = append(fields, privateKeyField(r.PrivateKey, &r.hasKey), encryptedKeyField(&r.Encrypted))
	} else {
		fields = append(fields, stringField("dealer_id", false, 66, nil, &a.dealer))
	}
	return fields
}

// decodeImport decodes and validates an import body. importer selects the
// key-importer shape (with private_key). On error the private key, if it
// was parsed, is already zeroed.
func decodeImport(body []byte, importer bool, maxN int) (*importRequest, error) {
	return decodeImportInto(body, importer, maxN, new(btcec.ModNScalar))
}

// decodeImportInto is decodeImport with private_key decoded straight into
// key (a locked slot in the daemon), which req.PrivateKey then points to.
func decodeImportInto(body []byte, importer bool, maxN int, key *btcec.ModNScalar) (*importRequest, error) {
	r := &importRequest{PrivateKey: key}
	var a importAux
	if err := decodeObject(body, importFields(r, &a, importer)); err != nil {
		r.PrivateKey.Zero()
		return nil, err
	}
	if importer && r.hasKey == (r.Encrypted != nil) {
		r.PrivateKey.Zero()
		return nil, badRequest(`exactly one of "private_key" and "encrypted_private_key" is required`)
	}
	if err := r.validate(a.others, a.hasNumParties, a.numParties, maxN); err != nil {
		r.PrivateKey.Zero()
		return nil, err
	}
	if a.dealer != "" {
		if err := r.validateDealer(a.dealer); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// validateDealer parses dealer_id: a valid key, not one of the others (an
// external dealer holds no share).
func (r *importRequest) validateDealer(s string) error {
	b, err := parseKeygenID(s)
	if err != nil {
		return badRequest("dealer_id: %v", err)
	}
	for i, o := range r.Others {
		if bytes.Equal(o, b) {
			return badRequest("dealer_id is others_keygen_ids[%d]: an external dealer is not a party", i)
		}
	}
	r.Dealer = b
	return nil
}

func (r *importRequest) validate(others []string, hasNumParties bool, numParties, maxN int) error {
	n := len(others) + 1
	switch {
	case n < 2:
		return badNT("others_keygen_ids must list at least one other party (N = %d)", n)
	case n > maxN:
		return badNT("N = %d parties exceeds this daemon's maximum of %d", n, maxN)
	case hasNumParties && numParties != n:
		return badNT("num_parties = %d but others_keygen_ids gives N = %d", numParties, n)
	case r.Threshold < 1 || r.Threshold > n:
		return badNT("threshold must satisfy 1 <= t <= N = %d, got %d", n, r.Threshold)
	}
	r.Others = make([][]byte, 0, len(others))
	for i, s := range others {
		b, err := parseKeygenID(s)
		if err != nil {
			return badRequest("others_keygen_ids[%d]: %v", i, err)
		}
		for j, prev := range r.Others {
			if bytes.Equal(prev, b) {
				return badRequest("others_keygen_ids[%d] duplicates others_keygen_ids[%d]", i, j)
			}
		}
		r.Others = append(r.Others, b)
	}
	return nil
}

// signRequest is a validated /bip340/sign body. ExtraData is opaque
// client data (Vertex's extra_data) handed to policy rule servers and the
// audit log; HashAlgo is "none" or empty: msg is signed as given.
type signRequest struct {
	RoomUUID     string
	KeyID        string
	Msg          []byte
	Tweaks       Tweaks
	RelayAddress string
	ExtraData    []byte
	HashAlgo     string
}

// maxExtraData bounds extra_data (bytes), well inside the body limit.
const maxExtraData = 8 << 10

// textAux holds string members decoded further after the walk.
type textAux struct{ msg, tweak, extra string }

func signFields(r *signRequest, a *textAux) []field {
	return []field{
		stringField("room_uuid", true, 36, checkRoomUUID, &r.RoomUUID),
		stringField("key_id", true, 36, checkKeyID, &r.KeyID),
		stringField("msg", true, 1<<20, nil, &a.msg),
		derivationPathField(&r.Tweaks.Path),
		stringField("tweak", false, 64, nil, &a.tweak),
		stringField("relay_address", false, 261, checkRelayAddress, &r.RelayAddress),
		stringField("extra_data", false, 2*maxExtraData, nil, &a.extra),
		stringField("hash_algo", false, 32, checkHashAlgo, &r.HashAlgo),
	}
}

// checkHashAlgo accepts Vertex's "none" only: quorumd signs msg as given
// (BIP340 hashes internally), and silently hashing would sign something
// other than what a policy or rule server was shown.
func checkHashAlgo(s string) error {
	if s != "none" {
		return badRequest(`field "hash_algo" must be "none": msg is signed as given (BIP340 hashes it itself)`)
	}
	return nil
}

func decodeSign(body []byte) (*signRequest, error) {
	r := &signRequest{}
	var a textAux
	if err := decodeObject(body, signFields(r, &a)); err != nil {
		return nil, err
	}
	if a.msg == "" {
		return nil, badRequest(`field "msg" must not be empty`)
	}
	m, err := hex.DecodeString(a.msg)
	if err != nil {
		return nil, badRequest(`field "msg" must be hex`)
	}
	r.Msg = m
	if a.extra != "" {
		if r.ExtraData, err = hex.DecodeString(a.extra); err != nil {
			return nil, badRequest(`field "extra_data" must be hex`)
		}
	}
	if r.Tweaks.Tweak, err = decodeTweak(a.tweak); err != nil {
		return nil, err
	}
	return r, nil
}

func decodeTweak(tweak string) (*[32]byte, error) {
	if tweak == "" {
		return nil, nil
	}
	return parseTweak(tweak)
}

// deriveRequest is a validated /bip340/derive-tweak-pubkey body.
type deriveRequest struct {
	KeyID  string
	Tweaks Tweaks
}

func deriveFields(r *deriveRequest, a *textAux) []field {
	return []field{
		stringField("key_id", true, 36, checkKeyID, &r.KeyID),
		derivationPathField(&r.Tweaks.Path),
		stringField("tweak", false, 64, nil, &a.tweak),
	}
}

func decodeDerive(body []byte) (*deriveRequest, error) {
	r := &deriveRequest{}
	var a textAux
	if err := decodeObject(body, deriveFields(r, &a)); err != nil {
		return nil, err
	}
	var err error
	if r.Tweaks.Tweak, err = decodeTweak(a.tweak); err != nil {
		return nil, err
	}
	return r, nil
}

func createRoomFields(size *int) []field {
	return []field{intField("room_size", true, size, nil)}
}

func decodeCreateRoom(body []byte, maxN int) (int, error) {
	var size int
	if err := decodeObject(body, createRoomFields(&size)); err != nil {
		return 0, err
	}
	if size < 1 || size > maxN {
		return 0, badNT("room_size must satisfy 1 <= room_size <= %d, got %d", maxN, size)
	}
	return size, nil
}

// revokeRequest is a validated /admin/revoke-api-key body. APIKey is secret.
type revokeRequest struct {
	UserID string
	APIKey string
}

func revokeFields(r *revokeRequest) []field {
	return []field{
		stringField("user_id", true, 128, checkUserID, &r.UserID),
		secretStringField("api_key", 512, checkAPIKeyShape, &r.APIKey),
	}
}

func decodeRevoke(body []byte) (*revokeRequest, error) {
	r := &revokeRequest{}
	if err := decodeObject(body, revokeFields(r)); err != nil {
		return nil, err
	}
	return r, nil
}
