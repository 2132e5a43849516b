// Package daemon is quorumd's HTTP layer: the Vertex-compatible REST API on
// fasthttp, its router, request decoding and validation, the error model,
// middleware (recover, request ids, concurrency limit, access and audit logs,
// metrics) and the daemon configuration.
//
// The handlers reach the rest of the system only through the narrow
// interfaces below (Authorizer, Admin, Keys, Rooms, Ceremonies), so the real
// policy, store, HSM and MPC packages plug in without this package knowing
// their internals.
package daemon

import (
	"context"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/daemon/secmem"
	"github.com/quorumd/quorumd/policy"
)

// Operation names an API operation for authorization decisions; the values
// are stable strings that policies may list.
type Operation string

// The operations of the core endpoints. The strings equal package policy's
// Operation values, so an adapter converts with policy.Operation(op).
const (
	OpCreateUser          Operation = "create_user"
	OpRevokeAPIKey        Operation = "revoke_api_key"
	OpDeleteUser          Operation = "delete_user"
	OpListAllSystemKeys   Operation = "list_all_system_keys"
	OpCreateRoom          Operation = "create_room"
	OpCreateKey           Operation = "create_key"
	OpImportKey           Operation = "import_key_importer"
	OpImportShareReceiver Operation = "import_key_recipient"
	OpSign                Operation = "sign"
	OpDeriveTweakPubkey   Operation = "derive_tweak_pubkey"
	OpExportID            Operation = "export_id"
	OpGetKey              Operation = "get_key"
	OpDeleteKeyShare      Operation = "delete_key"
	OpKeygen              Operation = "keygen"
	OpBackupExport        Operation = "backup_export"
	OpBackupImport        Operation = "backup_import"
	OpGenerateAPIKey      Operation = "generate_api_key"
	OpManagePolicies      Operation = "manage_policies"
)

// AdminOperation reports whether op is reserved to admin users.
func AdminOperation(op Operation) bool {
	switch op {
	case OpCreateUser, OpRevokeAPIKey, OpDeleteUser, OpListAllSystemKeys, OpGenerateAPIKey, OpManagePolicies:
		return true
	}
	return false
}

// AuthParams carries the request facts a policy decides on (the fields of
// policy.Params plus KeyID). Zero values mean "not part of this operation".
type AuthParams struct {
	KeyID        string // the key the operation targets
	N            int    // parties of an import, room_size of create-room
	Threshold    int    // t of an import
	RelayAddress string // an explicit relay_address override; "" = the default relay
	KeyCount     int    // the caller's live keys, for a policy's key quota check (0 when the store enforces it)
	Msg          []byte // sign: the message, for the policy's message shape
	Rooms        int    // create_room: rooms asked for (0 = 1), for the room quota
}

// Caller is the authenticated user behind an API key.
type Caller struct {
	UserID string
	Name   string
	Admin  bool
	// KeyQuota is set for create_key: the most live keys the caller's
	// policy allows (0 = no limit), enforced by Keys.Create atomically.
	KeyQuota int
	// SignRules are the external rules of the policy the call was
	// authorized under (the cached grant: no second trip to the source).
	SignRules []policy.NamedExternalRule
}

// Authorizer authenticates the raw API key of the Authorization header and
// decides whether its user may perform op with params. Errors carry their
// err_type (see Typed): access_denied for a missing, unknown or revoked key,
// you_have_to_be_admin, policy_validation_failed (e.g. relay_address not on
// the allowlist, N or t outside the policy), and so on; anything untyped is
// an internal_problem. apiKey is secret: never log it. It is a view of the
// request's header, wiped after the request: keep (clone) nothing of it.
type Authorizer interface {
	Authorize(ctx context.Context, apiKey string, op Operation, params AuthParams) (Caller, error)
}

// NewUser is the answer of Admin.CreateUser. APIKey is shown to the admin
// exactly once.
type NewUser struct {
	UserID string
	APIKey string
}

