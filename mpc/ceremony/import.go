package ceremony

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/bip340"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/vss"
)

// Import rounds.
const (
	roundDeal    uint8 = 1
	roundConfirm uint8 = 2
	roundReady   uint8 = 3
)

// ImportLabel versions the import protocol inside every session id.
const ImportLabel = "quorumd/import/v1"

// ImportParams are one party's inputs to an import ceremony.
type ImportParams struct {
	Room      string
	Identity  *envelope.Identity
	Others    []envelope.Party // the other parties' keygen_ids
	Threshold int
	Transport Transport
	// PrivateKey is set for the importer only. Import zeroes it once dealt.
	PrivateKey *btcec.ModNScalar
	// Rand is the importer's coefficient source; crypto/rand when nil.
	Rand io.Reader

	// tamperDeal lets this package's tests play a cheating importer.
	tamperDeal func(session [32]byte, id int, payload []byte) []byte
}

// KeyInfo is the public outcome of an import, the same at every party.
type KeyInfo struct {
	T, N       int
	Parties    []envelope.Party // sorted; index = BIP445 id
	PubShares  [][33]byte       // by id
	ThreshPK   [33]byte         // Q, compressed
	Transcript [32]byte
}

// XOnly returns the BIP340 public key of the threshold key.
func (k *KeyInfo) XOnly() [32]byte { return [32]byte(k.ThreshPK[1:]) }

// IDOf returns p's BIP445 id, or -1.
func (k *KeyInfo) IDOf(p envelope.Party) int {
	for i, q := range k.Parties {
		if q == p {
			return i
		}
	}
	return -1
}

// KeyShare is a party's outcome: the public KeyInfo and its secret share.
type KeyShare struct {
	KeyInfo
	ID    int
	Share btcec.ModNScalar // secret: f(ID+1)
}

// CommitFunc persists a confirmed share (in quorumd: seal it under the HSM
// and write the key record atomically). It is called at most once, and only
// after every party confirmed the same transcript.
type CommitFunc func(*KeyShare) error

// Import runs one party's side of the import ceremony (DESIGN §3): the
// importer deals x with Feldman VSS; every party verifies its share, derives
// the public shares and the threshold key, and broadcasts a signed
// transcript hash; commit runs only when all N hashes match. The returned
// KeyInfo is public; the share is zeroed after commit returns. On failure
// the error is an *AbortError and commit was not called.
func Import(ctx context.Context, p ImportParams, commit CommitFunc) (*KeyInfo, error) {
	if p.PrivateKey != nil {
		defer p.PrivateKey.Zero()
	}
	parties, err := importParties(p)
	if err != nil {
		return nil, err
	}
	n, t := len(parties), p.Threshold
	session := envelope.SessionID(ImportLabel, p.Room, parties, t, n, nil)
	pt := newParty(p.Identity, envelope.KindImport, session, parties, p.Transport)
	ks, err := runImport(ctx, pt, p, session)
	if err != nil {
		return nil, pt.fail(err)
	}
	defer ks.Share.Zero()
	if err := commit(ks); err != nil {
		return nil, &AbortError{Round: roundReady, Err: fmt.Errorf("%w: %w", ErrCommit, err)}
	}
	info := ks.KeyInfo
	return &info, nil
}

func importParties(p ImportParams) ([]envelope.Party, error) {
	if p.Identity == nil || p.Transport == nil {
		return nil, &AbortError{Err: ErrInput, Detail: "identity and transport are required"}
	}
	me := p.Identity.Public()
	parties := append([]envelope.Party{me}, p.Others...)
	seen := map[envelope.Party]bool{}
	for _, q := range parties {
		if seen[q] {
			return nil, &AbortError{Err: ErrInput, Detail: "duplicate party"}
		}
		if _, err := envelope.ParseParty(q[:]); err != nil {
			return nil, &AbortError{Err: ErrInput, Detail: err.Error()}
		}
		seen[q] = true
	}
	if n := len(parties); p.Threshold < 1 || p.Threshold > n || n > vss.MaxParticipants {
		return nil, &AbortError{Err: ErrInput, Detail: fmt.Sprintf("threshold %d with %d parties", p.Threshold, n)}
	}
	envelope.SortParties(parties)
	return parties, nil
}

