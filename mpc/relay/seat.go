package relay

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/quorumd/quorumd/mpc/bip340"
	"github.com/quorumd/quorumd/mpc/envelope"
)

// Seats (DESIGN §8). A party takes a seat by signing a SeatClaim with the
// identity key behind its party name. The claim declares the ceremony's
// member set: the relay seats a party only in the set it proves membership
// of, delivers only among seats of one set, and holds at most the room's
// size seats per set. An outsider who learns the room id therefore cannot
// take an honest member's seat (it cannot sign for that key), cannot join
// the honest set (it is not a member) and cannot reach the honest parties
// (its own set is a separate mailbox).

// Signer is what a party needs to claim a seat: its identity public key
// (the party name) and BIP340 signing with the matching private key.
// *envelope.Identity implements it.
type Signer interface {
	Public() envelope.Party
	Sign(msg []byte, auxRand [32]byte) ([64]byte, error)
}

// Seat-claim tags, domain-separating the claim digest and the member-set id.
const (
	seatClaimTag = "quorumd/relay/seat-claim/v1"
	memberSetTag = "quorumd/relay/member-set/v1"
)

// MaxMembers bounds the member set a claim may declare (a key's parties).
const MaxMembers = 256

// SeatClaim is the body of POST /v1/rooms/{room}/seats. Time is the
// claimer's clock in Unix milliseconds: the relay accepts it only within
// its clock-skew window and only above the last accepted claim for the same
// seat, so a captured claim can be neither replayed nor reused later.
type SeatClaim struct {
	Party   string   `json:"party"`   // the claimer's keygen_id, 66 lowercase hex
	Members []string `json:"members"` // the ceremony's keygen_ids, sorted, unique, including Party
	Time    int64    `json:"time_ms"` // Unix milliseconds
	Sig     string   `json:"sig"`     // BIP340 signature of ClaimDigest, 128 lowercase hex
	// Envelope, when not empty, is the party's first envelope (base64 in
	// JSON), posted from the seat as the claim takes it: one request
	// instead of two. The query's "to" addresses it. It is not part of the
	// signed digest: it rides on the claim as a post rides on its token.
	Envelope []byte `json:"envelope,omitempty"`
}

// claim is a decoded, well-formed (not yet verified) SeatClaim.
type claim struct {
	party   envelope.Party
	members []envelope.Party // sorted, unique
	timeMs  int64
	sig     [64]byte
	set     [32]byte // MemberSetID(members)
	env     []byte   // the first envelope to post with the claim; nil: none
}

// MemberSetID names a member set: a tagged hash of the sorted 33-byte keys.
func MemberSetID(members []envelope.Party) [32]byte {
	parts := make([][]byte, len(members))
	for i := range members {
		parts[i] = members[i][:]
	}
	return bip340.TaggedHash(memberSetTag, parts...)
}

// ClaimDigest is the message a seat claim signs: it binds the relay's name
// (so a claim made to one relay is void at another), the room, the party,
// the member set and the time.
func ClaimDigest(relayName, room string, party envelope.Party, set [32]byte, timeMs int64) [32]byte {
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(timeMs))
	var nl [2]byte
	binary.BigEndian.PutUint16(nl[:], uint16(len(relayName)))
	return bip340.TaggedHash(seatClaimTag, nl[:], []byte(relayName), []byte(room), party[:], set[:], ts[:])
}