// Admin performs the user administration writes of the /admin routes (on the
// policy source). The HTTP layer has already authorized the caller as an
// admin. Errors should be Typed (user_name_already_exists,
// user_id_not_exists, api_key_not_found, ...). RevokeAPIKey's apiKey is a
// view of the request body, wiped after the request: keep nothing of it.
type Admin interface {
	CreateUser(ctx context.Context, name string) (NewUser, error)
	RevokeAPIKey(ctx context.Context, userID, apiKey string) error
	DeleteUser(ctx context.Context, userID string) error
}

// KeyState is the lifecycle state of a key slot.
type KeyState string

// Key slot states: created by /bip340/create; pending once a ceremony
// durably stored the share but its success certificate is not known here
// yet (DESIGN §3a: recover it, or sign, which recovers); ready once
// certified.
const (
	KeyCreated KeyState = "created"
	KeyPending KeyState = "pending"
	KeyReady   KeyState = "ready"
)

// KeySlot is a freshly created key slot.
type KeySlot struct {
	KeyID    string // canonical lowercase UUID (see ValidKeyID)
	KeygenID []byte // 33-byte compressed identity public key
}

// KeyInfo is the public record of a key: everything here may be shown to
// its owner. Threshold, N, ParticipantID, Pubkey, Participants and
// PubShares are set only in states KeyPending and KeyReady; WaitingFor
// only in KeyPending.
type KeyInfo struct {
	KeyID         string
	Owner         string // user_id
	State         KeyState
	KeygenID      []byte   // own 33-byte identity key
	Threshold     int      // t
	N             int      // number of parties
	ParticipantID int      // own BIP445 id, 0..N-1
	Pubkey        []byte   // 32-byte BIP340 x-only threshold key
	Participants  [][]byte // all N keygen_ids, sorted bytewise (index = BIP445 id)
	PubShares     [][]byte // 33-byte compressed public shares, aligned with Participants
	WaitingFor    string   // pending: what completes the key, for the operator
	RefusedBy     []byte   // pending: the member that refused after this party signed, if one did
	CreatedAt     time.Time
}

// Tweaks is the optional key derivation of sign and derive-tweak-pubkey,
// validated by the HTTP layer: Path is a BIP32 unhardened path (each index
// < 2^31, at most 255 deep) applied first, then Tweak (a scalar < n) as an
// X-only (BIP341-style) tweak. Both are public data.
type Tweaks struct {
	Path  []uint32
	Tweak *[32]byte
}

// Keys is the key-slot service (store + HSM) as the handlers need it. owner
// is the caller's user_id; a key of another owner must fail exactly like an
// absent one (ErrKeyNotFound, key_id_not_exists).
type Keys interface {
	// Create makes a new key slot with a fresh, HSM-sealed identity key. If
	// quota > 0 and owner already has quota live keys, it fails with
	// policy_validation_failed; the count and the insert are one
	// transaction, never check-then-act.
	Create(ctx context.Context, owner string, quota int) (KeySlot, error)
	// Get returns the public record of a key owned by owner.
	Get(ctx context.Context, owner, keyID string) (KeyInfo, error)
	// Delete irreversibly destroys the key slot and its sealed material.
	Delete(ctx context.Context, owner, keyID string) error
	// ListByOwner lists owner's keys (any state).
	ListByOwner(ctx context.Context, owner string) ([]KeyInfo, error)
	// CountByOwner counts owner's keys (any state) for the key quota.
	CountByOwner(ctx context.Context, owner string) (int, error)
	// ListAll lists every key by owner (admin view).
	ListAll(ctx context.Context) (map[string][]KeyInfo, error)
	// DerivePubkey returns the 32-byte x-only public key of a ready key after
	// tw; key_operation_before_keygen for a key still in state created.
	DerivePubkey(ctx context.Context, owner, keyID string, tw Tweaks) ([]byte, error)
}

// Rooms creates rooms on the configured default relay.
type Rooms interface {
	// CreateRoom makes a one-time room for size parties and returns its
	// room_uuid. Untyped errors are answered as room_creation_problem.
	CreateRoom(ctx context.Context, size int) (string, error)
}

