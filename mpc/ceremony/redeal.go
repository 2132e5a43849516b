package ceremony

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/bip340"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/vss"
)

// redeal is the machinery refresh and reshare share (DESIGN §4a): several
// dealers each broadcast one signed deal carrying the old key as they know
// it (the "old-key context"), Feldman commitments, and a share box for
// every party of the new key; every party checks every deal as it arrives
// (culprit: its dealer), sums its shares, derives and checks the new public
// shares against the unchanged key, then prepare-then-certify as import.
//
// The room is exactly the new key's party set; the dealers are the old
// holders among it. The transcript binds the old-key context (and with it
// the old generation's transcript), every deal, the new public shares and
// the key: a new generation certifies only if all its parties saw the same
// old key and the same deals.
type redeal struct {
	kind    uint8 // envelope.KindRefresh or KindReshare
	label   string
	zero    bool // refresh: dealers deal sharings of zero
	room    string
	t       int              // the new threshold
	parties []envelope.Party // the new key's parties, sorted (the room)
	session [32]byte

	old      *KeyInfo          // the old key; nil for a new party until the first deal
	oldCtx   []byte            // old-key context as this party knows it
	share    *btcec.ModNScalar // this party's old share (holders), not modified
	expectPK *[32]byte         // a new party's optional pin of the key
	rand     io.Reader

	tamper func(d *dealing) // tests: a cheating dealer

	// opened holds the sub-shares checked as their deals arrived, for
	// combine (secret; combine zeroes them).
	opened map[envelope.Party]*btcec.ModNScalar
	// ch is the running ceremony's ECDH secrets (nil outside run): a peer's
	// box to this party and this party's box to it share one ECDH.
	ch *envelope.Channels
}

// dealing is one dealer's deal before it is sealed (tests may tamper).
type dealing struct {
	ctx         []byte
	commitments [][]byte
	shares      []btcec.ModNScalar // by new id; secret
}

// oldContext encodes the old key as dealers present it: t ‖ n ‖ parties ‖
// public shares ‖ key ‖ transcript (the old generation).
func oldContext(k *KeyInfo) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(k.T))
	b = binary.BigEndian.AppendUint16(b, uint16(k.N))
	for _, p := range k.Parties {
		b = append(b, p[:]...)
	}
	for _, p := range k.PubShares {
		b = append(b, p[:]...)
	}
	b = append(b, k.ThreshPK[:]...)
	return append(b, k.Transcript[:]...)
}

// parseOldContext decodes and checks an old-key context: sorted distinct
// parties, and public shares that are a degree-(t−1) sharing of the key.
func parseOldContext(b []byte) (*KeyInfo, error) {
	if len(b) < 4 {
		return nil, errDealFormat
	}
	t, n := int(binary.BigEndian.Uint16(b)), int(binary.BigEndian.Uint16(b[2:]))
	if n < 1 || t < 1 || t > n || n > vss.MaxParticipants || len(b) != 4+n*66+33+32 {
		return nil, fmt.Errorf("%w: old key %d-of-%d in %d bytes", errDealFormat, t, n, len(b))
	}
	k := &KeyInfo{T: t, N: n}
	off := 4
	for range n {
		p, err := envelope.ParseParty(b[off : off+33])
		if err != nil {
			return nil, err
		}
		k.Parties, off = append(k.Parties, p), off+33
	}
	if !slices.IsSortedFunc(k.Parties, compareParties) || len(slices.CompactFunc(slices.Clone(k.Parties), func(a, b envelope.Party) bool { return a == b })) != n {
		return nil, fmt.Errorf("%w: old parties not sorted and distinct", errDealFormat)
	}
	pubs := make([]*btcec.PublicKey, n)
	for j := range n {
		k.PubShares = append(k.PubShares, [33]byte(b[off:off+33]))
		var err error
		if pubs[j], err = btcec.ParsePubKey(b[off : off+33]); err != nil {
			return nil, fmt.Errorf("old public share %d: %w", j, err)
		}
		off += 33
	}
	k.ThreshPK = [33]byte(b[off : off+33])
	q, err := btcec.ParsePubKey(k.ThreshPK[:])
	if err != nil {
		return nil, fmt.Errorf("old key: %w", err)
	}
	k.Transcript = [32]byte(b[off+33:])
	if err := vss.CheckPublicShares(pubs, t, q); err != nil {
		return nil, fmt.Errorf("old public shares: %w", err)
	}
	return k, nil
}

