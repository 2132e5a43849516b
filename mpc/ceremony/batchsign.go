package ceremony

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/quorumd/quorumd/mpc/bip340"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/frost"
)

// BatchSignLabel versions the batch signing protocol inside every session
// id; it shares sign/v3's rules (partial signatures in one broadcast of
// boxes, one encrypted to each other signer; the key's transcript bound,
// certificates on the nonces). v3: as sign/v4, the signer count is not in
// the session id (round 1 is posted before the room's size is known); the
// view of round 1 that opens round 2 binds the signers.
const BatchSignLabel = "quorumd/batch-sign/v3"

// itemTag domain-separates the per-item digest that signers compare in
// round 1.
const itemTag = "quorumd/batch-sign/item/v1"

// Per-item errors of a batch: the item is not signed, the others are.
var (
	// ErrItemDeclined: a signer refused the item (its own checks failed:
	// an unknown key, a policy, a rule server).
	ErrItemDeclined = errors.New("declined by a signer")
	// ErrItemMismatch: a signer was asked to sign a different message or
	// derivation for the item.
	ErrItemMismatch = errors.New("signers disagree on the message or derivation")
)

// ItemError is why one item of a batch was not signed; By is the signer
// that declined or disagreed (this party itself for its own refusal).
type ItemError struct {
	Index int
	By    envelope.Party
	Err   error // ErrItemDeclined, ErrItemMismatch or ErrInput
}

func (e *ItemError) Error() string {
	return fmt.Sprintf("batch item %d: %v (signer %x)", e.Index, e.Err, e.By[:])
}

func (e *ItemError) Unwrap() error { return e.Err }

// BatchItem is one message of a batch with its tweaks. Declined marks an
// item this signer refuses: it still holds its place, so every signer's
// item i is the same request, and the others learn of the refusal in round 1.
type BatchItem struct {
	Msg      []byte
	Tweaks   []frost.Tweak
	Declined bool
}

// BatchParams are one signer's inputs to a batch: SignParams for the key,
// room and signer (its Msg and Tweaks are unused) and the items, in the
// order every signer lists them.
type BatchParams struct {
	SignParams
	Items []BatchItem
}

// BatchResult is one item's outcome: a verified signature, or Err (an
// *ItemError).
type BatchResult struct {
	Sig [64]byte
	Err error
}

// MaxBatchItems bounds a batch so every round fits one envelope.
const MaxBatchItems = (envelope.MaxPayload - 4096) / itemEntrySize

// itemEntrySize is one item's part of a round-1 payload: a flag (1 = this
// signer signs the item), the item digest and a public nonce.
const itemEntrySize = 1 + sha256.Size + frost.PubNonceSize

// SignBatch runs one signer's side of a batch: BIP445 signing of every item
// in one room, one fresh nonce pair per item. Round 1 broadcasts, per item,
// whether this signer signs it, the digest of what it signs, and its public
// nonce; an item goes ahead only if every signer signs it with the same
// digest. Round 2 sends the partial signatures of those items, encrypted to
// each other signer, with a hash of the round-1 broadcasts this signer saw
// (so an equivocating broadcast is caught before anyone is wrongly blamed).
// Every partial signature is verified (an invalid one aborts the whole
// batch naming its signer), and every aggregate is verified before it is
// returned. Item failures are per item; the error is for the whole batch.
func SignBatch(ctx context.Context, p BatchParams) ([]BatchResult, error) {
	defer leaveLater(ctx, p.Transport) // as Sign
	k := p.Key
	myID, err := signerID(p.SignParams)
	if err != nil {
		return nil, err
	}
	if len(p.Items) == 0 || len(p.Items) > MaxBatchItems {
		return nil, &AbortError{Err: ErrInput, Detail: fmt.Sprintf("%d items in a batch (1..%d)", len(p.Items), MaxBatchItems)}
	}
	session := envelope.SessionID(BatchSignLabel, p.Room, k.Parties, k.T, k.N, batchContext(k, p))
	pt := newParty(p.Identity, envelope.KindSign, session, k.Parties, p.Transport)
	pt.split = p.split
	// The room is left by leaveLater above; the ECDH secrets go now.
	defer pt.ch.Zero()
	res, err := runBatch(ctx, pt, p, myID, session)
	if err != nil {
		return nil, pt.fail(err)
	}
	return res, nil
}

// batchContext binds the key and its generation and the number of items
// into the session id; the items themselves are compared in round 1, so
// that one disagreement costs one item, not the batch, and the signers by
// round 2's view of round 1.
func batchContext(k *KeyInfo, p BatchParams) []byte {
	b := append(append([]byte(nil), k.ThreshPK[:]...), k.Transcript[:]...)
	return binary.BigEndian.AppendUint32(b, uint32(len(p.Items)))
}

