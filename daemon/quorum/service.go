package quorum

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/secmem"
	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/hsm"
	"github.com/quorumd/quorumd/mpc/ceremony"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/relay"
)

// Scheme is the only key scheme this service handles.
const Scheme = "bip340"

// Relays hands out relay clients: the configured default, or an explicit,
// policy-approved address.
type Relays interface {
	Client(address string) (*relay.Client, error)
}

// Service implements daemon.Keys, daemon.Rooms and daemon.Ceremonies.
type Service struct {
	Store  store.Store
	Sealer hsm.Sealer
	Relays Relays
	Log    *slog.Logger
	// Secrets holds the secret scalars of calls in flight (identity key,
	// share, imported key) in locked memory: a call takes its slots with
	// its request context, so calls beyond the arena's capacity wait and
	// then fail with the context's error. nil keeps them on the Go heap.
	Secrets *secmem.Arena

	// DataKeyPool hands out data keys made ahead, keeping their creation off
	// key-slot creation's path (seal.go); nil makes each on demand.
	DataKeyPool *hsm.DataKeyPool

	marks      lazyMarks    // ready marks in flight (certified.go)
	keys       keyCache     // parsed public parts of keys signed with (keycache.go)
	ceremonies atomic.Int32 // import and sign ceremonies running
	lastEnd    atomic.Int64 // when the last one ended (Unix ns)
}

// quietAfterCeremony is how long after a ceremony the daemon still counts
// as busy: under a steady load the next ceremony starts within it, and a
// data key made then (10 ms of token and CPU time on SoftHSM, far more on
// a loaded machine) would slow that ceremony down.
const quietAfterCeremony = 100 * time.Millisecond

// InCeremony reports whether an import or sign ceremony runs or ended
// within quietAfterCeremony: background token work (the data-key pool's
// refill) waits for a quiet daemon.
func (s *Service) InCeremony() bool {
	return s.ceremonies.Load() > 0 || time.Since(time.Unix(0, s.lastEnd.Load())) < quietAfterCeremony
}

// ceremony counts a running ceremony until the returned func is called.
func (s *Service) ceremony() func() {
	s.ceremonies.Add(1)
	return func() {
		s.lastEnd.Store(time.Now().UnixNano())
		s.ceremonies.Add(-1)
	}
}

// Slots each call holds at once (taken together, see secmem.AcquireN).
const (
	createSlots = 1 // identity key (+ its encoding in the slot's scratch)
	signSlots   = 2 // identity key, share
	importSlots = 2 // identity key; imported key (importer) and the share's encoding
)

// secretSlots takes n zeroed slots for a call's secrets; the caller defers
// secmem.ReleaseAll, which zeroes them.
func (s *Service) secretSlots(ctx context.Context, n int) ([]*secmem.Slot, error) {
	if s.Secrets == nil {
		return secmem.Unlocked(n), nil
	}
	slots, err := s.Secrets.AcquireN(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("waiting for locked memory for secrets (server.locked_secret_slots, %d in use): %w", s.Secrets.InUse(), err)
	}
	return slots, nil
}

var (
	_ daemon.Keys       = (*Service)(nil)
	_ daemon.Rooms      = (*Service)(nil)
	_ daemon.Ceremonies = (*Service)(nil)
)

// Create makes a key slot: a fresh identity key sealed under the HSM and a
// record in state created. quota > 0 is enforced by the store in the
// inserting transaction.
func (s *Service) Create(ctx context.Context, owner string, quota int) (daemon.KeySlot, error) {
	// An owner already at the quota is refused before the HSM is asked for
	// anything; the store's transaction remains the only real enforcement.
	if quota > 0 {
		n, err := s.Store.CountByOwner(ctx, owner)
		if err != nil {
			return daemon.KeySlot{}, fmt.Errorf("counting keys: %w", err)
		}
		if n >= quota {
			return daemon.KeySlot{}, quotaError(quota, store.ErrQuotaExceeded)
		}
	}
	daemon.MarkPhase(ctx, "count")
	slots, err := s.secretSlots(ctx, createSlots)
	if err != nil {
		return daemon.KeySlot{}, err
	}
	defer secmem.ReleaseAll(slots)
	id, err := envelope.GenerateIdentityAt(slots[0].Scalar())
	if err != nil {
		return daemon.KeySlot{}, err
	}
	defer id.Zero()
	daemon.MarkPhase(ctx, "identity")
	// The encoding goes to the HSM from the slot's scratch half; the
	// PKCS#11 layer's own copies are beyond reach (see package secmem).
	priv := slots[0].Bytes()[secmem.ScalarSize:]
	id.PutPrivateBytes(priv)
	keyID, sealed, err := s.sealIdentity(ctx, owner, priv)
	clear(priv)
	if err != nil {
		return daemon.KeySlot{}, err
	}
	pub := id.Public()
	if err := s.Store.CreateSlot(ctx, store.Slot{KeyID: keyID, Owner: owner, Scheme: Scheme,
		KeygenID: pub[:], SealedIdentityKey: sealed, Quota: quota}); err != nil {
		if !errors.Is(err, store.ErrDuplicate) { // never another record's data key
			s.abandonSlot(keyID)
		}
		if errors.Is(err, store.ErrQuotaExceeded) {
			return daemon.KeySlot{}, quotaError(quota, err)
		}
		return daemon.KeySlot{}, fmt.Errorf("storing key slot: %w", err)
	}
	daemon.MarkPhase(ctx, "store")
	return daemon.KeySlot{KeyID: keyID, KeygenID: pub[:]}, nil
}

