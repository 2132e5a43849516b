package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/btcsuite/btcd/btcec/v2/schnorr"

	"github.com/quorumd/quorumd/mpc/bip340"
)

// signPlan is one signing ceremony with u daemons.
type signPlan struct {
	Signers        []*Client // the u daemons that sign
	Index          []int     // their indexes in -daemons (for output)
	KeyIDs         []string  // the key id on each signer
	Msg            []byte
	DerivationPath string
	Tweak          string
	RelayAddress   string
	Room           roomMaker // nil = POST /create-room on the first signer
}

// signResult is what a verified signing reports.
type signResult struct {
	Signers   []int         `json:"signers"`
	Daemons   []string      `json:"daemons"`
	KeyIDs    []string      `json:"key_ids"`
	RoomUUID  string        `json:"room_uuid"`
	Pubkey    string        `json:"pubkey"` // the (tweaked) x-only key verified against
	Message   string        `json:"message"`
	Signature string        `json:"signature"`
	Threshold int           `json:"threshold"`
	N         int           `json:"n"`
	Timing    signTimings   `json:"timing_ms"`
	timings   signDurations // for bench
}

type signTimings struct {
	Room     float64 `json:"room"`
	Ceremony float64 `json:"ceremony"`
}

type signDurations struct{ Room, Ceremony time.Duration }

// signKey is the checked public side of a key, as the signers report it.
type signKey struct {
	Pubkey []byte // x-only key the signature must verify under
	T, N   int
}

// checkSignKey fetches the key record from every signer and checks that
// they describe one key: ready, the same pubkey, participants and t, a
// distinct share each, and at least t signers. With a derivation path or
// tweak, the expected key comes from derive-tweak-pubkey (on every signer,
// which must agree).
func checkSignKey(ctx context.Context, p *signPlan, out *printer) (*signKey, error) {
	u := len(p.Signers)
	recs := make([]KeyRecord, u)
	errs := parallel(ctx, u, func(ctx context.Context, i int) error {
		r, err := p.Signers[i].GetKey(ctx, p.KeyIDs[i])
		if err != nil {
			return err
		}
		recs[i] = r
		return nil
	})
	if i, err := firstError(errs); err != nil {
		return nil, fmt.Errorf("reading key %s on daemon %d: %w", p.KeyIDs[i], p.Index[i], err)
	}
	var ids []int
	ready := false
	for i, r := range recs {
		// A pending signer is completed by a ready one's certificate
		// (docs/operations.md, "Pending keys"); a replica shows a key it
		// just imported through another replica as pending for a moment.
		if r.State != "ready" && r.State != "pending" || r.OwnID == nil {
			return nil, fmt.Errorf("key %s on daemon %d is in state %q, not ready: import it first", r.KeyID, p.Index[i], r.State)
		}
		ready = ready || r.State == "ready"
		if r.Pubkey != recs[0].Pubkey || r.T != recs[0].T || r.N != recs[0].N || !slices.Equal(r.Participants, recs[0].Participants) {
			return nil, fmt.Errorf("key %s on daemon %d and key %s on daemon %d are not shares of one key: %w",
				r.KeyID, p.Index[i], recs[0].KeyID, p.Index[0], errMismatch)
		}
		if slices.Contains(ids, *r.OwnID) {
			return nil, fmt.Errorf("daemon %d holds participant %d, like another signer: %w", p.Index[i], *r.OwnID, errMismatch)
		}
		ids = append(ids, *r.OwnID)
		out.step("daemon %d: key %s %s, participant %d of %d (t=%d)", p.Index[i], r.KeyID, r.State, *r.OwnID, r.N, r.T)
	}
	if !ready {
		return nil, fmt.Errorf("key %s is pending on every signer, none can complete it: recover it or import again (docs/operations.md, \"Pending keys\")", recs[0].KeyID)
	}
	k := &signKey{T: recs[0].T, N: recs[0].N}
	if u < k.T {
		return nil, usagef("%d signers for a %d-of-%d key", u, k.T, k.N)
	}
	pk, err := decodeHexLen(recs[0].Pubkey, 32)
	if err != nil {
		return nil, fmt.Errorf("daemon %d: pubkey: %w: %v", p.Index[0], errBadResponse, err)
	}
	k.Pubkey = pk
	if p.DerivationPath == "" && p.Tweak == "" {
		return k, nil
	}
	derived := make([][]byte, u)
	errs = parallel(ctx, u, func(ctx context.Context, i int) error {
		d, err := p.Signers[i].DerivePubkey(ctx, p.KeyIDs[i], p.DerivationPath, p.Tweak)
		derived[i] = d
		return err
	})
	if i, err := firstError(errs); err != nil {
		return nil, fmt.Errorf("deriving the tweaked key on daemon %d: %w", p.Index[i], err)
	}
	for i, d := range derived {
		if !bytes.Equal(d, derived[0]) {
			return nil, fmt.Errorf("daemons %d and %d derive different tweaked keys: %w", p.Index[0], p.Index[i], errMismatch)
		}
	}
	k.Pubkey = derived[0]
	out.step("tweaked pubkey %x", k.Pubkey)
	return k, nil
}