// batchItem is this signer's working state for one item.
type batchItem struct {
	digest [32]byte
	outKey [32]byte
	nonce  *frost.SecNonce
	err    error // set once the item is out
	sess   *frost.Session
	ids    []uint32
	pns    []frost.PubNonce
	shares []frost.PubShare
	psigs  []frost.PartialSig
	sig    [64]byte
}

func runBatch(ctx context.Context, pt *party, p BatchParams, myID int, session [32]byte) ([]BatchResult, error) {
	sendLazily(pt.tr) // as in runSign: each post rides on the fetch after it
	k := p.Key
	items := make([]batchItem, len(p.Items))
	defer func() {
		for i := range items {
			if items[i].nonce != nil {
				items[i].nonce.Destroy()
			}
		}
	}()
	// Round 1: a flag, a digest and a nonce per item.
	payload := make([]byte, 0, len(items)*itemEntrySize+len(p.Certificate)*envelope.SigSize)
	for i, it := range p.Items {
		bi := &items[i]
		bi.digest = bip340.TaggedHash(itemTag, appendItem(nil, it.Msg, it.Tweaks))
		if !it.Declined {
			if bi.outKey, bi.err = outputKey(k, it.Tweaks); bi.err != nil {
				bi.err = &ItemError{Index: i, By: pt.me, Err: fmt.Errorf("%w: %w", ErrInput, bi.err)}
			}
		} else {
			bi.err = &ItemError{Index: i, By: pt.me, Err: ErrItemDeclined}
		}
		var pn frost.PubNonce
		if bi.err == nil {
			extra := binary.BigEndian.AppendUint32(append([]byte(nil), session[:]...), uint32(i))
			var err error
			bi.nonce, pn, err = frost.NonceGen(p.Rand, &frost.NonceGenArgs{
				SecShare: p.Share, PubShare: k.PubShares[myID][:], ThreshPKXOnly: bi.outKey[:],
				Msg: it.Msg, HasMsg: true, ExtraIn: extra,
			})
			if err != nil {
				return nil, abortf(roundNonce, envelope.Broadcast, ErrInput, "nonce generation: %v", err)
			}
			payload = append(payload, 1)
		} else {
			payload = append(payload, 0)
		}
		payload = append(append(payload, bi.digest[:]...), pn[:]...)
	}
	entries := len(payload)
	payload = append(payload, p.Certificate.marshal()...)
	if err := pt.send(ctx, roundNonce, envelope.Broadcast, payload, false); err != nil {
		return nil, err
	}
	u, err := signerCount(ctx, p.SignParams)
	if err != nil {
		return nil, err
	}
	got, err := pt.collect(ctx, roundNonce, pt.others(), u-1, nil)
	if err != nil {
		return nil, err
	}
	if p.Pending {
		if err := adoptCertificate(k, p.SignParams, got, entries); err != nil {
			return nil, err
		}
	}
	// The signer set in id order (everyone heard, and us), with the round-1
	// entries of each; view hashes every signer's broadcast.
	var signers []envelope.Party
	var tables [][]byte
	view := sha256.New()
	for id, m := range pt.members {
		var e []byte
		if id == myID {
			e = payload[:entries]
		} else if g := got[othersIndex(id, myID)]; g != nil {
			if len(g.Payload) < entries || (len(g.Payload) != entries && len(g.Payload) != entries+k.N*envelope.SigSize) {
				return nil, abortf(roundNonce, m, ErrProtocol, "batch round 1 payload of %d bytes for %d items", len(g.Payload), len(items))
			}
			e = g.Payload[:entries]
		} else {
			continue
		}
		view.Write(e)
		signers = append(signers, m)
		tables = append(tables, e)
	}
	var seen [32]byte
	view.Sum(seen[:0])
	// An item goes ahead if every signer flagged it with this signer's digest.
	agreed := 0
	for i := range items {
		bi := &items[i]
		for j, tab := range tables {
			ent := tab[i*itemEntrySize : (i+1)*itemEntrySize]
			switch {
			case bi.err != nil:
			case ent[0] != 1:
				bi.err = &ItemError{Index: i, By: signers[j], Err: ErrItemDeclined}
			case [32]byte(ent[1:33]) != bi.digest:
				bi.err = &ItemError{Index: i, By: signers[j], Err: ErrItemMismatch}
			default:
				// Decoded (once) by frost.NewSignerSession, which blames an
				// undecodable nonce on its signer.
				id := pt.index[signers[j]]
				bi.ids = append(bi.ids, uint32(id))
				bi.pns = append(bi.pns, frost.PubNonce(ent[33:]))
				bi.shares = append(bi.shares, frost.PubShare(k.PubShares[id]))
			}
		}
		if bi.err == nil {
			agreed++
		}
	}
	if agreed == 0 {
		return results(items), nil
	}
	// Round 2: this signer's partial signatures of the agreed items.
	out := make([]byte, 0, agreed*frost.PartialSigSize)
	for i := range items {
		bi := &items[i]
		if bi.err != nil {
			continue
		}
		sess, err := frost.NewSignerSession(&frost.SignersCtx{N: uint32(k.N), T: uint32(k.T), IDs: bi.ids, PubShares: bi.shares, ThreshPK: k.ThreshPK},
			bi.pns, p.Items[i].Tweaks, p.Items[i].Msg, bi.nonce)
		if err != nil {
			return nil, blame(roundNonce, signers, err)
		}
		bi.sess = sess
		psig, err := sess.Sign(bi.nonce, p.Share, uint32(myID))
		if err != nil {
			return nil, abortf(roundPsig, envelope.Broadcast, ErrInput, "item %d partial signature: %v", i, err)
		}
		bi.psigs = make([]frost.PartialSig, len(signers))
		bi.psigs[slices.Index(signers, pt.me)] = psig
		if p.tamperPsig != nil {
			p.tamperPsig(&psig)
		}
		out = append(out, psig[:]...)
	}
	others := make([]envelope.Party, 0, len(signers)-1)
	for _, s := range signers {
		if s != pt.me {
			others = append(others, s)
		}
	}
	// Posted while the others' partial signatures are verified and
	// aggregated; the results wait for the post.
	posted := pt.broadcastBoxesAsync(ctx, roundPsig, others, seen[:], out)
	err = aggregateBatch(ctx, pt, p, items, signers, others, seen)
	if perr := posted(); err == nil {
		err = perr
	}
	if err != nil {
		return nil, err
	}
	return results(items), nil
}

