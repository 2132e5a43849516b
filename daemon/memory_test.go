package daemon

// In-memory implementations of the backend interfaces, used to drive the
// HTTP layer in tests. They are small but real: users and API keys are
// checked, keys are owned, rooms coordinate concurrent callers and block
// until every party arrived or the context ends, and an import really
// derives Q = x·G so a later signature verifies under the returned pubkey.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"

	"github.com/quorumd/quorumd/mpc/frost"
)

// --- policy -------------------------------------------------------------------

type memUser struct {
	id, name string
	admin    bool
	apiKeys  map[string]bool // key -> revoked
	maxN     int
	quota    int
	relays   []string
}

type memPolicy struct {
	mu    sync.Mutex
	users map[string]*memUser
	keys  map[string]string // api key -> user id
	next  int
}

func newMemPolicy() *memPolicy {
	return &memPolicy{users: map[string]*memUser{}, keys: map[string]string{}}
}

// add creates a user directly (the bootstrap path) and returns its API key.
func (p *memPolicy) add(name string, admin bool) (userID, apiKey string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addLocked(name, admin)
}

func (p *memPolicy) addLocked(name string, admin bool) (string, string) {
	p.next++
	id := fmt.Sprintf("user-%d", p.next)
	var secret [16]byte
	rand.Read(secret[:])
	key := fmt.Sprintf("k%d.%s", p.next, hex.EncodeToString(secret[:]))
	p.users[id] = &memUser{id: id, name: name, admin: admin, apiKeys: map[string]bool{key: false}, maxN: 16, quota: 100, relays: []string{"relay.allowed:7000"}}
	p.keys[key] = id
	return id, key
}

func (p *memPolicy) Authorize(_ context.Context, apiKey string, op Operation, params AuthParams) (Caller, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id, ok := p.keys[apiKey]
	if !ok {
		return Caller{}, ErrAccessDenied
	}
	u, ok := p.users[id]
	if !ok || u.apiKeys[apiKey] {
		return Caller{}, ErrAccessDenied
	}
	if AdminOperation(op) && !u.admin {
		return Caller{}, Errorf(ErrTypeYouHaveToBeAdmin, "admin only")
	}
	if params.N > u.maxN {
		return Caller{}, Errorf(ErrTypePolicyValidationFailed, "N = %d exceeds the policy's %d", params.N, u.maxN)
	}
	if op == OpCreateKey && u.quota == 0 {
		return Caller{}, Errorf(ErrTypePolicyValidationFailed, "the policy allows no key")
	}
	if params.RelayAddress != "" && !slices.Contains(u.relays, params.RelayAddress) {
		return Caller{}, Errorf(ErrTypePolicyValidationFailed, "relay_address is not on the policy's allowlist")
	}
	c := Caller{UserID: u.id, Name: u.name, Admin: u.admin}
	if op == OpCreateKey {
		c.KeyQuota = u.quota
	}
	return c, nil
}

func (p *memPolicy) CreateUser(_ context.Context, name string) (NewUser, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range p.users {
		if u.name == name {
			return NewUser{}, Errorf(ErrTypeUserNameAlreadyExists, "a user named %q exists", name)
		}
	}
	id, key := p.addLocked(name, false)
	return NewUser{UserID: id, APIKey: key}, nil
}

func (p *memPolicy) RevokeAPIKey(_ context.Context, userID, apiKey string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	u, ok := p.users[userID]
	if !ok {
		return Errorf(ErrTypeUserIDNotExists, "no such user")
	}
	if _, ok := u.apiKeys[apiKey]; !ok {
		return Errorf(ErrTypeAPIKeyNotFound, "the user has no such API key")
	}
	// apiKey views the request body (wiped after the request): a map
	// assignment would store that view as the key.
	u.apiKeys[strings.Clone(apiKey)] = true
	return nil
}

func (p *memPolicy) DeleteUser(_ context.Context, userID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	u, ok := p.users[userID]
	if !ok {
		return Errorf(ErrTypeUserIDNotExists, "no such user")
	}
	for k := range u.apiKeys {
		delete(p.keys, k)
	}
	delete(p.users, userID)
	return nil
}

// --- keys -----------------------------------------------------------------------

type memKey struct {
	info KeyInfo
}

type memKeys struct {
	mu   sync.Mutex
	keys map[string]*memKey
	// hook, when set, runs first in Create (tests use it to inject an
	// internal failure or a panic).
	hook func()
}

func newMemKeys() *memKeys { return &memKeys{keys: map[string]*memKey{}} }