// ImportParams are the validated inputs of an import ceremony. Others holds
// the N-1 other keygen_ids (33 bytes each, valid points, distinct, none
// equal to the own one). RelayAddress is an explicit, policy-approved relay;
// "" means the configured default relay.
type ImportParams struct {
	Owner        string
	KeyID        string
	RoomUUID     string
	Threshold    int
	Others       [][]byte
	RelayAddress string
	RequestID    string
	// Dealer is an external dealer's identity (dealer_id, 33 bytes) for a
	// recipient of a client that deals itself; nil otherwise.
	Dealer []byte
}

// ImportResult is what a committed import answers.
type ImportResult struct {
	KeyID  string
	Pubkey []byte // 32-byte BIP340 x-only key of the threshold key Q
}

// SignParams are the validated inputs of a signing ceremony.
type SignParams struct {
	Owner        string
	KeyID        string
	RoomUUID     string
	Msg          []byte
	Tweaks       Tweaks
	RelayAddress string // "" = default relay
	RequestID    string
}

// Ceremonies runs the multi-party protocols. Each call blocks until the
// ceremony committed, failed or ctx expired (the HTTP layer sets the
// configured ceremony timeout). Protocol failures should be Typed
// (executor_result naming the culprit's keygen_id where known); an untyped
// context.DeadlineExceeded is answered as executor_result "timed out".
type Ceremonies interface {
	// ImportKey deals the private key x to the quorum (the importer's side).
	// x is secret; the caller zeroes it when ImportKey returns, so the
	// implementation must not retain it.
	ImportKey(ctx context.Context, p ImportParams, x *btcec.ModNScalar) (ImportResult, error)
	// ImportRecipient receives a share of a key dealt by one of p.Others.
	ImportRecipient(ctx context.Context, p ImportParams) (ImportResult, error)
	// Sign produces a 64-byte BIP340 signature with the quorum, verified
	// before it is returned.
	Sign(ctx context.Context, p SignParams) ([]byte, error)
}

// ReadinessCheck is one dependency /readyz probes (HSM session, policy
// source, ...). Check must honour ctx's deadline.
type ReadinessCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// Backends are the parts the HTTP layer calls; all are required except
// Ready.
type Backends struct {
	Auth       Authorizer
	Admin      Admin
	Keys       Keys
	Rooms      Rooms
	Ceremonies Ceremonies
	// Recovery serves recovery data and recovers stuck parties; optional
	// (without it those two routes answer not_found).
	Recovery Recovery
	// Keygen runs distributed key generation; optional (without it
	// /bip340/keygen answers not_found).
	Keygen Keygens
	// Backups exports and imports key-share backups; optional (without it
	// the backup routes answer not_found).
	Backups Backups
	// Lifecycle runs refresh and reshare (optional, as Recovery).
	Lifecycle Lifecycle
	// Policies serves /admin/policies/... and /admin/generate-api-key;
	// nil answers them with internal_problem.
	Policies PolicyAdmin
	// Rules consults external rule servers before each signature; nil
	// means no external rules.
	Rules RuleChecker
	Ready []ReadinessCheck
	// Classify maps foreign error types that carry no ErrType method (e.g.
	// a ceremony's *AbortError to executor_result with its culprit-naming
	// text); consulted after Typed errors. msg is shown to the client.
	Classify func(err error) (errType, msg string, ok bool)
	// Errors maps foreign sentinel errors (e.g. the store's ErrNotFound) to
	// an err_type and a fixed message; consulted after Classify and before
	// the fallback to internal_problem.
	Errors []ErrorMapping
	// Secrets is the locked arena that key-importer's private_key is
	// decoded into, one slot a request, apart from the ceremonies' own
	// arena (whose two slots a ceremony the budget is sized on); nil
	// decodes it onto the Go heap (tests).
	Secrets *secmem.Arena
	// ImportKeys decrypts encrypted_private_key (GET
	// /bip340/import/import-key publishes it); nil refuses that field.
	ImportKeys ImportKeys
}