// dealers returns the dealers of a redeal with old key k: the old holders
// in the room, in the order of the new ids.
func (r *redeal) dealers(k *KeyInfo) []envelope.Party {
	if r.zero {
		return r.parties
	}
	var out []envelope.Party
	for _, p := range r.parties {
		if k.IDOf(p) >= 0 {
			out = append(out, p)
		}
	}
	return out
}

// oldIDs returns the dealers' ids in the old key.
func oldIDs(k *KeyInfo, dealers []envelope.Party) []int {
	ids := make([]int, len(dealers))
	for i, d := range dealers {
		ids[i] = k.IDOf(d)
	}
	return ids
}

// run is one party's whole redeal; see Refresh and Reshare.
func (r *redeal) run(ctx context.Context, id *envelope.Identity, tr Transport, d Durable, split splitFunc) (*KeyInfo, error) {
	pt := newParty(id, r.kind, r.session, r.parties, tr)
	r.ch = pt.ch
	pt.split = split
	// The certificate's broadcast and the leave are off the answer's path.
	pt.lateTail = true
	defer pt.leaveLater(ctx)
	ks, rd, err := r.deal(ctx, pt)
	if err != nil {
		return nil, pt.fail(err)
	}
	return prepareAndCertify(ctx, pt, ks, rd, d, dealEvidence(rd), func(m *envelope.Envelope, theirs []byte) *AbortError {
		return blameDeals(m, theirs, rd)
	}, nil)
}

// deal runs the deal round: dealers deal and broadcast; everyone collects
// and checks every other dealer's deal and derives the new key share.
func (r *redeal) deal(ctx context.Context, pt *party) (*KeyShare, *RecoveryData, error) {
	var own []byte
	if r.old != nil && r.old.IDOf(pt.me) >= 0 {
		raw, err := r.dealOwn(ctx, pt)
		if err != nil {
			return nil, nil, err
		}
		own = raw
	}
	deals := map[envelope.Party]*envelope.Envelope{}
	if own != nil {
		e, _ := envelope.Unmarshal(own)
		deals[pt.me] = e
	}
	r.opened = map[envelope.Party]*btcec.ModNScalar{}
	defer func() {
		for _, s := range r.opened {
			s.Zero()
		}
	}()
	check := func(e *envelope.Envelope) error {
		s, err := r.checkDeal(pt.id, e)
		if err == nil {
			r.opened[e.From] = s
		}
		return err
	}
	if r.old == nil {
		// A new party learns the old key, and so the dealers, from the
		// first deal; every later deal must present the same.
		got, err := pt.collect(ctx, roundDeal, pt.others(), 1, nil)
		if err != nil {
			return nil, nil, err
		}
		for _, e := range got {
			if e != nil {
				if err := r.adoptContext(e); err != nil {
					return nil, nil, err
				}
				if err := check(e); err != nil {
					return nil, nil, err
				}
				deals[e.From] = e
			}
		}
	}
	dealers := r.dealers(r.old)
	if len(dealers) < r.old.T {
		return nil, nil, abortf(roundDeal, envelope.Broadcast, ErrInput,
			"%d old holders in the room, the old key needs %d", len(dealers), r.old.T)
	}
	var rest []envelope.Party
	for _, p := range dealers {
		if deals[p] == nil {
			rest = append(rest, p)
		}
	}
	if len(rest) > 0 {
		got, err := pt.collect(ctx, roundDeal, rest, len(rest), check)
		if err != nil {
			return nil, nil, err
		}
		for i, e := range got {
			deals[rest[i]] = e
		}
	}
	ordered := make([]*envelope.Envelope, len(dealers))
	for i, p := range dealers {
		ordered[i] = deals[p]
	}
	ks, err := r.combine(pt.id, ordered)
	if err != nil {
		return nil, nil, err
	}
	rd := &RecoveryData{Kind: r.kind, Room: r.room, T: r.t, Parties: r.parties, Deal: packDeals(ordered)}
	return ks, rd, nil
}