// aggregateBatch takes the other signers' round-2 envelopes and
// aggregates and verifies each agreed item's signature.
func aggregateBatch(ctx context.Context, pt *party, p BatchParams, items []batchItem, signers, others []envelope.Party, seen [32]byte) error {
	_, err := pt.collect(ctx, roundPsig, others, len(others), func(e *envelope.Envelope) error {
		if err := checkView(e, seen); err != nil {
			return err
		}
		raw, err := pt.openBox(e, len(seen), boxesFrom(signers, e.From))
		if err != nil {
			return err
		}
		return takePsigs(e.From, raw, items, signers)
	})
	if err != nil {
		return err
	}
	for i := range items {
		bi := &items[i]
		if bi.err != nil {
			continue
		}
		sig, err := bi.sess.Agg(bi.psigs)
		if err != nil {
			return blame(roundPsig, signers, err)
		}
		if err := bip340.Verify(bi.outKey[:], p.Items[i].Msg, sig[:]); err != nil {
			return abortf(roundPsig, envelope.Broadcast, ErrProtocol, "item %d: aggregate signature does not verify: %v", i, err)
		}
		bi.sig = [64]byte(sig)
	}
	return nil
}

// takePsigs checks from's round-2 partial signatures (its box, opened): a
// valid one for each agreed item, in order.
func takePsigs(from envelope.Party, rest []byte, items []batchItem, signers []envelope.Party) error {
	pos := slices.Index(signers, from)
	for i := range items {
		bi := &items[i]
		if bi.err != nil {
			continue
		}
		if len(rest) < frost.PartialSigSize {
			return abortf(roundPsig, from, ErrProtocol, "too few partial signatures")
		}
		ps, err := frost.ParsePartialSig(rest[:frost.PartialSigSize])
		rest = rest[frost.PartialSigSize:]
		if err == nil {
			err = bi.sess.Verify(ps, pos)
		}
		if err != nil {
			return abortf(roundPsig, from, ErrBadPartialSig, "item %d, signer id %d", i, bi.ids[pos])
		}
		bi.psigs[pos] = ps
	}
	if len(rest) != 0 {
		return abortf(roundPsig, from, ErrProtocol, "too many partial signatures")
	}
	return nil
}

func results(items []batchItem) []BatchResult {
	out := make([]BatchResult, len(items))
	for i := range items {
		if items[i].err != nil {
			out[i].Err = items[i].err
			continue
		}
		out[i].Sig = items[i].sig
	}
	return out
}
