package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// Operation names an endpoint of DESIGN §2 for authorization. The values are
// the strings policies list in allowed_operations.
type Operation string

// Operations of the core endpoints. The first four and the last two are
// admin operations,
// granted by the user's admin flag; the others are granted by the user's
// policy.
const (
	OpCreateUser         Operation = "create_user"
	OpRevokeAPIKey       Operation = "revoke_api_key"
	OpDeleteUser         Operation = "delete_user"
	OpListAllSystemKeys  Operation = "list_all_system_keys"
	OpCreateRoom         Operation = "create_room"
	OpCreateKey          Operation = "create_key"
	OpImportKeyImporter  Operation = "import_key_importer"
	OpImportKeyRecipient Operation = "import_key_recipient"
	OpSign               Operation = "sign"
	OpDeriveTweakPubkey  Operation = "derive_tweak_pubkey"
	OpExportID           Operation = "export_id"
	OpGetKey             Operation = "get_key"
	OpDeleteKey          Operation = "delete_key"
	OpGenerateAPIKey     Operation = "generate_api_key"
	OpManagePolicies     Operation = "manage_policies"
)

// opRule says which policy checks an operation needs.
type opRule struct {
	admin     bool // granted by the admin flag, not by a policy
	needN     bool // Params.N must be set and ≤ max_n
	needT     bool // Params.Threshold must be set and within the bounds
	quota     bool // Params.KeyCount must be below key_quota
	relayable bool // may carry an explicit relay_address
}

var opRules = map[Operation]opRule{
	OpCreateUser:         {admin: true},
	OpRevokeAPIKey:       {admin: true},
	OpDeleteUser:         {admin: true},
	OpListAllSystemKeys:  {admin: true},
	OpCreateRoom:         {needN: true},
	OpCreateKey:          {quota: true},
	OpImportKeyImporter:  {needN: true, needT: true, relayable: true},
	OpImportKeyRecipient: {needN: true, needT: true, relayable: true},
	OpSign:               {relayable: true},
	OpDeriveTweakPubkey:  {},
	OpExportID:           {},
	OpGetKey:             {},
	OpDeleteKey:          {},
	OpGenerateAPIKey:     {admin: true},
	OpManagePolicies:     {admin: true},
}

// Operations lists every operation, admin ones first.
func Operations() []Operation {
	return []Operation{OpCreateUser, OpRevokeAPIKey, OpDeleteUser, OpListAllSystemKeys, OpGenerateAPIKey, OpManagePolicies,
		OpCreateRoom, OpCreateKey, OpImportKeyImporter, OpImportKeyRecipient, OpSign,
		OpDeriveTweakPubkey, OpExportID, OpGetKey, OpDeleteKey}
}

// IsAdmin reports whether op is granted by the admin flag.
func (op Operation) IsAdmin() bool { return opRules[op].admin }

// Params are the request facts a policy decides on.
//
//   - N: parties of an import (len(others_keygen_ids)+1) or room_size of
//     create_room; required by those operations.
//   - Threshold: t of an import; required by the import operations.
//   - RelayAddress: an explicit relay_address ("host:port"); "" means the
//     configured default relay, which needs no allowlisting.
//   - KeyCount: the caller's current number of keys, checked against
//     key_quota by create_key.
//   - Msg: the message of a sign, checked against the message shape.
//   - Rooms: rooms a create_room asks for (0 counts as 1), for room_quota.
type Params struct {
	N            int
	Threshold    int
	RelayAddress string
	KeyCount     int
	Msg          []byte
	Rooms        int
}