func quotaError(quota int, cause error) error {
	return fmt.Errorf("%w (%w)", daemon.Errorf(daemon.ErrTypePolicyValidationFailed, "key quota of the user's policy reached (%d keys)", quota), cause)
}

// Get returns the owner's key record (public part).
func (s *Service) Get(ctx context.Context, owner, keyID string) (daemon.KeyInfo, error) {
	r, err := s.owned(ctx, owner, keyID)
	if err != nil {
		return daemon.KeyInfo{}, err
	}
	return info(r), nil
}

func (s *Service) owned(ctx context.Context, owner, keyID string) (store.Record, error) {
	r, err := s.Store.GetOwned(ctx, owner, keyID)
	if err == nil && r.State == store.StatePending && s.marks.wait(ctx, owner, keyID) {
		// A ready mark was in flight: read what it wrote.
		r, err = s.Store.GetOwned(ctx, owner, keyID)
	}
	if errors.Is(err, store.ErrNotFound) {
		return r, fmt.Errorf("%w", daemon.ErrKeyNotFound)
	}
	return r, err
}

func info(r store.Record) daemon.KeyInfo {
	k := daemon.KeyInfo{KeyID: r.KeyID, Owner: r.Owner, State: daemon.KeyCreated, KeygenID: r.KeygenID, CreatedAt: r.CreatedAt}
	if r.State == store.StateReady || r.State == store.StatePending {
		k.State = daemon.KeyReady
		if r.State == store.StatePending {
			k.State, k.WaitingFor = daemon.KeyPending, waitingFor
			if len(r.RefusedBy) > 0 {
				k.WaitingFor, k.RefusedBy = fmt.Sprintf(waitingForRefused, r.RefusedBy), r.RefusedBy
			}
		}
		k.Threshold, k.N, k.ParticipantID = r.T, r.N, r.OwnID
		if len(r.PublicKey) == 33 {
			k.Pubkey = r.PublicKey[1:]
		}
		k.Participants, k.PubShares = r.KeygenIDs, r.PublicShares
	}
	return k
}

// ListByOwner lists the owner's keys.
func (s *Service) ListByOwner(ctx context.Context, owner string) ([]daemon.KeyInfo, error) {
	rs, err := s.Store.ListByOwner(ctx, owner)
	if err != nil {
		return nil, err
	}
	out := make([]daemon.KeyInfo, len(rs))
	for i, r := range rs {
		out[i] = info(r)
	}
	return out, nil
}

// CountByOwner counts the owner's keys.
func (s *Service) CountByOwner(ctx context.Context, owner string) (int, error) {
	return s.Store.CountByOwner(ctx, owner)
}

// ListAll lists every key by owner.
func (s *Service) ListAll(ctx context.Context) (map[string][]daemon.KeyInfo, error) {
	rs, err := s.Store.ListAll(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]daemon.KeyInfo{}
	for _, r := range rs {
		out[r.Owner] = append(out[r.Owner], info(r))
	}
	return out, nil
}

// DerivePubkey returns the x-only key after the derivation and tweak.
func (s *Service) DerivePubkey(ctx context.Context, owner, keyID string, tw daemon.Tweaks) ([]byte, error) {
	r, err := s.ready(ctx, owner, keyID)
	if err != nil {
		return nil, err
	}
	_, out, err := Tweaks([33]byte(r.PublicKey), tw)
	if err != nil {
		return nil, daemon.Errorf(daemon.ErrTypeBadRequestParams, "derivation: %v", err)
	}
	return out[:], nil
}

func (s *Service) ready(ctx context.Context, owner, keyID string) (store.Record, error) {
	r, err := s.owned(ctx, owner, keyID)
	if err != nil {
		return r, err
	}
	if r.State != store.StateReady || len(r.PublicKey) != 33 {
		return r, fmt.Errorf("%w", daemon.ErrKeyNotReady)
	}
	return r, nil
}