func (k *memKeys) Create(_ context.Context, owner string, quota int) (KeySlot, error) {
	if k.hook != nil {
		k.hook()
	}
	id := NewKeyID()
	priv, err := btcec.NewPrivateKey()
	if err != nil {
		return KeySlot{}, err
	}
	kg := priv.PubKey().SerializeCompressed()
	priv.Zero()
	k.mu.Lock()
	defer k.mu.Unlock()
	owned := 0
	for _, m := range k.keys {
		if m.info.Owner == owner {
			owned++
		}
	}
	if quota > 0 && owned >= quota {
		return KeySlot{}, Errorf(ErrTypePolicyValidationFailed, "the key quota of %d is used up", quota)
	}
	k.keys[id] = &memKey{info: KeyInfo{KeyID: id, Owner: owner, State: KeyCreated, KeygenID: kg, CreatedAt: time.Now()}}
	return KeySlot{KeyID: id, KeygenID: kg}, nil
}

func (k *memKeys) Get(_ context.Context, owner, keyID string) (KeyInfo, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	m, ok := k.keys[keyID]
	if !ok || m.info.Owner != owner {
		return KeyInfo{}, ErrKeyNotFound
	}
	return m.info, nil
}

func (k *memKeys) Delete(_ context.Context, owner, keyID string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	m, ok := k.keys[keyID]
	if !ok || m.info.Owner != owner {
		return ErrKeyNotFound
	}
	delete(k.keys, keyID)
	return nil
}

func (k *memKeys) CountByOwner(ctx context.Context, owner string) (int, error) {
	l, err := k.ListByOwner(ctx, owner)
	return len(l), err
}

func (k *memKeys) ListByOwner(_ context.Context, owner string) ([]KeyInfo, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []KeyInfo
	for _, m := range k.keys {
		if m.info.Owner == owner {
			out = append(out, m.info)
		}
	}
	return out, nil
}

func (k *memKeys) ListAll(_ context.Context) (map[string][]KeyInfo, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := map[string][]KeyInfo{}
	for _, m := range k.keys {
		out[m.info.Owner] = append(out[m.info.Owner], m.info)
	}
	return out, nil
}

// DerivePubkey supports the tweak (X-only, BIP341 style) on public data;
// the derivation path is not modelled here.
func (k *memKeys) DerivePubkey(ctx context.Context, owner, keyID string, tw Tweaks) ([]byte, error) {
	info, err := k.Get(ctx, owner, keyID)
	if err != nil {
		return nil, err
	}
	if info.State != KeyReady {
		return nil, ErrKeyNotReady
	}
	if len(tw.Path) > 0 {
		return memDerivePath(info.Pubkey, tw.Path)
	}
	if tw.Tweak == nil {
		return info.Pubkey, nil
	}
	q, err := schnorr.ParsePubKey(info.Pubkey)
	if err != nil {
		return nil, err
	}
	var t btcec.ModNScalar
	t.SetBytes(tw.Tweak)
	var qj, tg, sum btcec.JacobianPoint
	q.AsJacobian(&qj)
	btcec.ScalarBaseMultNonConst(&t, &tg) // public tweak
	btcec.AddNonConst(&qj, &tg, &sum)
	sum.ToAffine()
	return schnorr.SerializePubKey(btcec.NewPublicKey(&sum.X, &sum.Y)), nil
}

// commit moves a created key to ready, atomically refusing a second import.
func (k *memKeys) commit(owner, keyID string, t int, participants [][]byte, pubkey []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	m, ok := k.keys[keyID]
	if !ok || m.info.Owner != owner {
		return ErrKeyNotFound
	}
	if m.info.State != KeyCreated {
		return ErrKeyAlreadyImported
	}
	sorted := slices.Clone(participants)
	slices.SortFunc(sorted, bytes.Compare)
	m.info.State = KeyReady
	m.info.Threshold, m.info.N = t, len(sorted)
	m.info.Participants = sorted
	m.info.ParticipantID = slices.IndexFunc(sorted, func(b []byte) bool { return bytes.Equal(b, m.info.KeygenID) })
	m.info.Pubkey = pubkey
	return nil
}

// --- rooms and ceremonies ---------------------------------------------------------

type memRoom struct {
	size   int
	joined int
	full   chan struct{}
	dealt  chan struct{}
	q      []byte // x-only threshold key, set by the importer
}