// runSign makes a room of size u, calls /bip340/sign on the u signers at
// once, checks that they all return the same signature and verifies it
// against key (BIP340, plus btcec's schnorr for 32-byte messages).
func runSign(ctx context.Context, p *signPlan, key *signKey, out *printer) (*signResult, error) {
	u := len(p.Signers)
	res := &signResult{Signers: p.Index, KeyIDs: p.KeyIDs, Message: hex.EncodeToString(p.Msg),
		Pubkey: hex.EncodeToString(key.Pubkey), Threshold: key.T, N: key.N}
	for _, c := range p.Signers {
		res.Daemons = append(res.Daemons, c.Base)
	}
	room, d, err := signRoom(ctx, p, out)
	if err != nil {
		return nil, err
	}
	res.RoomUUID, res.timings.Room = room, d

	t0 := time.Now()
	msgHex := hex.EncodeToString(p.Msg)
	sigs := make([][]byte, u)
	errs := parallel(ctx, u, func(ctx context.Context, i int) error {
		sig, err := p.Signers[i].Sign(ctx, SignRequest{RoomUUID: room, KeyID: p.KeyIDs[i], Msg: msgHex,
			DerivationPath: p.DerivationPath, Tweak: p.Tweak, RelayAddress: p.RelayAddress})
		if err != nil {
			if errors.Is(err, context.Canceled) {
				out.step("daemon %d: sign call cancelled (another signer failed)", p.Index[i])
			} else {
				out.step("daemon %d: sign failed: %v", p.Index[i], err)
			}
			return err
		}
		sigs[i] = sig
		out.step("daemon %d: signed", p.Index[i])
		return nil
	})
	if i, err := firstError(errs); err != nil {
		return nil, fmt.Errorf("signing ceremony, daemon %d: %w", p.Index[i], err)
	}
	res.timings.Ceremony = time.Since(t0)
	res.Timing = signTimings{Room: msf(res.timings.Room), Ceremony: msf(res.timings.Ceremony)}
	for i, s := range sigs {
		if !bytes.Equal(s, sigs[0]) {
			return nil, fmt.Errorf("daemons %d and %d returned different signatures: %w", p.Index[0], p.Index[i], errMismatch)
		}
	}
	if err := verifySignature(key.Pubkey, p.Msg, sigs[0]); err != nil {
		return nil, err
	}
	res.Signature = hex.EncodeToString(sigs[0])
	out.step("all %d signers returned the same signature; it verifies under pubkey %x", u, key.Pubkey)
	return res, nil
}

// signRoom makes the ceremony's room of size u (the plan's room maker, or
// /create-room on the first signer) and reports how long that took.
func signRoom(ctx context.Context, p *signPlan, out *printer) (string, time.Duration, error) {
	t0 := time.Now()
	mk := p.Room
	if mk == nil {
		mk = daemonRoom(p.Signers[0], p.Index[0])
	}
	u := len(p.Signers)
	room, where, err := mk(ctx, u)
	if err != nil {
		return "", 0, fmt.Errorf("creating the room %s: %w", where, err)
	}
	out.step("room %s (size %d) created %s", room, u, where)
	return room, time.Since(t0), nil
}