// adoptContext is a new party's acceptance of the old key from a deal.
func (r *redeal) adoptContext(e *envelope.Envelope) error {
	c, _, _, err := splitDeal(e.Payload)
	if err != nil {
		return abortf(roundDeal, e.From, ErrProtocol, "deal: %v", err)
	}
	k, err := parseOldContext(c)
	if err != nil {
		return abortf(roundDeal, e.From, ErrProtocol, "deal: %v", err)
	}
	if k.IDOf(e.From) < 0 {
		return abortf(roundDeal, e.From, ErrProtocol, "deal from a party that is not a holder of the key it presents")
	}
	if r.expectPK != nil && k.XOnly() != *r.expectPK {
		return abortf(roundDeal, e.From, ErrOldKey, "the dealer presents key %x, not the expected %x", k.XOnly(), *r.expectPK)
	}
	r.old, r.oldCtx = k, c
	return nil
}

// dealOwn deals this holder's contribution and broadcasts it.
func (r *redeal) dealOwn(ctx context.Context, pt *party) ([]byte, error) {
	n := len(r.parties)
	rnd := r.rand
	if rnd == nil {
		rnd = rand.Reader
	}
	var d *vss.Dealing
	var err error
	if r.zero {
		d, err = vss.DealZero(r.t, n, rnd)
	} else {
		dealers := r.dealers(r.old)
		var l *btcec.ModNScalar
		if l, err = vss.Lagrange(oldIDs(r.old, dealers), r.old.IDOf(pt.me)); err == nil {
			d, err = vss.DealSubShares(r.share, l, r.t, n, rnd)
		}
	}
	if err != nil {
		return nil, abortf(roundDeal, envelope.Broadcast, ErrInput, "dealing: %v", err)
	}
	defer d.Zero()
	dl := &dealing{ctx: r.oldCtx, commitments: d.Commitments.Serialize(), shares: d.Shares}
	if r.tamper != nil {
		r.tamper(dl)
	}
	payload, err := dealingPayload(pt.id, pt.ch, r.session, r.parties, dl)
	if err != nil {
		return nil, abortf(roundDeal, envelope.Broadcast, ErrInput, "sealing shares: %v", err)
	}
	return pt.sealSend(ctx, roundDeal, envelope.Broadcast, payload, false)
}

// Deal payload: context length (4) ‖ old-key context ‖ commitment count (1)
// ‖ commitments (33 each) ‖ one share box per new id.
func dealingPayload(id *envelope.Identity, ch *envelope.Channels, session [32]byte, parties []envelope.Party, d *dealing) ([]byte, error) {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(d.ctx)))
	b = append(b, d.ctx...)
	b = append(b, byte(len(d.commitments)))
	for _, c := range d.commitments {
		b = append(b, c...)
	}
	for i, m := range parties {
		sb := d.shares[i].Bytes()
		box, err := envelope.SealBox(id, ch, m, session, shareBoxAD(i), sb[:])
		clear(sb[:])
		if err != nil {
			return nil, err
		}
		b = append(b, box...)
	}
	return b, nil
}

// splitDeal cuts a deal payload into context, raw commitments and boxes.
func splitDeal(b []byte) (ctx []byte, commitments [][]byte, boxes []byte, err error) {
	if len(b) < 5 {
		return nil, nil, nil, errDealFormat
	}
	cl := int(binary.BigEndian.Uint32(b))
	if cl > len(b)-5 {
		return nil, nil, nil, errDealFormat
	}
	ctx, b = b[4:4+cl], b[4+cl:]
	nc := int(b[0])
	b = b[1:]
	if len(b) < 33*nc {
		return nil, nil, nil, errDealFormat
	}
	for k := range nc {
		commitments = append(commitments, b[33*k:33*(k+1)])
	}
	return ctx, commitments, b[33*nc:], nil
}