// SortMembers returns members sorted and deduplicated, the canonical order
// of a member set.
func SortMembers(members []envelope.Party) []envelope.Party {
	out := slices.Clone(members)
	slices.SortFunc(out, func(a, b envelope.Party) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(out)
}

// NewSeatClaim signs a claim for s's seat in room at relay relayName among
// members (which must include s; order does not matter).
func NewSeatClaim(s Signer, relayName, room string, members []envelope.Party, timeMs int64, auxRand [32]byte) (SeatClaim, error) {
	ms := SortMembers(members)
	me := s.Public()
	if _, found := slices.BinarySearchFunc(ms, me, func(a, b envelope.Party) int { return bytes.Compare(a[:], b[:]) }); !found {
		return SeatClaim{}, fmt.Errorf("relay: seat claim: party %s is not in the member set: %w", envelope.Short(me), ErrBadRequest)
	}
	if len(ms) > MaxMembers {
		return SeatClaim{}, fmt.Errorf("relay: seat claim: %d members exceed %d: %w", len(ms), MaxMembers, ErrBadRequest)
	}
	d := ClaimDigest(relayName, room, me, MemberSetID(ms), timeMs)
	sig, err := s.Sign(d[:], auxRand)
	if err != nil {
		return SeatClaim{}, fmt.Errorf("relay: seat claim: sign: %w", err)
	}
	c := SeatClaim{Party: hex.EncodeToString(me[:]), Members: make([]string, len(ms)), Time: timeMs, Sig: hex.EncodeToString(sig[:])}
	for i := range ms {
		c.Members[i] = hex.EncodeToString(ms[i][:])
	}
	return c, nil
}

// parseClaim decodes a claim body strictly: known fields only, names shaped
// as compressed keys for the party and every member (the party's is proved
// a key by the signature), members strictly sorted (so the set id is
// canonical) and including the party. It does not verify the signature.
func parseClaim(body []byte, maxMembers int) (*claim, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var sc SeatClaim
	if err := dec.Decode(&sc); err != nil {
		return nil, badParam("invalid seat claim JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, badParam("trailing data after seat claim")
	}
	c := &claim{timeMs: sc.Time, env: sc.Envelope}
	var err error
	// Not decompressed here (a square root, ~15 µs): verify's BIP340 check
	// lifts the x coordinate itself, so a name off the curve never verifies.
	if c.party, err = parseNameHex(sc.Party); err != nil {
		return nil, badParam("party: %v", err)
	}
	if len(sc.Members) == 0 || len(sc.Members) > maxMembers {
		return nil, badParam("members: want 1..%d keygen_ids, got %d", maxMembers, len(sc.Members))
	}
	c.members = make([]envelope.Party, len(sc.Members))
	in := false
	for i, m := range sc.Members {
		// Members are names here (only the party's key is used), so they
		// are not decoded as curve points: a claim listing 256 members
		// costs the relay no more than one verification.
		if c.members[i], err = parseNameHex(m); err != nil {
			return nil, badParam("members[%d]: %v", i, err)
		}
		if i > 0 && bytes.Compare(c.members[i-1][:], c.members[i][:]) >= 0 {
			return nil, badParam("members must be strictly sorted (no duplicates)")
		}
		in = in || c.members[i] == c.party
	}
	if !in {
		return nil, badParam("party is not one of the members")
	}
	if c.timeMs <= 0 {
		return nil, badParam("time_ms must be a positive Unix time in milliseconds")
	}
	if len(sc.Sig) != 128 || !isLowerHex(sc.Sig) {
		return nil, badParam("sig must be 128 lowercase hex characters")
	}
	if _, err := hex.Decode(c.sig[:], []byte(sc.Sig)); err != nil {
		return nil, badParam("sig: %v", err)
	}
	c.set = MemberSetID(c.members)
	return c, nil
}

// verify checks the claim's signature under its party key for this relay
// and room.
func (c *claim) verify(relayName, room string) error {
	d := ClaimDigest(relayName, room, c.party, c.set, c.timeMs)
	return bip340.Verify(c.party[1:], d[:], c.sig[:])
}

// parseNameHex reads a keygen_id shaped name: 33 bytes in lowercase hex
// starting 02 or 03, not checked to be on the curve.
func parseNameHex(s string) (envelope.Party, error) {
	var p envelope.Party
	if len(s) != 2*envelope.PartySize || !isLowerHex(s) || s[0] != '0' || (s[1] != '2' && s[1] != '3') {
		return p, fmt.Errorf("want %d lowercase hex characters of a compressed key", 2*envelope.PartySize)
	}
	if _, err := hex.Decode(p[:], []byte(s)); err != nil {
		return p, err
	}
	return p, nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// tokenKey is the map key of a seat token: its SHA-256, so looking a token
// up leaks nothing useful through timing.
func tokenKey(tok string) [32]byte { return sha256.Sum256([]byte(tok)) }

// seatTokenBytes is the length of a seat token before hex encoding.
const seatTokenBytes = 32

// claimSeat seats the claimer (POST /v1/rooms/{room}/seats): a new seat in
// its member set, or, for a newer claim of a seat it holds, a fresh token
// (the old one stops working). Nothing is stored unless every check passes.
// A claim may carry the party's first envelope (SeatClaim.Envelope, to the
// query's "to"), posted from the seat in the same step: refused together
// (the envelope's size, recipient or the room's limits refuse the claim
// too), and with the fetch parameters of a GET messages (wait_ms given),
// the answer also waits for the seat's first envelopes.
func (s *Server) claimSeat(ctx *fasthttp.RequestCtx, id string) {
	if !ValidRoomID(id) {
		s.reject(ctx, CodeBadRequest, "room id must be a lowercase UUID v4")
		return
	}
	to, err := parsePostParams(ctx.QueryArgs())
	if err != nil {
		s.reject(ctx, CodeBadRequest, err.Error())
		return
	}
	fa, err := parseFetch(ctx.QueryArgs(), s.cfg.MaxWait, s.cfg.MaxFetchBytes)
	if err != nil {
		s.reject(ctx, CodeBadRequest, err.Error())
		return
	}
	c, err := parseClaim(ctx.PostBody(), min(MaxMembers, 4*s.cfg.MaxRoomSize))
	if err != nil {
		s.reject(ctx, CodeBadRequest, err.Error())
		return
	}
	if c.env != nil {
		if len(c.env) > s.cfg.MaxEnvelopeBytes {
			s.reject(ctx, CodeTooLarge, fmt.Sprintf("envelope of %d bytes exceeds %d", len(c.env), s.cfg.MaxEnvelopeBytes))
			return
		}
		if to != "" && !c.isMember(to) {
			s.reject(ctx, CodeBadRequest, "recipient is not a member of this seat's member set")
			return
		}
	}
	now := time.Now()
	if d := now.Sub(time.UnixMilli(c.timeMs)); d > s.cfg.MaxClockSkew || d < -s.cfg.MaxClockSkew {
		s.reject(ctx, CodeStaleSeatClaim, fmt.Sprintf("claim time is %v from the relay's clock; at most %v allowed", d.Round(time.Second), s.cfg.MaxClockSkew))
		return
	}
	// Verified before taking the room lock: it is the expensive part.
	if err := c.verify(s.cfg.Name, id); err != nil {
		s.reject(ctx, CodeBadSeatClaim, "seat claim signature does not verify under the party key for this relay ("+s.cfg.Name+") and room")
		return
	}
	var raw [seatTokenBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		s.reject(ctx, CodeStorageFull, "no randomness for a seat token")
		return
	}
	tok := hex.EncodeToString(raw[:])
	name := hex.EncodeToString(c.party[:])
	drop := false
	if c.env != nil && s.cfg.Intercept != nil {
		// The test hook runs without the room lock, as for a post.
		nb, d := s.cfg.Intercept(id, name, to, c.env)
		if nb != nil {
			c.env = nb
		}
		drop = d
	}
	if s.js != nil {
		s.jsClaimSeat(ctx, id, c, tok, name, to, drop, fa)
		return
	}

	r, ok := s.roomFromPath(ctx, id)
	if !ok {
		return
	}
	ms := r.setLocked(c.set)
	cost := 0
	if ms == nil {
		if len(r.sets) >= s.cfg.MaxSetsPerRoom {
			r.mu.Unlock()
			s.rejectRoom(ctx, CodeRoomSetsFull, id)
			return
		}
		cost += setCost(len(c.members))
	}
	var st *seat
	if ms != nil {
		st = ms.seatOf(name)
	}
	switch {
	case st != nil && c.timeMs <= st.lastMs:
		r.mu.Unlock()
		s.reject(ctx, CodeStaleSeatClaim, "seat claim is not newer than the last one accepted for this seat (replayed?)")
		return
	case st != nil && st.left:
		r.mu.Unlock()
		s.rejectRoom(ctx, CodePartyLeft, id)
		return
	case st == nil && ms != nil && len(ms.seats) >= ms.cap:
		r.mu.Unlock()
		s.rejectRoom(ctx, CodeRoomFull, id)
		return
	case st == nil:
		cost += seatOverhead
	}
	envCost, msgs := 0, 0 // the envelope's share, counted by storeLocked
	if c.env != nil && !drop {
		envCost, msgs = messageCost(c.env), 1
	}
	if code, msg := s.limitLocked(r, cost+envCost, msgs); code != "" {
		r.mu.Unlock()
		s.reject(ctx, code, msg)
		return
	}
	if ms == nil {
		ms = newMemberSet(c.set, c.members, r.size)
		r.sets = append(r.sets, ms)
	}
	if st == nil {
		st = &seat{set: ms, party: ms.member(name)}
		ms.seats = append(ms.seats, st)
	} else {
		delete(r.tokens, st.tok)
	}
	st.lastMs = c.timeMs
	st.tok = tokenKey(tok)
	r.tokens[st.tok] = st
	r.bytes += cost
	s.totalBytes.Add(int64(cost))
	s.m.seatsClaimed.Add(1)
	head := appendSeatHead(make([]byte, 0, 224), tok, c.set, ms.cap, r.size)
	if c.env != nil {
		head = appendSeqField(head, s.storeLocked(r, st, ms.member(to), c.env, drop))
	}
	if !fa.asked {
		r.mu.Unlock()
		writeJSON(ctx, fasthttp.StatusOK, closeHead(head))
		return
	}
	s.awaitLocked(ctx, r, st, fa, head)
}

// isMember reports whether the hex name is one of the claim's members.
func (c *claim) isMember(name string) bool {
	p, err := parseNameHex(name)
	if err != nil {
		return false
	}
	_, found := slices.BinarySearchFunc(c.members, p, func(a, b envelope.Party) int { return bytes.Compare(a[:], b[:]) })
	return found
}

// appendSeatHead starts a claim's answer, `{"token",…,"size":N,`, closed
// by closeHead or continued by the envelope's seq and a fetch's answer.
// The room's size rides along so that a party given only the room id (a
// signer) needs no room-info round trip before its first post.
func appendSeatHead(b []byte, tok string, set [32]byte, seats, size int) []byte {
	b = append(b, `{"token":"`...)
	b = append(b, tok...)
	b = append(b, `","set":"`...)
	b = hex.AppendEncode(b, set[:])
	b = append(b, `","seats":`...)
	b = strconv.AppendInt(b, int64(seats), 10)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, int64(size), 10)
	return append(b, ',')
}

// appendSeqField adds a posted envelope's `"seq":n,` to an answer's head.
func appendSeqField(b []byte, seq uint64) []byte {
	b = append(b, `"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	return append(b, ',')
}