// verifySignature checks a BIP340 signature with libsecp256k1
// (bip340.Verify), the project's pure-Go verifier and, for 32-byte messages
// (the only ones btcec accepts), btcec/v2/schnorr: three implementations
// that share no code. All inputs are public.
func verifySignature(pub, msg, sig []byte) error {
	if err := bip340.Verify(pub, msg, sig); err != nil {
		return fmt.Errorf("%w: %v", errInvalidSignature, err)
	}
	if err := bip340.VerifyReference(pub, msg, sig); err != nil {
		return fmt.Errorf("%w: the pure-Go verifier rejects a signature libsecp256k1 accepted: %v", errInvalidSignature, err)
	}
	if len(msg) != 32 {
		return nil
	}
	pk, err := schnorr.ParsePubKey(pub)
	if err != nil {
		return fmt.Errorf("%w: btcec: %v", errInvalidSignature, err)
	}
	s, err := schnorr.ParseSignature(sig)
	if err != nil {
		return fmt.Errorf("%w: btcec: %v", errInvalidSignature, err)
	}
	if !s.Verify(msg, pk) {
		return fmt.Errorf("%w: btcec/schnorr rejects a signature bip340.Verify accepted", errInvalidSignature)
	}
	return nil
}

func runSignCmd(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("quorumctl sign", flag.ContinueOnError)
	var h httpFlags
	var q quorumFlags
	h.register(fs, 2*time.Minute)
	q.register(fs)
	keyIDs := fs.String("key-ids", "", "comma-separated key ids, one per daemon (as printed by import)")
	msgHex := fs.String("msg", "", "message to sign, hex")
	signers := fs.String("signers", "", "comma-separated indexes in -daemons of the signers (default: all)")
	path := fs.String("derivation-path", "", "BIP32 unhardened derivation path, e.g. m/0/1")
	tweak := fs.String("tweak", "", "x-only tweak, 64 hex")
	relayAddr := fs.String("relay-address", "", "relay host:port for the ceremony (must be on the users' policy allowlist)")
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	n := len(splitList(q.daemons))
	parties, err := q.parties(&h, n)
	if err != nil {
		return err
	}
	ids := splitList(*keyIDs)
	if len(ids) != len(parties) {
		return usagef("%d key ids for %d daemons", len(ids), len(parties))
	}
	msg, err := hex.DecodeString(*msgHex)
	if err != nil || *msgHex == "" {
		return usagef("-msg must be non-empty hex")
	}
	idx := make([]int, len(parties))
	for i := range idx {
		idx[i] = i
	}
	if *signers != "" {
		if idx, err = parseIndexes(*signers, len(parties)); err != nil {
			return err
		}
	}
	plan := &signPlan{Index: idx, Msg: msg, DerivationPath: *path, Tweak: *tweak, RelayAddress: *relayAddr}
	for _, i := range idx {
		plan.Signers = append(plan.Signers, parties[i])
		plan.KeyIDs = append(plan.KeyIDs, ids[i])
	}
	if *relayAddr != "" {
		mk, closeRelay, err := relayRoom(*relayAddr)
		if err != nil {
			return err
		}
		defer closeRelay()
		plan.Room = mk
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	out := h.printer(c)
	key, err := checkSignKey(ctx, plan, out)
	if err != nil {
		return err
	}
	res, err := runSign(ctx, plan, key, out)
	if err != nil {
		return err
	}
	return out.result(res, func(w io.Writer) {
		fmt.Fprintf(w, "message: %s\n", res.Message)
		fmt.Fprintf(w, "signature: %s\n", res.Signature)
	})
}

func runVerifyCmd(_ context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("quorumctl verify", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	pubHex := fs.String("pubkey", "", "x-only public key, 64 hex")
	msgHex := fs.String("msg", "", "message, hex")
	sigHex := fs.String("sig", "", "signature, 128 hex")
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	pub, err := decodeHexLen(*pubHex, 32)
	if err != nil {
		return usagef("-pubkey: %v", err)
	}
	msg, err := hex.DecodeString(*msgHex)
	if err != nil {
		return usagef("-msg: not hex")
	}
	sig, err := decodeHexLen(*sigHex, 64)
	if err != nil {
		return usagef("-sig: %v", err)
	}
	if err := verifySignature(pub, msg, sig); err != nil {
		return err
	}
	p := &printer{w: c.stdout, json: *asJSON}
	return p.result(map[string]any{"valid": true, "pubkey": *pubHex, "message": *msgHex, "signature": *sigHex},
		func(w io.Writer) { fmt.Fprintln(w, "valid: the BIP340 signature verifies") })
}
