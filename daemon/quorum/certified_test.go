package quorum

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/hsm"
	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/ceremony"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/relay"
)

// faultyStore fails the writes a test picks, on a real Bolt store.
type faultyStore struct {
	store.Store
	failPrepare, failMark bool
}

var errDiskFull = errors.New("write: no space left on device")

func (f *faultyStore) Prepare(ctx context.Context, owner, keyID string, c store.Commitment) error {
	if f.failPrepare {
		return errDiskFull
	}
	return f.Store.Prepare(ctx, owner, keyID, c)
}

func (f *faultyStore) MarkReady(ctx context.Context, owner, keyID string, tr, rd []byte) error {
	if f.failMark {
		return errDiskFull
	}
	return f.Store.MarkReady(ctx, owner, keyID, tr, rd)
}

// shareSealFails fails sealing shares (not identity keys) on a real token.
type shareSealFails struct{ hsm.Sealer }

func (s shareSealFails) Seal(pt, aad []byte) ([]byte, error) {
	if bytes.HasPrefix(aad, []byte("quorumd/share/")) {
		return nil, errors.New("pkcs11: CKR_DEVICE_ERROR")
	}
	return s.Sealer.Seal(pt, aad)
}

// SealFor is the path shares take: under the key's data key (seal.go).
func (s shareSealFails) SealFor(keyID string, pt, aad []byte) ([]byte, error) {
	if bytes.HasPrefix(aad, []byte("quorumd/share/")) {
		return nil, errors.New("pkcs11: CKR_DEVICE_ERROR")
	}
	return s.Sealer.SealFor(keyID, pt, aad)
}

// importAll runs a 2-of-3 import of x with party 0 importing.
func importAll(t *testing.T, ps []*party, x *btcec.PrivateKey) []error {
	t.Helper()
	return importAllWithin(t, ps, x, 60*time.Second)
}

func importAllWithin(t *testing.T, ps []*party, x *btcec.PrivateKey, timeout time.Duration) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	room, err := ps[0].svc.CreateRoom(ctx, len(ps))
	if err != nil {
		t.Fatal(err)
	}
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() {
			ip := daemon.ImportParams{Owner: "alice", KeyID: p.keyID, RoomUUID: room, Threshold: 2, Others: others(ps, i)}
			var res daemon.ImportResult
			if i == 0 {
				k := x.Key
				res, errs[i] = p.svc.ImportKey(ctx, ip, &k)
			} else {
				res, errs[i] = p.svc.ImportRecipient(ctx, ip)
			}
			if errs[i] == nil && !bytes.Equal(res.Pubkey, schnorr.SerializePubKey(x.PubKey())) {
				t.Errorf("party %d: pubkey %x", i, res.Pubkey)
			}
		})
	}
	wg.Wait()
	return errs
}

func stateOf(t *testing.T, p *party) daemon.KeyInfo {
	t.Helper()
	k, err := p.svc.Get(context.Background(), "alice", p.keyID)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func signWith(t *testing.T, x *btcec.PrivateKey, signers ...*party) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	room, err := signers[0].svc.CreateRoom(ctx, len(signers))
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 32)
	rand.Read(msg)
	sigs := make([][]byte, len(signers))
	errs := make([]error, len(signers))
	var wg sync.WaitGroup
	for i, p := range signers {
		wg.Go(func() {
			sigs[i], errs[i] = p.svc.Sign(ctx, daemon.SignParams{Owner: "alice", KeyID: p.keyID, RoomUUID: room, Msg: msg})
		})
	}
	wg.Wait()
	for i := range sigs {
		if errs[i] != nil {
			t.Fatalf("signer %d: %v", i, errs[i])
		}
		sig, err := schnorr.ParseSignature(sigs[i])
		if err != nil || !sig.Verify(msg, x.PubKey()) {
			t.Fatalf("signature %d does not verify", i)
		}
	}
}