// CreateRoom makes a room on the default relay.
func (s *Service) CreateRoom(ctx context.Context, size int) (string, error) {
	c, err := s.Relays.Client("")
	if err != nil {
		return "", err
	}
	return c.CreateRoom(ctx, size)
}

// identity opens a key slot's sealed identity key into storage (a locked
// slot) and returns the identity using it in place. The HSM's plaintext is
// a Go-heap slice: it is decoded straight into storage and cleared at once.
// Decoding is constant time (SetByteSlice).
func (s *Service) identity(r store.Record, storage *btcec.ModNScalar) (*envelope.Identity, error) {
	b, err := s.Sealer.Open(r.SealedIdentityKey, identityAAD(r.KeyID, r.Owner))
	if err != nil {
		return nil, fmt.Errorf("opening identity key of %s: %w", r.KeyID, err)
	}
	overflow := storage.SetByteSlice(b)
	n := len(b)
	clear(b)
	if n != 32 || overflow {
		storage.Zero()
		return nil, fmt.Errorf("identity key of %s: bad length", r.KeyID)
	}
	if len(r.KeygenID) != envelope.PartySize {
		storage.Zero()
		return nil, fmt.Errorf("key slot %s: stored keygen_id is %d bytes, not a compressed point", r.KeyID, len(r.KeygenID))
	}
	// The stored keygen_id saves a constant-time k·G; a keygen_id that does
	// not match the key cannot produce a valid envelope (NewIdentityAtWithPublic).
	id, err := envelope.NewIdentityAtWithPublic(storage, envelope.Party(r.KeygenID))
	if err != nil {
		storage.Zero()
		return nil, fmt.Errorf("key slot %s: %w", r.KeyID, err)
	}
	return id, nil
}

// ImportKey is the importer's side of an import. x is copied into locked
// memory for the ceremony (which zeroes that copy); the caller zeroes x.
func (s *Service) ImportKey(ctx context.Context, p daemon.ImportParams, x *btcec.ModNScalar) (daemon.ImportResult, error) {
	return s.runImport(ctx, p, x)
}

// ImportRecipient is a recipient's side of an import: the seed endpoint.
func (s *Service) ImportRecipient(ctx context.Context, p daemon.ImportParams) (daemon.ImportResult, error) {
	return s.runImport(ctx, p, nil)
}

// importLocks serialises imports per key.
var importLocks keyLocks

func (s *Service) runImport(ctx context.Context, p daemon.ImportParams, x *btcec.ModNScalar) (daemon.ImportResult, error) {
	defer s.ceremony()()
	slot, err := s.openSlot(ctx, p.Owner, p.KeyID, importSlots)
	if err != nil {
		return daemon.ImportResult{}, err
	}
	defer slot.close()
	id := slot.id
	daemon.MarkPhase(ctx, "open_slot") // key lock, store read, HSM open
	// The importer's key: a copy in locked memory, zeroed by the ceremony.
	var key *btcec.ModNScalar
	if x != nil {
		key = slot.slots[1].Scalar()
		key.Set(x)
	}
	others, err := parseOthers(p.Others)
	if err != nil {
		return daemon.ImportResult{}, err
	}
	seated := append([]envelope.Party{id.Public()}, others...)
	var dealer envelope.Party
	if p.Dealer != nil {
		// An external dealer (a client dealing itself) takes a seat too.
		if dealer, err = envelope.ParseParty(p.Dealer); err != nil {
			return daemon.ImportResult{}, daemon.Errorf(daemon.ErrTypeBadRequestParams, "dealer_id: %v", err)
		}
		seated = append(seated, dealer)
	}
	rc, err := s.Relays.Client(p.RelayAddress)
	if err != nil {
		return daemon.ImportResult{}, err
	}
	start := time.Now()
	ki, err := ceremony.Import(ctx, ceremony.ImportParams{
		Room: p.RoomUUID, Identity: id, Others: others, Threshold: p.Threshold, Dealer: dealer,
		Transport:  traced(ctx, ceremony.RelayTransport(rc, p.RoomUUID, id, seated)),
		PrivateKey: key,
	}, &importDurable{s: s, ctx: ctx, r: slot.r, scratch: slot.scratch(1)})
	if err != nil {
		return daemon.ImportResult{}, ceremonyError(err)
	}
	x32 := ki.XOnly()
	// The HTTP layer writes the one audit line (key.imported); this is the
	// ceremony's own detail.
	s.log().Debug("import ceremony committed", "key_id", p.KeyID, "role", role(x), "t", ki.T, "n", ki.N,
		"request_id", p.RequestID, "duration_ms", time.Since(start).Milliseconds())
	return daemon.ImportResult{KeyID: p.KeyID, Pubkey: x32[:]}, nil
}