// checkDeal checks one dealer's deal against the agreed old key and opens
// this party's share of it. Every failure names the dealer.
func (r *redeal) checkDeal(id *envelope.Identity, e *envelope.Envelope) (*btcec.ModNScalar, error) {
	dealer := e.From
	fail := func(err error, format string, args ...any) (*btcec.ModNScalar, error) {
		return nil, abortf(roundDeal, dealer, err, format, args...)
	}
	if e.Round != roundDeal || !e.To.IsBroadcast() || e.Flags&envelope.FlagEncrypted != 0 {
		return fail(ErrProtocol, "deal is not a plain broadcast of round %d", roundDeal)
	}
	c, raw, boxes, err := splitDeal(e.Payload)
	if err != nil {
		return fail(ErrProtocol, "deal: %v", err)
	}
	if !bytes.Equal(c, r.oldCtx) {
		return fail(ErrOldKey, "the dealer presents another old key (parties, public shares, key or generation) than %s",
			map[bool]string{true: "this party holds", false: "the first dealer presented"}[r.share != nil])
	}
	old := r.old
	oldID := old.IDOf(dealer)
	if oldID < 0 {
		return fail(ErrProtocol, "deal from a party that holds no share of the old key")
	}
	boxSize := 32 + envelope.BoxOverhead
	if len(boxes) != len(r.parties)*boxSize {
		return fail(ErrProtocol, "deal: %v: %d box bytes", errDealFormat, len(boxes))
	}
	var comm vss.Commitments
	if r.zero {
		comm, err = vss.ParseZeroCommitments(raw, r.t)
	} else {
		comm, err = vss.ParseCommitments(raw, r.t)
	}
	if err != nil {
		return fail(ErrProtocol, "deal: %v", err)
	}
	if !r.zero {
		l, err := vss.Lagrange(oldIDs(old, r.dealers(old)), oldID)
		if err != nil {
			return fail(ErrProtocol, "dealer set: %v", err)
		}
		if err := vss.CheckSubDealing(comm, l, pubKey(old.PubShares[oldID])); err != nil {
			return fail(ErrOldKey, "sub-dealing does not match the dealer's old public share: %v", err)
		}
	}
	myID := slices.Index(r.parties, id.Public())
	sb, err := envelope.OpenBox(id, r.ch, dealer, r.session, shareBoxAD(myID), boxes[myID*boxSize:(myID+1)*boxSize])
	if err != nil {
		return fail(ErrBadShare, "sub-share for id %d does not open", myID)
	}
	var s btcec.ModNScalar
	overflow := s.SetByteSlice(sb)
	clear(sb)
	if overflow {
		return fail(ErrBadShare, "sub-share for id %d out of range", myID)
	}
	if r.zero {
		err = vss.VerifyZeroShare(comm, myID, &s)
	} else {
		err = vss.VerifyShare(comm, myID, &s)
	}
	if err != nil {
		s.Zero()
		return fail(ErrBadShare, "sub-share for id %d", myID)
	}
	return &s, nil
}

func pubKey(b [33]byte) *btcec.PublicKey {
	p, err := btcec.ParsePubKey(b[:])
	if err != nil {
		return nil // checked when the context was parsed
	}
	return p
}

