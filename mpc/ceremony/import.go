package ceremony

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/bip340"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/vss"
)

// Import rounds: the deal, then the certify rounds (certify.go).
const roundDeal uint8 = 1

// ImportLabel versions the import protocol inside every session id.
const ImportLabel = "quorumd/import/v2"

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
	// Dealer, for a recipient of an external dealer (a client dealing
	// itself, Deal), is that dealer's identity: not a party, but bound into
	// the session and the only sender of the deal. Zero: the dealer is one
	// of Others.
	Dealer envelope.Party

	// split lets this package's tests play a member that sends different
	// broadcasts to different parties, or to some only.
	split splitFunc
}

// KeyInfo is the public outcome of an import, the same at every party.
type KeyInfo struct {
	T, N       int
	Parties    []envelope.Party // sorted; index = BIP445 id
	PubShares  [][33]byte       // by id
	ThreshPK   [33]byte         // Q, compressed
	Transcript [32]byte
	// EqInput is what the certificate's signatures cover when they are
	// ChillDKG's (a keygen's eq_input); nil when they cover Transcript.
	EqInput []byte
}

// VerifyCertificate checks a success certificate for this key.
func (k *KeyInfo) VerifyCertificate(c Certificate) error {
	if k.EqInput != nil {
		return verifyChillCert(k.Parties, k.EqInput, c)
	}
	return c.Verify(k.Parties, k.Transcript)
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

// Import runs one party's side of the import ceremony v2 (DESIGN §3): the
// importer broadcasts one signed deal carrying the commitments and every
// party's share encrypted to it; each party verifies its share, derives the
// public shares and the threshold key, durably prepares (d.Prepare) and only
// then signs the transcript; the N signatures are the success certificate,
// recorded with d.Certified. The returned KeyInfo is public; the share is
// zeroed once prepared.
//
// On failure the error is an *AbortError: before this party's Prepare
// nothing was stored; after it, either d.Discard was called because this
// party never signed (so no certificate can exist), or the error wraps
// ErrPending and the prepared record stays for recovery (d.Refused noting
// a member that refused after this party signed).
func Import(ctx context.Context, p ImportParams, d Durable) (*KeyInfo, error) {
	if p.PrivateKey != nil {
		defer p.PrivateKey.Zero()
	}
	parties, err := importParties(p)
	if err != nil {
		return nil, err
	}
	t := p.Threshold
	session := importSession(p.Room, parties, t, p.Dealer)
	pt := newParty(p.Identity, envelope.KindImport, session, parties, p.Transport)
	if !p.Dealer.IsBroadcast() {
		// The dealer may post (its deal, a notice) but is not a party.
		pt.in = envelope.NewInbox(p.Identity, envelope.KindImport, session, append(slices.Clone(parties), p.Dealer)).WithChannels(pt.ch)
	}
	pt.split = p.split
	// The certificate's broadcast and the leave are off the answer's path.
	pt.lateTail = true
	defer pt.leaveLater(ctx)
	ks, rd, overlap, err := runDeal(ctx, pt, p, session)
	if err != nil {
		return nil, pt.fail(err)
	}
	e, _ := envelope.Unmarshal(rd.Deal)
	dealDigest := e.Digest()
	evidence := append(dealDigest[:], e.Sig[:]...)
	return prepareAndCertify(ctx, pt, ks, rd, d, evidence, func(m *envelope.Envelope, theirs []byte) *AbortError {
		return blameMismatch(m, theirs, dealDigest, e.From)
	}, overlap)
}

// blameMismatch explains a transcript signature over another transcript:
// the importer equivocated when the signer holds another deal the importer
// signed; otherwise the signer's transcript is its own doing.
func blameMismatch(e *envelope.Envelope, theirs []byte, ourDeal [32]byte, dealer envelope.Party) *AbortError {
	if len(theirs) == 32+64 {
		d, sig := [32]byte(theirs[:32]), [64]byte(theirs[32:])
		if d != ourDeal && envelope.VerifyDigest(dealer, d, sig) {
			return abortf(roundCertify, dealer, ErrEquivocation, "")
		}
	}
	return abortf(roundCertify, e.From, ErrMismatch, "transcript signature over another transcript")
}

func importParties(p ImportParams) ([]envelope.Party, error) {
	if p.Identity == nil || p.Transport == nil {
		return nil, &AbortError{Err: ErrInput, Detail: "identity and transport are required"}
	}
	return checkParties(append([]envelope.Party{p.Identity.Public()}, p.Others...), p.Threshold, p.Dealer)
}

// checkParties validates an import's parties (distinct valid keys, 1 ≤ t ≤
// N, an external dealer, if any, a valid key not among them) and returns
// them sorted.
func checkParties(parties []envelope.Party, t int, dealer envelope.Party) ([]envelope.Party, error) {
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
	if !dealer.IsBroadcast() {
		if _, err := envelope.ParseParty(dealer[:]); err != nil {
			return nil, &AbortError{Err: ErrInput, Detail: "dealer: " + err.Error()}
		}
		if seen[dealer] {
			return nil, &AbortError{Err: ErrInput, Detail: "the external dealer is also a party"}
		}
	}
	if n := len(parties); t < 1 || t > n || n > vss.MaxParticipants {
		return nil, &AbortError{Err: ErrInput, Detail: fmt.Sprintf("threshold %d with %d parties", t, n)}
	}
	parties = slices.Clone(parties)
	envelope.SortParties(parties)
	return parties, nil
}

// importSession is an import's session id; an external dealer's identity
// is bound into it, so its deal cannot be replayed as another's.
func importSession(room string, parties []envelope.Party, t int, dealer envelope.Party) [32]byte {
	var ctx []byte
	if !dealer.IsBroadcast() {
		ctx = dealer[:]
	}
	return envelope.SessionID(ImportLabel, room, parties, t, len(parties), ctx)
}

// runDeal runs the deal round: the importer deals and broadcasts; everyone
// else takes exactly one deal from one of the others and opens it.
// Deal payload: t (1 byte) ‖ C_0..C_{t−1} (33 bytes each) ‖ P_0..P_{n−1}
// (the public shares, 33 bytes each) ‖ one box per id (the share f(id+1)
// sealed to that party, the importer's own included, so any party can
// recover from any copy of the deal). The public shares let every
// recipient check them all at once (vss.VerifyPublicShares) rather than
// evaluate the commitments n times; deals without them (from before they
// were published, kept as recovery data) are still accepted.
//
// The returned overlap is work runDeal left running for the durable
// prepare to overlap (prepareAndCertify waits for it before this party
// signs): the importer's post of its deal, a recipient's check of the deal
// against its commitments. Its failure means no signature was ever made.
func runDeal(ctx context.Context, pt *party, p ImportParams, session [32]byte) (*KeyShare, *RecoveryData, func() error, error) {
	n, t := len(pt.members), p.Threshold
	rd := &RecoveryData{Kind: envelope.KindImport, Room: p.Room, T: t, Parties: pt.members}
	if p.PrivateKey == nil {
		recvFirst(pt.tr) // nothing is sent before the deal arrives
		from := pt.others()
		if !p.Dealer.IsBroadcast() {
			from = []envelope.Party{p.Dealer}
		}
		got, err := pt.collect(ctx, roundDeal, from, 1, nil)
		if err != nil {
			return nil, nil, nil, err
		}
		var e *envelope.Envelope
		for _, g := range got {
			if g != nil {
				e = g
			}
		}
		ks, check, err := openDealUnchecked(p.Identity, session, pt.members, t, e)
		if err != nil {
			return nil, nil, nil, err
		}
		rd.Deal = e.Marshal()
		return ks, rd, goOverlap(check), nil
	}
	// The seat claim's round trip overlaps the dealing.
	defer claimAhead(ctx, pt.tr)()
	rnd := p.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	d, err := vss.Deal(p.PrivateKey, t, n, rnd)
	p.PrivateKey.Zero()
	if err != nil {
		return nil, nil, nil, abortf(roundDeal, envelope.Broadcast, ErrInput, "dealing: %v", err)
	}
	defer d.Zero()
	pubs, err := vss.PublicShares(d.Commitments, n)
	if err != nil {
		return nil, nil, nil, abortf(roundDeal, envelope.Broadcast, ErrInput, "dealing: %v", err)
	}
	payload, err := dealPayload(p.Identity, session, pt.members, d, pubs)
	if err != nil {
		return nil, nil, nil, abortf(roundDeal, envelope.Broadcast, ErrInput, "sealing shares: %v", err)
	}
	raw, post, err := pt.sealPostAhead(ctx, roundDeal, payload)
	if err != nil {
		return nil, nil, nil, err
	}
	rd.Deal = raw
	e, err := envelope.Unmarshal(raw)
	if err != nil {
		_ = post()
		return nil, nil, nil, abortf(roundDeal, envelope.Broadcast, ErrProtocol, "own deal: %v", err)
	}
	ks, err := keyShare(session, pt.members, t, e, d.Commitments, pubs)
	if err != nil {
		_ = post()
		return nil, nil, nil, err
	}
	ks.ID = pt.index[pt.me]
	ks.Share = d.Shares[ks.ID]
	return ks, rd, post, nil
}

// sealPostAhead seals a broadcast of round and posts it in the background
// (the importer's deal: its own durable prepare needs only the envelope,
// not the relay's answer); post waits for the post's outcome. A test's
// split sender posts at once.
func (p *party) sealPostAhead(ctx context.Context, round uint8, payload []byte) (raw []byte, post func() error, err error) {
	if p.split != nil {
		raw, err = p.sealSend(ctx, round, envelope.Broadcast, payload, false)
		return raw, func() error { return nil }, err
	}
	raw, err = p.out.Seal(round, envelope.Broadcast, payload, false)
	if err != nil {
		return nil, nil, abortf(round, envelope.Broadcast, ErrProtocol, "sealing: %v", err)
	}
	return raw, goOverlap(func() error {
		if err := p.tr.Send(ctx, envelope.Broadcast, raw); err != nil {
			return sendAbort(ctx, round, err)
		}
		return nil
	}), nil
}

// goOverlap runs f in the background and returns what waits for its error.
func goOverlap(f func() error) func() error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	return func() error { return <-done }
}