func role(x *btcec.ModNScalar) string {
	if x != nil {
		return "importer"
	}
	return "recipient"
}

// sealShare seals a share for r's slot under the key's HSM data key
// (seal.go): the one place shares are sealed. The encoding goes through
// scratch (32 bytes of locked memory) and is cleared after; encoding is
// constant time.
func (s *Service) sealShare(r store.Record, id int, share *btcec.ModNScalar, scratch []byte) ([]byte, error) {
	sb := scratch[:32]
	share.PutBytesUnchecked(sb)
	sealed, err := s.sealShareBytes(r, id, sb)
	clear(sb)
	if err != nil {
		return nil, err
	}
	return sealed, nil
}

// commitment is the store form of a ceremony's public outcome.
func commitment(ki *ceremony.KeyInfo, id int, sealed, recovery []byte) store.Commitment {
	c := store.Commitment{Source: store.SourceImport, T: ki.T, N: ki.N, OwnID: id,
		PublicKey: ki.ThreshPK[:], SealedShare: sealed, Transcript: ki.Transcript[:], RecoveryData: recovery}
	for i := range ki.Parties {
		c.KeygenIDs = append(c.KeygenIDs, ki.Parties[i][:])
		c.PublicShares = append(c.PublicShares, ki.PubShares[i][:])
	}
	return c
}

// Sign runs a signing ceremony with the key's share. A ready key attaches
// its certificate for signers still pending; a pending key signs only once
// another signer attached one, which it records first (DESIGN §3a).
func (s *Service) Sign(ctx context.Context, p daemon.SignParams) ([]byte, error) {
	defer s.ceremony()()
	r, key, cert, err := s.signingKey(ctx, p.Owner, p.KeyID)
	if err != nil {
		return nil, err
	}
	tweaks, _, err := Tweaks(key.ThreshPK, p.Tweaks)
	if err != nil {
		return nil, daemon.Errorf(daemon.ErrTypeBadRequestParams, "derivation: %v", err)
	}
	ss, err := s.openSigner(ctx, r, key, p.RoomUUID, p.RelayAddress)
	if err != nil {
		return nil, err
	}
	defer ss.close()
	start := time.Now()
	ss.ran = true
	sig, err := ceremony.Sign(ctx, ceremony.SignParams{
		Room: p.RoomUUID, Identity: ss.id, Key: key, Share: ss.share,
		Msg: p.Msg, Tweaks: tweaks, Transport: ss.tr,
		Certificate: cert, Pending: r.State == store.StatePending,
		OnCertified: func(c ceremony.Certificate) error { return s.certify(ctx, r, c) },
	})
	if err != nil {
		return nil, ceremonyError(err)
	}
	s.log().Debug("signing ceremony done", "key_id", p.KeyID, "request_id", p.RequestID, "duration_ms", time.Since(start).Milliseconds())
	return sig[:], nil
}

func keyInfo(r store.Record) (*ceremony.KeyInfo, error) {
	k := &ceremony.KeyInfo{T: r.T, N: r.N}
	if len(r.KeygenIDs) != r.N || len(r.PublicShares) != r.N || len(r.PublicKey) != 33 {
		return nil, fmt.Errorf("key record %s is inconsistent", r.KeyID)
	}
	k.ThreshPK = [33]byte(r.PublicKey)
	if len(r.Transcript) == len(k.Transcript) {
		k.Transcript = [32]byte(r.Transcript)
	}
	if r.Source == store.SourceKeygen {
		// A keygen's certificate is ChillDKG's, over its eq_input.
		rd, err := ceremony.ParseRecoveryData(r.RecoveryData)
		if err != nil {
			return nil, fmt.Errorf("key record %s: recovery data: %w", r.KeyID, err)
		}
		k.EqInput = rd.Deal
	}
	for i := range r.N {
		p, err := envelope.ParseParty(r.KeygenIDs[i])
		if err != nil {
			return nil, fmt.Errorf("key record %s: %w", r.KeyID, err)
		}
		k.Parties = append(k.Parties, p)
		k.PubShares = append(k.PubShares, [33]byte(r.PublicShares[i]))
	}
	return k, nil
}

// ceremonyError turns a ceremony abort into executor_result, naming the
// culprit's keygen_id; other failures (HSM, store) pass through.
func ceremonyError(err error) error {
	var ae *ceremony.AbortError
	if !errors.As(err, &ae) {
		return err
	}
	if errors.Is(err, ceremony.ErrCommit) {
		var t daemon.Typed
		if errors.As(err, &t) {
			return t
		}
		return err
	}
	return &daemon.Error{Type: daemon.ErrTypeExecutorResult, Msg: ae.Error()}
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}