// dealPayload: t (1 byte) ‖ C_0..C_{t−1} (33 bytes each) ‖ commitment
// signature (64) ‖ share (32). Sent encrypted to its recipient.
func runImport(ctx context.Context, pt *party, p ImportParams, session [32]byte) (*KeyShare, error) {
	n, t := len(pt.members), p.Threshold
	myID := pt.index[pt.me]
	ks := &KeyShare{ID: myID}
	var commitments vss.Commitments
	var commitSig [64]byte
	var dealer envelope.Party

	if p.PrivateKey != nil {
		dealer = pt.me
		rnd := p.Rand
		if rnd == nil {
			rnd = rand.Reader
		}
		d, err := vss.Deal(p.PrivateKey, t, n, rnd)
		p.PrivateKey.Zero()
		if err != nil {
			return nil, abortf(roundDeal, envelope.Broadcast, ErrInput, "dealing: %v", err)
		}
		defer d.Zero()
		commitments = d.Commitments
		ch := commitmentsHash(session, commitments)
		if commitSig, err = signHash(p.Identity, ch); err != nil {
			return nil, err
		}
		// Each deal costs an ECDH and a signature, and the recipients wait
		// for theirs: seal and post them concurrently.
		errs := make([]error, n)
		var wg sync.WaitGroup
		for id, to := range pt.members {
			if id == myID {
				continue
			}
			wg.Go(func() {
				payload := dealPayload(commitments, commitSig, &d.Shares[id])
				if p.tamperDeal != nil {
					payload = p.tamperDeal(session, id, payload)
				}
				errs[id] = pt.send(ctx, roundDeal, to, payload, true)
				clear(payload)
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
		ks.Share = d.Shares[myID]
	} else {
		got, err := pt.collect(ctx, roundDeal, pt.others(), 1, nil)
		if err != nil {
			return nil, err
		}
		var e *envelope.Envelope
		for _, g := range got {
			if g != nil {
				e = g
			}
		}
		dealer = e.From
		commitments, commitSig, err = parseDeal(e.Payload, t, &ks.Share)
		clear(e.Payload)
		if err != nil {
			return nil, abortf(roundDeal, dealer, ErrProtocol, "deal: %v", err)
		}
		if !verifyHash(dealer, commitmentsHash(session, commitments), commitSig) {
			return nil, abortf(roundDeal, dealer, ErrProtocol, "commitments not signed by the importer")
		}
		if err := vss.VerifyShare(commitments, myID, &ks.Share); err != nil {
			ks.Share.Zero()
			return nil, abortf(roundDeal, dealer, ErrBadShare, "share for id %d", myID)
		}
	}

	pubs, err := vss.PublicShares(commitments, n)
	if err != nil {
		ks.Share.Zero()
		return nil, abortf(roundDeal, dealer, ErrProtocol, "public shares: %v", err)
	}
	q, err := vss.ThresholdKey(commitments)
	if err != nil {
		ks.Share.Zero()
		return nil, abortf(roundDeal, dealer, ErrProtocol, "threshold key: %v", err)
	}
	if err := vss.CheckPublicShares(pubs, t, q); err != nil {
		ks.Share.Zero()
		return nil, abortf(roundDeal, dealer, ErrProtocol, "public shares inconsistent: %v", err)
	}
	ks.T, ks.N, ks.Parties = t, n, pt.members
	ks.PubShares = make([][33]byte, n)
	for i, P := range pubs {
		ks.PubShares[i] = [33]byte(P.SerializeCompressed())
	}
	ks.ThreshPK = [33]byte(q.SerializeCompressed())
	ks.Transcript = transcriptHash(session, commitments, ks.PubShares, ks.ThreshPK)

	ch := commitmentsHash(session, commitments)
	confirm := make([]byte, 0, 128)
	confirm = append(append(append(confirm, ks.Transcript[:]...), ch[:]...), commitSig[:]...)
	if err := pt.send(ctx, roundConfirm, envelope.Broadcast, confirm, false); err != nil {
		ks.Share.Zero()
		return nil, err
	}
	_, err = pt.collect(ctx, roundConfirm, pt.others(), n-1, func(e *envelope.Envelope) error {
		return checkConfirm(e, ks.Transcript, ch, dealer)
	})
	if err != nil {
		ks.Share.Zero()
		return nil, err
	}
	// Ready: "I hold all N matching confirmations". Committing only after
	// every party said so means a party whose own messages never reach the
	// others cannot commit alone; see docs/protocol.md for what remains.
	if err := pt.send(ctx, roundReady, envelope.Broadcast, ks.Transcript[:], false); err != nil {
		ks.Share.Zero()
		return nil, err
	}
	_, err = pt.collect(ctx, roundReady, pt.others(), n-1, func(e *envelope.Envelope) error {
		if !bytes.Equal(e.Payload, ks.Transcript[:]) {
			return abortf(roundReady, e.From, ErrMismatch, "ready for another transcript")
		}
		return nil
	})
	if err != nil {
		ks.Share.Zero()
		return nil, err
	}
	return ks, nil
}

// checkConfirm compares another party's confirmation with ours and, on a
// mismatch, decides who is to blame: the importer when the other party holds
// commitments the importer signed that differ from ours (equivocation), the
// confirming party otherwise.
func checkConfirm(e *envelope.Envelope, transcript, ch [32]byte, dealer envelope.Party) error {
	if len(e.Payload) != 128 {
		return abortf(roundConfirm, e.From, ErrProtocol, "confirmation of %d bytes", len(e.Payload))
	}
	if [32]byte(e.Payload[:32]) == transcript {
		return nil
	}
	theirCH, theirSig := [32]byte(e.Payload[32:64]), [64]byte(e.Payload[64:128])
	if theirCH != ch && verifyHash(dealer, theirCH, theirSig) {
		return abortf(roundConfirm, dealer, ErrEquivocation, "")
	}
	return abortf(roundConfirm, e.From, ErrMismatch, "confirmation differs from ours")
}

func dealPayload(c vss.Commitments, sig [64]byte, share *btcec.ModNScalar) []byte {
	b := make([]byte, 0, 1+33*len(c)+64+32)
	b = append(b, byte(len(c)))
	for _, raw := range c.Serialize() {
		b = append(b, raw...)
	}
	b = append(b, sig[:]...)
	sb := share.Bytes()
	b = append(b, sb[:]...)
	clear(sb[:])
	return b
}

var errDealFormat = errors.New("malformed deal")

// parseDeal decodes a deal, rejecting a commitment vector whose length is not
// t. The share is written to share (secret).
func parseDeal(b []byte, t int, share *btcec.ModNScalar) (vss.Commitments, [64]byte, error) {
	var sig [64]byte
	if len(b) < 1 {
		return nil, sig, errDealFormat
	}
	k := int(b[0])
	if k != t {
		return nil, sig, fmt.Errorf("%w: %d commitments, threshold is %d", vss.ErrInvalidCommitment, k, t)
	}
	if len(b) != 1+33*k+64+32 {
		return nil, sig, fmt.Errorf("%w: %d bytes", errDealFormat, len(b))
	}
	raw := make([][]byte, k)
	for i := range k {
		raw[i] = b[1+33*i : 1+33*(i+1)]
	}
	c, err := vss.ParseCommitments(raw, t)
	if err != nil {
		return nil, sig, err
	}
	off := 1 + 33*k
	copy(sig[:], b[off:off+64])
	if overflow := share.SetByteSlice(b[off+64:]); overflow || share.IsZero() {
		share.Zero()
		return nil, sig, fmt.Errorf("%w: share out of range", errDealFormat)
	}
	return c, sig, nil
}

func commitmentsHash(session [32]byte, c vss.Commitments) [32]byte {
	parts := [][]byte{session[:]}
	parts = append(parts, c.Serialize()...)
	return bip340.TaggedHash("quorumd/import/commitments/v1", parts...)
}

func transcriptHash(session [32]byte, c vss.Commitments, pubs [][33]byte, q [33]byte) [32]byte {
	parts := [][]byte{session[:], {byte(len(c))}}
	parts = append(parts, c.Serialize()...)
	for i := range pubs {
		parts = append(parts, pubs[i][:])
	}
	parts = append(parts, q[:])
	return bip340.TaggedHash("quorumd/import/transcript/v1", parts...)
}

func signHash(id *envelope.Identity, h [32]byte) ([64]byte, error) {
	var aux [32]byte
	if _, err := rand.Read(aux[:]); err != nil {
		return [64]byte{}, abortf(roundDeal, envelope.Broadcast, ErrInput, "randomness: %v", err)
	}
	sig, err := id.Sign(h[:], aux)
	if err != nil {
		return sig, abortf(roundDeal, envelope.Broadcast, ErrInput, "signing commitments: %v", err)
	}
	return sig, nil
}

func verifyHash(signer envelope.Party, h [32]byte, sig [64]byte) bool {
	return bip340.Verify(signer[1:], h[:], sig[:]) == nil
}