// combine sums this party's sub-shares from every deal (dealer order),
// derives the new public shares, checks them against the unchanged key,
// and computes the transcript.
func (r *redeal) combine(id *envelope.Identity, deals []*envelope.Envelope) (*KeyShare, error) {
	old, n := r.old, len(r.parties)
	ks := &KeyShare{ID: slices.Index(r.parties, id.Public())}
	if r.zero {
		ks.Share.Set(r.share)
	}
	var comms []vss.Commitments
	for _, e := range deals {
		s := r.opened[e.From]
		if s == nil {
			var err error
			if s, err = r.checkDeal(id, e); err != nil {
				ks.Share.Zero()
				return nil, err
			}
		}
		ks.Share.Add(s)
		s.Zero()
		_, raw, _, _ := splitDeal(e.Payload)
		var c vss.Commitments
		if r.zero {
			c, _ = vss.ParseZeroCommitments(raw, r.t)
		} else {
			c, _ = vss.ParseCommitments(raw, r.t)
		}
		comms = append(comms, c)
	}
	q := pubKey(old.ThreshPK)
	var pubs []*btcec.PublicKey
	var err error
	if r.zero {
		oldPubs := make([]*btcec.PublicKey, old.N)
		for j := range oldPubs {
			oldPubs[j] = pubKey(old.PubShares[j])
		}
		pubs, err = vss.RefreshedPublicShares(oldPubs, r.t, q, comms)
	} else {
		pubs, err = vss.ResharedPublicShares(comms, r.t, n, q)
	}
	if err != nil || ks.Share.IsZero() {
		ks.Share.Zero()
		// Each deal checked out on its own: only the sum can fail, i.e. a
		// zero share by chance or deals that cancel.
		return nil, abortf(roundDeal, envelope.Broadcast, ErrProtocol, "new public shares: %v", err)
	}
	ks.T, ks.N, ks.Parties, ks.ThreshPK = r.t, n, r.parties, old.ThreshPK
	for _, p := range pubs {
		ks.PubShares = append(ks.PubShares, [33]byte(p.SerializeCompressed()))
	}
	parts := [][]byte{r.session[:], r.oldCtx}
	for _, e := range deals {
		d := e.Digest()
		parts = append(parts, d[:])
	}
	for i := range ks.PubShares {
		parts = append(parts, ks.PubShares[i][:])
	}
	parts = append(parts, ks.ThreshPK[:])
	ks.Transcript = bip340.TaggedHash(r.label+"/transcript", parts...)
	return ks, nil
}

// packDeals encodes the deals for recovery data: count (2) ‖ per deal its
// length (4) ‖ the envelope as sent.
func packDeals(deals []*envelope.Envelope) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(deals)))
	for _, e := range deals {
		raw := e.Marshal()
		b = binary.BigEndian.AppendUint32(b, uint32(len(raw)))
		b = append(b, raw...)
	}
	return b
}