// memNet is the relay plus an oracle of dealt keys: it lets the in-memory
// "quorum" sign with the key an import dealt, so the flow test can verify
// a real BIP340 signature under the pubkey the import returned.
type memNet struct {
	mu      sync.Mutex
	rooms   map[string]*memRoom
	down    bool
	keys    *memKeys
	secrets map[string]*btcec.PrivateKey // x-only pubkey hex -> dealt key (test only)
}

func newMemNet(keys *memKeys) *memNet {
	return &memNet{rooms: map[string]*memRoom{}, keys: keys, secrets: map[string]*btcec.PrivateKey{}}
}

func (n *memNet) CreateRoom(_ context.Context, size int) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.down {
		return "", errors.New("dial tcp 127.0.0.1:7000: connect: connection refused")
	}
	id := NewKeyID()
	n.rooms[id] = &memRoom{size: size, full: make(chan struct{}), dealt: make(chan struct{})}
	return id, nil
}

func (n *memNet) join(room string) (*memRoom, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.rooms[room]
	if !ok {
		return nil, Errorf(ErrTypeExecutorResult, "room %s does not exist on the relay", room)
	}
	if r.joined == r.size {
		return nil, Errorf(ErrTypeExecutorResult, "room %s is full", room)
	}
	r.joined++
	if r.joined == r.size {
		close(r.full)
	}
	return r, nil
}

func wait(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (n *memNet) participants(ctx context.Context, p ImportParams) [][]byte {
	info, _ := n.keys.Get(ctx, p.Owner, p.KeyID)
	return append(slices.Clone(p.Others), info.KeygenID)
}

func (n *memNet) ImportKey(ctx context.Context, p ImportParams, x *btcec.ModNScalar) (ImportResult, error) {
	r, err := n.join(p.RoomUUID)
	if err != nil {
		return ImportResult{}, err
	}
	var xs btcec.ModNScalar
	xs.Set(x)
	priv := btcec.PrivKeyFromScalar(&xs)
	q := schnorr.SerializePubKey(priv.PubKey())
	n.mu.Lock()
	n.secrets[hex.EncodeToString(q)] = priv
	r.q = q
	close(r.dealt)
	n.mu.Unlock()
	if err := wait(ctx, r.full); err != nil {
		return ImportResult{}, err
	}
	if err := n.keys.commit(p.Owner, p.KeyID, p.Threshold, n.participants(ctx, p), q); err != nil {
		return ImportResult{}, err
	}
	return ImportResult{KeyID: p.KeyID, Pubkey: q}, nil
}

func (n *memNet) ImportRecipient(ctx context.Context, p ImportParams) (ImportResult, error) {
	r, err := n.join(p.RoomUUID)
	if err != nil {
		return ImportResult{}, err
	}
	if err := wait(ctx, r.dealt); err != nil {
		return ImportResult{}, err
	}
	if err := wait(ctx, r.full); err != nil {
		return ImportResult{}, err
	}
	n.mu.Lock()
	q := r.q
	n.mu.Unlock()
	if err := n.keys.commit(p.Owner, p.KeyID, p.Threshold, n.participants(ctx, p), q); err != nil {
		return ImportResult{}, err
	}
	return ImportResult{KeyID: p.KeyID, Pubkey: q}, nil
}

func (n *memNet) Sign(ctx context.Context, p SignParams) ([]byte, error) {
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
	if priv == nil || len(p.Msg) != 32 {
		return nil, Errorf(ErrTypeExecutorResult, "the in-memory quorum signs 32-byte messages of imported keys only")
	}
	sig, err := schnorr.Sign(priv, p.Msg)
	if err != nil {
		return nil, err
	}
	return sig.Serialize(), nil
}

// memDerivePath models unhardened derivation (BIP32 CKDpub with a chain
// code fixed from the key, as daemon/quorum does) on the even-Y lift of
// an x-only key: enough to tell paths apart and agree on equal ones.
func memDerivePath(xonly []byte, path []uint32) ([]byte, error) {
	q := [33]byte{2}
	copy(q[1:], xonly)
	tc, err := frost.NewTweakCtx(q)
	if err != nil {
		return nil, err
	}
	c := sha256.Sum256(append([]byte("memKeys chain code"), q[:]...))
	for _, i := range path {
		k := tc.PlainPubKey()
		mac := hmac.New(sha512.New, c[:])
		mac.Write(k[:])
		mac.Write(binary.BigEndian.AppendUint32(nil, i))
		sum := mac.Sum(nil)
		if err := tc.ApplyTweak([32]byte(sum[:32]), false); err != nil {
			return nil, err
		}
		c = [32]byte(sum[32:])
	}
	out := tc.XOnlyPubKey()
	return out[:], nil
}