// User is an authenticated user. Values returned by Authorize are shared
// with the cache and must not be modified.
type User struct {
	ID        string    `json:"user_id"`
	Name      string    `json:"name"`
	Admin     bool      `json:"admin"`
	Policy    string    `json:"policy,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Policy is what a non-admin operation is checked against. Every limit is
// explicit and its zero value denies: max_n 0 allows no N, max_threshold 0
// allows no threshold, key_quota 0 allows no new key, an empty allowlist
// allows only the default relay. A user without a policy may perform no
// policy-governed operation (deny-all): there is no implicit default.
//
// A policy is either flat (its limits inline, as operators wrote them
// before rules existed) or a named set of rules (Rules non-empty, inline
// limits unset): GetPolicy then folds the rules into the inline fields
// (see combine). RoomQuota (rooms per minute per user on one daemon) and
// MaxMsgBytes are unbounded at 0.
type Policy struct {
	Name                  string        `json:"-"` // the policies/ key: a policy_id, or a flat policy's name
	DisplayName           string        `json:"name,omitempty"`
	Rules                 []string      `json:"rules,omitempty"` // rule ids
	CreatedAt             *time.Time    `json:"created_at,omitempty"`
	AllowedOperations     []Operation   `json:"allowed_operations"`
	MaxN                  int           `json:"max_n"`
	MinThreshold          int           `json:"min_threshold"`
	MaxThreshold          int           `json:"max_threshold"`
	AllowedRelayAddresses []string      `json:"allowed_relay_addresses"`
	KeyQuota              int           `json:"key_quota"`
	RoomQuota             int           `json:"room_quota,omitempty"`
	MaxMsgBytes           int           `json:"max_msg_bytes,omitempty"`
	BackupExport          *BackupExport `json:"allow_backup_export,omitempty"`

	// Resolved from Rules by the source (never stored).
	MsgPrefixes [][][]byte          `json:"-"` // per rule: msg must start with one of them
	External    []NamedExternalRule `json:"-"`
}

// inline reports whether any inline limit is set.
func (p *Policy) inline() bool {
	return len(p.AllowedOperations) > 0 || p.MaxN != 0 || p.MinThreshold != 0 || p.MaxThreshold != 0 ||
		len(p.AllowedRelayAddresses) > 0 || p.KeyQuota != 0 || p.RoomQuota != 0 || p.MaxMsgBytes != 0 || p.BackupExport != nil
}

// ID is what users reference and the API calls policy_id.
func (p *Policy) ID() string { return p.Name }

// Title is the policy's name as shown: its display name, or a flat
// policy's key.
func (p *Policy) Title() string {
	if p.DisplayName != "" {
		return p.DisplayName
	}
	return p.Name
}

// Validate checks that the policy is well formed: known non-admin
// operations only, non-negative limits, min_threshold ≤ max_threshold, and
// relay addresses of the form host:port.
func (p *Policy) Validate() error {
	if !validName(p.Name) {
		return fmt.Errorf("%w: policy name %q: want 1-64 of [A-Za-z0-9._@-]", ErrConfig, p.Name)
	}
	for _, op := range p.AllowedOperations {
		r, ok := opRules[op]
		if !ok {
			return fmt.Errorf("%w: policy %q: unknown operation %q", ErrConfig, p.Name, op)
		}
		if r.admin {
			return fmt.Errorf("%w: policy %q: %q is granted by the admin flag, not by a policy", ErrConfig, p.Name, op)
		}
	}
	if p.DisplayName != "" && !ValidUserName(p.DisplayName) {
		return fmt.Errorf("%w: policy %q: name must be 1-%d bytes of printable UTF-8", ErrConfig, p.Name, MaxUserName)
	}
	for _, id := range p.Rules {
		if !validUserID(id) {
			return fmt.Errorf("%w: policy %q: rule id %q is not a UUID", ErrConfig, p.Name, id)
		}
	}
	if len(p.Rules) > 0 && p.inline() {
		return fmt.Errorf("%w: policy %q: inline limits and rules are exclusive", ErrConfig, p.Name)
	}
	if p.BackupExport != nil {
		r := Rule{Name: "x", AllowBackupExport: p.BackupExport}
		if err := r.Validate(); err != nil {
			return fmt.Errorf("%w: policy %q: %w", ErrConfig, p.Name, err)
		}
	}
	if p.MaxN < 0 || p.MinThreshold < 0 || p.MaxThreshold < 0 || p.KeyQuota < 0 || p.RoomQuota < 0 || p.MaxMsgBytes < 0 {
		return fmt.Errorf("%w: policy %q: negative limit", ErrConfig, p.Name)
	}
	if p.MinThreshold > p.MaxThreshold {
		return fmt.Errorf("%w: policy %q: min_threshold %d > max_threshold %d", ErrConfig, p.Name, p.MinThreshold, p.MaxThreshold)
	}
	for _, a := range p.AllowedRelayAddresses {
		if err := validRelayAddress(a); err != nil {
			return fmt.Errorf("%w: policy %q: %w", ErrConfig, p.Name, err)
		}
	}
	return nil
}

func validRelayAddress(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" {
		return fmt.Errorf("relay address %q: want host:port", a)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("relay address %q: bad port", a)
	}
	return nil
}

// check decides op with params under the policy. Relay addresses match
// exactly (no normalisation), so the allowlist means what it says.
func (p *Policy) check(op Operation, r opRule, params Params) *Error {
	if !slices.Contains(p.AllowedOperations, op) {
		return denied("operation %s is not allowed by policy %q", op, p.Name)
	}
	if r.needN {
		if params.N < 1 {
			return &Error{Type: ErrTypeBadNAndTParams, Msg: "number of parties missing"}
		}
		if params.N > p.MaxN {
			return denied("N=%d exceeds max_n=%d of policy %q", params.N, p.MaxN, p.Name)
		}
	}
	if r.needT {
		if params.Threshold < 1 {
			return &Error{Type: ErrTypeBadNAndTParams, Msg: "threshold missing"}
		}
		if params.Threshold < p.MinThreshold || params.Threshold > p.MaxThreshold {
			return denied("threshold %d outside [%d, %d] of policy %q", params.Threshold, p.MinThreshold, p.MaxThreshold, p.Name)
		}
	}
	if r.quota && params.KeyCount >= p.KeyQuota {
		return denied("key quota of policy %q reached (%d keys)", p.Name, p.KeyQuota)
	}
	if op == OpSign && params.Msg != nil {
		if p.MaxMsgBytes > 0 && len(params.Msg) > p.MaxMsgBytes {
			return denied("msg of %d bytes exceeds max_msg_bytes=%d of policy %q", len(params.Msg), p.MaxMsgBytes, p.Name)
		}
		for _, set := range p.MsgPrefixes {
			if !slices.ContainsFunc(set, func(pre []byte) bool { return bytes.HasPrefix(params.Msg, pre) }) {
				return denied("msg does not start with a prefix allowed by policy %q", p.Name)
			}
		}
	}
	if params.RelayAddress != "" {
		if !r.relayable {
			return &Error{Type: ErrTypeBadRequestParams, Msg: fmt.Sprintf("operation %s takes no relay_address", op)}
		}
		if !slices.Contains(p.AllowedRelayAddresses, params.RelayAddress) {
			return denied("relay_address is not on the allowlist of policy %q", p.Name)
		}
	}
	return nil
}

// validName accepts user and policy names: 1-64 of [A-Za-z0-9._@-], not
// "." or "..", so a name is always a safe single path segment.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '.', c == '_', c == '@', c == '-':
		default:
			return false
		}
	}
	return true
}

// MaxUserName is the byte limit of a user name (DESIGN §2).
const MaxUserName = 128

// ValidUserName accepts Vertex's user names: printable UTF-8 (spaces
// included; control, format and invalid sequences not), 1 to 128 bytes.
func ValidUserName(s string) bool {
	if len(s) == 0 || len(s) > MaxUserName || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// nameKey is the names/ index entry of a user name: the name itself when
// it is a safe path segment (records written before names widened keep
// their place), else "~" and the hex SHA-256 of the name ("~" is outside
// validName's alphabet, so the two forms cannot collide).
func nameKey(name string) string {
	if validName(name) {
		return name
	}
	d := sha256.Sum256([]byte(name))
	return "~" + hex.EncodeToString(d[:])
}

// userRecord is users/<user_id>.
type userRecord struct {
	ID        string    `json:"user_id"`
	Name      string    `json:"name"`
	Admin     bool      `json:"admin"`
	Policy    string    `json:"policy"`
	CreatedAt time.Time `json:"created_at"`
	APIKeys   []string  `json:"api_keys"`
}

func (u *userRecord) user() User {
	return User{ID: u.ID, Name: u.Name, Admin: u.Admin, Policy: u.Policy, CreatedAt: u.CreatedAt}
}

func (u *userRecord) validate(id string) error {
	if u.ID != id || !validUserID(u.ID) || (u.Name != "" && !ValidUserName(u.Name)) || (u.Policy != "" && !validName(u.Policy)) {
		return fmt.Errorf("%w: user record %s", ErrSourceInvalid, id)
	}
	for _, l := range u.APIKeys {
		if !validLookupID(l) {
			return fmt.Errorf("%w: user record %s: bad api key id", ErrSourceInvalid, id)
		}
	}
	return nil
}

// APIKeyRecord is apikeys/<lookup_id>: the public half of an API key.
type APIKeyRecord struct {
	LookupID     string     `json:"-"`
	UserID       string     `json:"user_id"`
	SecretSHA256 string     `json:"secret_sha256"` // hex
	CreatedAt    time.Time  `json:"created_at"`
	Revoked      bool       `json:"revoked"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
}

func (k *APIKeyRecord) digest() ([32]byte, error) {
	var d [32]byte
	if !validUserID(k.UserID) || len(k.SecretSHA256) != 64 {
		return d, fmt.Errorf("%w: api key record %s", ErrSourceInvalid, k.LookupID)
	}
	if _, err := decodeHex(d[:], k.SecretSHA256); err != nil {
		return d, fmt.Errorf("%w: api key record %s: digest", ErrSourceInvalid, k.LookupID)
	}
	return d, nil
}

// nameRecord is names/<name>: the uniqueness index of user names.
type nameRecord struct {
	UserID string `json:"user_id"`
}