// shareBoxAD binds a share box to its recipient's id.
func shareBoxAD(id int) []byte { return []byte{'s', byte(id >> 8), byte(id)} }

// dealPayload encodes d's deal (see runDeal); pubs are d's public shares,
// computed here when nil.
func dealPayload(id *envelope.Identity, session [32]byte, members []envelope.Party, d *vss.Dealing, pubs []*btcec.PublicKey) ([]byte, error) {
	c := d.Commitments
	if pubs == nil {
		var err error
		if pubs, err = vss.PublicShares(c, len(members)); err != nil {
			return nil, err
		}
	}
	b := make([]byte, 0, 1+33*len(c)+len(members)*(33+32+envelope.BoxOverhead))
	b = append(b, byte(len(c)))
	for _, raw := range c.Serialize() {
		b = append(b, raw...)
	}
	for _, P := range pubs {
		b = append(b, P.SerializeCompressed()...)
	}
	for i, m := range members {
		sb := d.Shares[i].Bytes()
		box, err := envelope.SealBox(id, nil, m, session, shareBoxAD(i), sb[:])
		clear(sb[:])
		if err != nil {
			return nil, err
		}
		b = append(b, box...)
	}
	return b, nil
}

var errDealFormat = errors.New("malformed deal")

// openDeal checks a deal envelope (already authenticated as the dealer's)
// and opens this party's share: exactly t commitments, the public shares
// they commit to, a box per party, the share matching its public share.
// Every error names the dealer.
func openDeal(id *envelope.Identity, session [32]byte, members []envelope.Party, t int, e *envelope.Envelope) (*KeyShare, error) {
	ks, check, err := openDealUnchecked(id, session, members, t, e)
	if err != nil {
		return nil, err
	}
	if err := check(); err != nil {
		ks.Share.Zero()
		return nil, err
	}
	return ks, nil
}