// TestImportCommitStepFailure: one party's commit step fails, its store
// write (a full disk) or its HSM seal; it refuses instead of signing, so
// nobody answers success and the others discard what they prepared: every
// slot is empty and reusable, and a retry imports the key everywhere.
func TestImportCommitStepFailure(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(p *party)
	}{
		{"store write fails", func(p *party) { p.svc.Store = &faultyStore{Store: p.svc.Store, failPrepare: true} }},
		{"HSM seal fails", func(p *party) { p.svc.Sealer = shareSealFails{p.svc.Sealer} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := newParties(t, 0, 0, 0)
			x, _ := btcec.NewPrivateKey()
			st, sealer := ps[2].svc.Store, ps[2].svc.Sealer
			tc.fault(ps[2])
			errs := importAll(t, ps, x)
			for i, err := range errs {
				if err == nil {
					t.Errorf("party %d answered success while party 2 stored nothing", i)
				}
				if k := stateOf(t, ps[i]); k.State != daemon.KeyCreated {
					t.Errorf("party %d: state %s, want created", i, k.State)
				}
			}
			ps[2].svc.Store, ps[2].svc.Sealer = st, sealer
			for i, err := range importAll(t, ps, x) {
				if err != nil {
					t.Fatalf("retry at party %d: %v", i, err)
				}
			}
			signWith(t, x, ps[0], ps[2])
		})
	}
}

// TestRecoverStuckParty: a party that answered success but whose ready mark
// was lost stays pending (and says what it waits for); it becomes ready from
// a peer's recovery data, and a party that lost its record but kept its
// identity key does too; recovery data that does not verify stores
// nothing. Another party stuck pending becomes ready by signing.
func TestRecoverStuckParty(t *testing.T) {
	ps := newParties(t, 0, 0, 0)
	x, _ := btcec.NewPrivateKey()
	for _, i := range []int{1, 2} {
		ps[i].svc.Store = &faultyStore{Store: ps[i].svc.Store, failMark: true}
	}
	for i, err := range importAll(t, ps, x) {
		if err != nil {
			t.Fatalf("party %d: %v", i, err)
		}
	}
	ctx := context.Background()
	for _, i := range []int{1, 2} {
		k := stateOf(t, ps[i])
		if k.State != daemon.KeyPending || k.WaitingFor == "" || !bytes.Equal(k.Pubkey, schnorr.SerializePubKey(x.PubKey())) {
			t.Fatalf("party %d: %+v, want pending with the key", i, k)
		}
		ps[i].svc.Store = ps[i].svc.Store.(*faultyStore).Store
	}
	rd, err := ps[0].svc.RecoveryData(ctx, "alice", ps[0].keyID)
	if err != nil || !rd.Certified {
		t.Fatalf("recovery data: %+v, %v", rd, err)
	}

	// Tampered data is refused before anything is stored.
	bad := bytes.Clone(rd.Data)
	bad[len(bad)-3] ^= 1
	if _, err := ps[2].svc.Recover(ctx, "alice", ps[2].keyID, bad); !isType(err, daemon.ErrTypeBadRequestParams) {
		t.Fatalf("tampered recovery data: %v", err)
	}
	if k := stateOf(t, ps[2]); k.State != daemon.KeyPending {
		t.Fatalf("after refused recovery: %s", k.State)
	}

	// Party 2 loses its record (but keeps its identity key), then recovers.
	r, err := ps[2].svc.Store.GetOwned(ctx, "alice", ps[2].keyID)
	if err != nil {
		t.Fatal(err)
	}
	if err := ps[2].svc.Store.Discard(ctx, "alice", ps[2].keyID, r.Transcript); err != nil {
		t.Fatal(err)
	}
	if k := stateOf(t, ps[2]); k.State != daemon.KeyCreated {
		t.Fatalf("after losing its record: %s", k.State)
	}
	k, err := ps[2].svc.Recover(ctx, "alice", ps[2].keyID, rd.Data)
	if err != nil || k.State != daemon.KeyReady {
		t.Fatalf("recover: %+v, %v", k, err)
	}
	if k, err := ps[2].svc.Recover(ctx, "alice", ps[2].keyID, rd.Data); err != nil || k.State != daemon.KeyReady {
		t.Fatalf("recovering twice: %+v, %v", k, err)
	}
	if hex.EncodeToString(k.Pubkey) != hex.EncodeToString(schnorr.SerializePubKey(x.PubKey())) {
		t.Fatal("recovered another key")
	}
	signWith(t, x, ps[0], ps[2])

	// Party 1, still pending, becomes ready by signing with a ready party.
	signWith(t, x, ps[1], ps[2])
	if k := stateOf(t, ps[1]); k.State != daemon.KeyReady {
		t.Fatalf("party 1 after signing: %s", k.State)
	}
}