func unpackDeals(b []byte) ([]*envelope.Envelope, error) {
	if len(b) < 2 {
		return nil, errRecoveryFormat
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	out := make([]*envelope.Envelope, 0, n)
	for range n {
		if len(b) < 4 || int(binary.BigEndian.Uint32(b)) > len(b)-4 {
			return nil, errRecoveryFormat
		}
		l := int(binary.BigEndian.Uint32(b))
		e, err := envelope.Verify(b[4 : 4+l])
		if err != nil {
			return nil, fmt.Errorf("%w: deal: %w", ErrRecovery, err)
		}
		out, b = append(out, e), b[4+l:]
	}
	if len(b) != 0 {
		return nil, errRecoveryFormat
	}
	return out, nil
}

// blameDeals explains a transcript signature over another transcript: a
// dealer equivocated when the signer's evidence holds another deal that
// dealer signed; otherwise the signer's transcript is its own doing.
// Evidence: per dealer (in dealer order) party (33) ‖ deal digest (32) ‖
// its signature (64).
func blameDeals(e *envelope.Envelope, theirs []byte, ours *RecoveryData) *AbortError {
	mine := dealEvidence(ours)
	const rec = 33 + 32 + 64
	for off := 0; off+rec <= len(theirs); off += rec {
		p := envelope.Party(theirs[off : off+33])
		d, sig := [32]byte(theirs[off+33:off+65]), [64]byte(theirs[off+65:off+rec])
		if bytes.Contains(mine, theirs[off:off+65]) {
			continue
		}
		if slices.Contains(ours.Parties, p) && envelope.VerifyDigest(p, d, sig) {
			for i := 0; i+rec <= len(mine); i += rec {
				if envelope.Party(mine[i:i+33]) == p {
					return abortf(roundCertify, p, ErrEquivocation, "the dealer sent different deals to different parties")
				}
			}
		}
	}
	return abortf(roundCertify, e.From, ErrMismatch, "transcript signature over another transcript")
}

func dealEvidence(rd *RecoveryData) []byte {
	deals, _ := unpackDeals(rd.Deal)
	var b []byte
	for _, e := range deals {
		d := e.Digest()
		b = append(append(append(b, e.From[:]...), d[:]...), e.Sig[:]...)
	}
	return b
}

// recoverRedeal re-opens a refresh or reshare from recovery data. A
// reshare's boxes hold the whole new share; a refresh adds sharings of
// zero to the old share, which the caller must supply (oldShare, with the
// old key it belongs to).
func recoverRedeal(id *envelope.Identity, rd *RecoveryData, old *KeyInfo, oldShare *btcec.ModNScalar) (*KeyShare, error) {
	n := len(rd.Parties)
	if rd.T < 1 || rd.T > n || !slices.IsSortedFunc(rd.Parties, compareParties) {
		return nil, fmt.Errorf("%w: %d-of-%d, parties not sorted", ErrRecovery, rd.T, n)
	}
	if !slices.Contains(rd.Parties, id.Public()) {
		return nil, fmt.Errorf("%w: %w", ErrRecovery, ErrNotAParty)
	}
	r := redealFor(rd.Kind, rd.Room, rd.T, rd.Parties, old)
	if r == nil {
		return nil, fmt.Errorf("%w: unknown ceremony kind %d", ErrRecovery, rd.Kind)
	}
	if r.zero {
		if old == nil || oldShare == nil {
			return nil, fmt.Errorf("%w: a refresh is recovered with the old key's share", ErrRecovery)
		}
		r.share = oldShare
	}
	deals, err := unpackDeals(rd.Deal)
	if err != nil {
		return nil, err
	}
	if len(deals) == 0 {
		return nil, fmt.Errorf("%w: no deals", ErrRecovery)
	}
	for _, e := range deals {
		if e.Session != r.session || e.Kind != r.kind {
			return nil, fmt.Errorf("%w: a deal belongs to another session", ErrRecovery)
		}
	}
	if r.old == nil {
		if err := r.adoptContext(deals[0]); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrRecovery, err)
		}
	}
	dealers := r.dealers(r.old)
	if len(dealers) != len(deals) || len(dealers) < r.old.T {
		return nil, fmt.Errorf("%w: %d deals for %d dealers", ErrRecovery, len(deals), len(dealers))
	}
	for i, e := range deals {
		if e.From != dealers[i] {
			return nil, fmt.Errorf("%w: deals out of dealer order", ErrRecovery)
		}
	}
	ks, err := r.combine(id, deals)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRecovery, err)
	}
	return ks, nil
}

// redealFor sets up the redeal of kind for a room (old is the old key, known
// to holders; nil for a reshare's new party).
func redealFor(kind uint8, room string, t int, parties []envelope.Party, old *KeyInfo) *redeal {
	r := &redeal{kind: kind, room: room, t: t, parties: parties, old: old}
	var sessCtx []byte
	switch kind {
	case envelope.KindRefresh:
		if old == nil {
			return nil
		}
		r.label, r.zero = RefreshLabel, true
		// Every party knows the old key: bind it into the session too.
		sessCtx = append(old.ThreshPK[:], old.Transcript[:]...)
	case envelope.KindReshare:
		r.label = ReshareLabel
	default:
		return nil
	}
	if old != nil {
		r.oldCtx = oldContext(old)
	}
	r.session = envelope.SessionID(r.label, room, parties, t, len(parties), sessCtx)
	return r
}