// openDealUnchecked is openDeal's parsing and opening; check then does its
// elliptic-curve checks (public shares against commitments, the share
// against its public share), which only read ks: the caller may run them
// alongside the durable prepare, before this party signs anything. On a
// check's failure the caller zeroes ks.Share.
func openDealUnchecked(id *envelope.Identity, session [32]byte, members []envelope.Party, t int, e *envelope.Envelope) (ks *KeyShare, check func() error, err error) {
	dealer := e.From
	fail := func(err error, format string, args ...any) (*KeyShare, func() error, error) {
		return nil, nil, abortf(roundDeal, dealer, err, format, args...)
	}
	if e.Round != roundDeal || !e.To.IsBroadcast() || e.Flags&envelope.FlagEncrypted != 0 {
		return fail(ErrProtocol, "deal is not a plain broadcast of round %d", roundDeal)
	}
	b := e.Payload
	if len(b) < 1 || int(b[0]) != t {
		return fail(ErrProtocol, "deal: %v: commitment count is not the threshold %d", vss.ErrInvalidCommitment, t)
	}
	n, boxSize := len(members), 32+envelope.BoxOverhead
	published := len(b) == 1+33*t+33*n+n*boxSize
	if !published && len(b) != 1+33*t+n*boxSize {
		return fail(ErrProtocol, "deal: %v: %d bytes", errDealFormat, len(b))
	}
	raw := make([][]byte, t)
	for i := range t {
		raw[i] = b[1+33*i : 1+33*(i+1)]
	}
	c, err := vss.ParseCommitments(raw, t)
	if err != nil {
		return fail(ErrProtocol, "deal: %v", err)
	}
	off := 1 + 33*t
	var pubs []*btcec.PublicKey
	if published {
		pubs = make([]*btcec.PublicKey, n)
		for j := range n {
			if pubs[j], err = btcec.ParsePubKey(b[off+33*j : off+33*(j+1)]); err != nil {
				return fail(ErrProtocol, "deal: public share %d: %v", j, err)
			}
		}
		off += 33 * n
	} else if pubs, err = vss.PublicShares(c, n); err != nil {
		return fail(ErrProtocol, "public shares: %v", err)
	}
	myID := slices.Index(members, id.Public())
	ks, err = keyShare(session, members, t, e, c, pubs)
	if err != nil {
		return nil, nil, err
	}
	ks.ID = myID
	off += myID * boxSize
	sb, err := envelope.OpenBox(id, nil, dealer, session, shareBoxAD(myID), b[off:off+boxSize])
	if err != nil {
		return fail(ErrBadShare, "share for id %d does not open", myID)
	}
	overflow := ks.Share.SetByteSlice(sb)
	clear(sb)
	if overflow || ks.Share.IsZero() {
		ks.Share.Zero()
		return fail(ErrBadShare, "share for id %d out of range", myID)
	}
	check = func() error {
		if published {
			if err := vss.VerifyPublicShares(c, pubs); err != nil {
				return abortf(roundDeal, dealer, ErrProtocol, "deal: %v", err)
			}
		}
		// pubs[myID] = Σ C_k (myID+1)^k: VerifyShare's check, without a
		// second evaluation of the commitments.
		if err := vss.VerifySharePublic(pubs[myID], myID, &ks.Share); err != nil {
			return abortf(roundDeal, dealer, ErrBadShare, "share for id %d", myID)
		}
		return nil
	}
	return ks, check, nil
}