func isType(err error, errType string) bool {
	var te daemon.Typed
	return errors.As(err, &te) && te.ErrType() == errType
}

// TestImportSplitAcrossServices: the relay delivers party 2's transcript
// signature and certificate to nobody (real SoftHSM, stores and relay).
// Party 2 holds every signature and answers success; the others answer
// executor_result and stay pending, never empty; each becomes ready from
// party 2's recovery data, and all three sign.
func TestImportSplitAcrossServices(t *testing.T) {
	var mu sync.Mutex
	var silenced string
	relayAddr := testkit.Relay(t, relay.Config{Intercept: func(room, from, to string, body []byte) ([]byte, bool) {
		mu.Lock()
		defer mu.Unlock()
		e, err := envelope.Unmarshal(body)
		return body, err == nil && from == silenced && e.Round >= 0xf0 && e.Round <= 0xf1
	}})
	ps := newPartiesOn(t, relayAddr, 0, 0, 0)
	mu.Lock()
	silenced = hex.EncodeToString(ps[2].party)
	mu.Unlock()
	x, _ := btcec.NewPrivateKey()
	errs := importAllWithin(t, ps, x, 5*time.Second)
	if errs[2] != nil {
		t.Fatalf("party 2: %v", errs[2])
	}
	ctx := context.Background()
	rd, err := ps[2].svc.RecoveryData(ctx, "alice", ps[2].keyID)
	if err != nil || !rd.Certified {
		t.Fatalf("party 2's recovery data: %+v, %v", rd, err)
	}
	for _, i := range []int{0, 1} {
		if !isType(errs[i], daemon.ErrTypeExecutorResult) {
			t.Errorf("party %d: %v, want executor_result", i, errs[i])
		}
		if k := stateOf(t, ps[i]); k.State != daemon.KeyPending {
			t.Fatalf("party %d: %s, want pending", i, k.State)
		}
		if k, err := ps[i].svc.Recover(ctx, "alice", ps[i].keyID, rd.Data); err != nil || k.State != daemon.KeyReady {
			t.Fatalf("party %d recovering: %+v, %v", i, k, err)
		}
	}
	signWith(t, x, ps[0], ps[1], ps[2])
}

// refuseAfterSigning puts a Byzantine member's refusal in place of its
// transcript signature (rounds 0xf0, 0xf1, 0xfe of docs/protocol.md).
var refuseAfterSigning = testkit.RefuserRounds{Replace: 0xf0, Last: 0xf1, Signature: 0xf0, Refuse: 0xfe}