// keyShare derives a deal's public outcome from its commitments and their
// public shares (checked or computed by the caller): threshold key and
// transcript (which covers the whole signed deal, so parties that certify
// one transcript hold byte-identical recovery data).
func keyShare(session [32]byte, members []envelope.Party, t int, e *envelope.Envelope, c vss.Commitments, pubs []*btcec.PublicKey) (*KeyShare, error) {
	n, dealer := len(members), e.From
	q, err := vss.ThresholdKey(c)
	if err != nil {
		return nil, abortf(roundDeal, dealer, ErrProtocol, "threshold key: %v", err)
	}
	ks := &KeyShare{}
	ks.T, ks.N, ks.Parties = t, n, members
	ks.PubShares = make([][33]byte, n)
	for i, P := range pubs {
		ks.PubShares[i] = [33]byte(P.SerializeCompressed())
	}
	ks.ThreshPK = [33]byte(q.SerializeCompressed())
	ks.Transcript = transcriptHash(session, e.Digest(), ks.PubShares, ks.ThreshPK)
	return ks, nil
}

// recoverImport re-opens an import's deal from recovery data: the deal must
// be the signed broadcast of one of the parties, or of the external dealer
// bound into the session the data names, and this identity one of the
// parties.
func recoverImport(id *envelope.Identity, rd *RecoveryData) (*KeyShare, error) {
	n := len(rd.Parties)
	if rd.T < 1 || rd.T > n || !slices.IsSortedFunc(rd.Parties, compareParties) {
		return nil, fmt.Errorf("%w: %d-of-%d, parties not sorted", ErrRecovery, rd.T, n)
	}
	if !slices.Contains(rd.Parties, id.Public()) {
		return nil, fmt.Errorf("%w: %w", ErrRecovery, ErrNotAParty)
	}
	e, err := envelope.Verify(rd.Deal)
	if err != nil {
		return nil, fmt.Errorf("%w: deal: %w", ErrRecovery, err)
	}
	// A deal from outside the parties is an external dealer's, whose
	// identity the session binds.
	var dealer envelope.Party
	if !slices.Contains(rd.Parties, e.From) {
		dealer = e.From
	}
	session := importSession(rd.Room, rd.Parties, rd.T, dealer)
	if e.Session != session || e.Kind != envelope.KindImport {
		return nil, fmt.Errorf("%w: the deal belongs to another session", ErrRecovery)
	}
	ks, err := openDeal(id, session, rd.Parties, rd.T, e)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRecovery, err)
	}
	return ks, nil
}

func compareParties(a, b envelope.Party) int { return bytes.Compare(a[:], b[:]) }

func transcriptHash(session, deal [32]byte, pubs [][33]byte, q [33]byte) [32]byte {
	parts := [][]byte{session[:], deal[:]}
	for i := range pubs {
		parts = append(parts, pubs[i][:])
	}
	parts = append(parts, q[:])
	return bip340.TaggedHash("quorumd/import/transcript/v2", parts...)
}