// TestImportEquivocatingMember: member 2 signs the transcript for the
// importer and sends party 1 a signed refusal instead, after party 1
// signed (real SoftHSM, bbolt and relay; the member runs the ceremony with
// its own slot's identity and store). The importer and the member hold the
// certificate. Party 1 never discards: with an honest relay the importer's
// certificate broadcast makes it ready at once; with a relay that passes
// no certificate on it answers executor_result naming the member and stays
// pending with refused_by, until the importer's recovery data or a
// signing ceremony with the importer makes it ready. Everyone then signs.
func TestImportEquivocatingMember(t *testing.T) {
	for _, tc := range []struct {
		name            string
		drop, bySigning bool
	}{
		{"honest relay", false, false},
		{"relay drops certificates, recover", true, false},
		{"relay drops certificates, signing recovers", true, true},
	} {
		drop := tc.drop
		t.Run(tc.name, func(t *testing.T) {
			cfg := relay.Config{}
			if drop {
				cfg.Intercept = func(room, from, to string, body []byte) ([]byte, bool) {
					e, err := envelope.Unmarshal(body)
					return body, err == nil && e.Round == 0xf1
				}
			}
			ps := newPartiesOn(t, testkit.Relay(t, cfg), 0, 0, 0)
			x, _ := btcec.NewPrivateKey()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			room, err := ps[0].svc.CreateRoom(ctx, 3)
			if err != nil {
				t.Fatal(err)
			}
			errs := make([]error, 3)
			var wg sync.WaitGroup
			for i, p := range ps[:2] {
				wg.Go(func() {
					ip := daemon.ImportParams{Owner: "alice", KeyID: p.keyID, RoomUUID: room, Threshold: 2, Others: others(ps, i)}
					if i == 0 {
						k := x.Key
						_, errs[i] = p.svc.ImportKey(ctx, ip, &k)
					} else {
						_, errs[i] = p.svc.ImportRecipient(ctx, ip)
					}
				})
			}
			cheat := ps[2]
			r, err := cheat.svc.Store.GetOwned(ctx, "alice", cheat.keyID)
			if err != nil {
				t.Fatal(err)
			}
			id, err := cheat.svc.identity(r, new(btcec.ModNScalar))
			if err != nil {
				t.Fatal(err)
			}
			rc, err := cheat.svc.Relays.Client("")
			if err != nil {
				t.Fatal(err)
			}
			var seats, peers []envelope.Party
			for _, p := range ps {
				seats = append(seats, envelope.Party(p.party))
				if p != cheat {
					peers = append(peers, envelope.Party(p.party))
				}
			}
			refuser := testkit.NewRefuser(ceremony.RelayTransport(rc, room, id, seats), id, seats, envelope.Party(ps[1].party), refuseAfterSigning)
			_, errs[2] = ceremony.Import(ctx, ceremony.ImportParams{Room: room, Identity: id, Others: peers, Threshold: 2, Transport: refuser},
				&importDurable{s: cheat.svc, ctx: ctx, r: r, scratch: make([]byte, 32)})
			wg.Wait()
			if !refuser.Refused() {
				t.Fatal("the member never sent its refusal")
			}
			for _, i := range []int{0, 2} {
				if errs[i] != nil {
					t.Fatalf("party %d: %v", i, errs[i])
				}
			}
			k := stateOf(t, ps[1])
			if !drop {
				if errs[1] != nil || k.State != daemon.KeyReady {
					t.Fatalf("party 1: %v (%s), want ready from the importer's certificate", errs[1], k.State)
				}
			} else {
				cheatID := hex.EncodeToString(cheat.party)
				if !isType(errs[1], daemon.ErrTypeExecutorResult) || !strings.Contains(errs[1].Error(), cheatID) {
					t.Errorf("party 1: %v, want executor_result naming %s", errs[1], cheatID)
				}
				if k.State != daemon.KeyPending || !bytes.Equal(k.RefusedBy, cheat.party) || !strings.Contains(k.WaitingFor, "refused") {
					t.Fatalf("party 1: %+v, want pending, refused by the member", k)
				}
				if tc.bySigning {
					signWith(t, x, ps[0], ps[1])
				} else {
					rd, err := ps[0].svc.RecoveryData(ctx, "alice", ps[0].keyID)
					if err != nil || !rd.Certified {
						t.Fatalf("the importer's recovery data: %+v, %v", rd, err)
					}
					if _, err := ps[1].svc.Recover(ctx, "alice", ps[1].keyID, rd.Data); err != nil {
						t.Fatalf("party 1 recovering: %v", err)
					}
				}
				if k := stateOf(t, ps[1]); k.State != daemon.KeyReady || k.RefusedBy != nil {
					t.Fatalf("party 1 after recovery: %+v", k)
				}
			}
			signWith(t, x, ps[0], ps[1])
			signWith(t, x, ps[1], ps[2])
		})
	}
}
