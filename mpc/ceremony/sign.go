package ceremony

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/bip340"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/frost"
)

// Signing rounds.
const (
	roundNonce uint8 = 1
	roundPsig  uint8 = 2
)

// SignLabel versions the signing protocol inside every session id. v2:
// partial signatures travel encrypted to each other signer, the key's
// transcript is bound into the session, certificates ride on the nonces.
// v3: a signer's partial signature goes to the others in one broadcast of
// boxes, one sealed to each other signer, rather than one envelope each.
// v4: the signer count is no longer in the session id (a signer posts its
// nonce before the relay has told it the room's size); instead round 2
// carries a hash of the round-1 nonces the signer saw, so signers that
// disagree on who signs (or were sent different nonces) abort without
// blaming an honest one.
const SignLabel = "quorumd/sign/v4"

// SignParams are one signer's inputs to a signing ceremony.
type SignParams struct {
	Room     string
	Identity *envelope.Identity
	Key      *KeyInfo
	Share    *btcec.ModNScalar // this party's secret share (not modified)
	// Signers is u, the room's size (t ≤ u ≤ n); 0 asks the transport
	// (RoomSizer) once this signer's nonce is posted, so that a seat claim
	// still in flight overlaps the nonce's computation.
	Signers   int
	Msg       []byte
	Tweaks    []frost.Tweak
	Transport Transport
	Rand      io.Reader // nonce randomness; crypto/rand when nil

	// Certificate is this signer's success certificate for Key, attached to
	// its nonce so that a signer still pending becomes ready (ChillDKG's
	// stuck-party recovery); nil attaches none. Pending says this signer's
	// own key is pending: it signs only after another signer attached a
	// valid certificate, handed first to OnCertified (which records it; an
	// error aborts).
	Certificate Certificate
	Pending     bool
	OnCertified func(Certificate) error

	// tamperPsig and split let this package's tests play a cheating or an
	// equivocating signer.
	tamperPsig func(*frost.PartialSig)
	split      splitFunc
}

// Sign runs one signer's side of BIP445 signing: broadcast a public nonce,
// aggregate the u nonces, broadcast a partial signature, verify every other
// partial signature (an invalid one aborts naming its signer), aggregate, and
// verify the final BIP340 signature under the (tweaked) threshold key before
// returning it. The secret nonce lives only in memory and is consumed once.
func Sign(ctx context.Context, p SignParams) ([64]byte, error) {
	// Nothing is stored after a signature: the caller's answer need not
	// wait for the relay to free the room. Deferred first, so that a seat
	// the caller claimed early is left even when the inputs are refused.
	defer leaveLater(ctx, p.Transport)
	var zero [64]byte
	k := p.Key
	myID, err := signerID(p)
	if err != nil {
		return zero, err
	}
	outKey, err := outputKey(k, p.Tweaks)
	if err != nil {
		return zero, err
	}
	session := envelope.SessionID(SignLabel, p.Room, k.Parties, k.T, k.N, signContext(k, p))
	pt := newParty(p.Identity, envelope.KindSign, session, k.Parties, p.Transport)
	pt.split = p.split
	// The room is left by leaveLater above; the ECDH secrets go now.
	defer pt.ch.Zero()
	sig, err := runSign(ctx, pt, p, myID, session, outKey)
	if err != nil {
		return zero, pt.fail(err)
	}
	return sig, nil
}

// signerID checks the inputs every signing ceremony needs and returns this
// party's id in the key.
func signerID(p SignParams) (int, error) {
	k := p.Key
	if k == nil || p.Identity == nil || p.Transport == nil || p.Share == nil {
		return 0, &AbortError{Err: ErrInput, Detail: "key, identity, share and transport are required"}
	}
	myID := k.IDOf(p.Identity.Public())
	if myID < 0 {
		return 0, &AbortError{Err: ErrInput, Detail: "this party is not a participant of the key"}
	}
	if p.Signers != 0 {
		if err := checkSigners(k, p.Signers, 0); err != nil {
			return 0, err
		}
	}
	return myID, nil
}

// checkSigners refuses a signer count u outside t..n (in round, 0 before
// any).
func checkSigners(k *KeyInfo, u int, round uint8) error {
	if u < k.T || u > k.N || u < 1 {
		return &AbortError{Round: round, Err: ErrInput, Detail: fmt.Sprintf("%d signers for a %d-of-%d key", u, k.T, k.N)}
	}
	return nil
}

// RoomSizer is a transport that knows its room's size (RelaySeat: the seat
// claim's answer).
type RoomSizer interface {
	RoomSize(ctx context.Context) (int, error)
}

// signerCount returns u once this signer's round 1 is posted: p.Signers, or
// the transport's room size, checked against the key; it then reads the
// others' nonces and partial signatures ahead (relay transports).
func signerCount(ctx context.Context, p SignParams) (int, error) {
	u := p.Signers
	if u == 0 {
		rs, ok := p.Transport.(RoomSizer)
		if !ok {
			return 0, abortf(roundNonce, envelope.Broadcast, ErrInput, "no signer count, and the transport cannot tell the room's size")
		}
		var err error
		if u, err = rs.RoomSize(ctx); err != nil {
			return 0, abortf(roundNonce, envelope.Broadcast, fmt.Errorf("%w: %w", ErrTransport, err), "room size")
		}
		if err := checkSigners(p.Key, u, roundNonce); err != nil {
			return 0, err
		}
	}
	readAll(p.Transport, 2*(u-1)) // the others' nonces and partial signatures: all a signer reads
	return u, nil
}

// outputKey is the x-only key a signature under tweaks verifies against.
func outputKey(k *KeyInfo, tweaks []frost.Tweak) ([32]byte, error) {
	tc, err := frost.TweakCtxFor(k.ThreshPK, tweaks)
	if err != nil {
		return [32]byte{}, &AbortError{Err: ErrInput, Detail: err.Error()}
	}
	return tc.XOnlyPubKey(), nil
}

// signContext binds the key and its generation (the transcript that
// certified its shares: after a refresh, old and new shares never meet), the
// message and the tweaks into the session id: parties that disagree on any
// of them never accept each other's envelopes. The signers are not known
// yet (round 1 is posted before the room's size is); round 2's view of
// round 1 (nonceView) binds them.
func signContext(k *KeyInfo, p SignParams) []byte {
	b := append(append([]byte(nil), k.ThreshPK[:]...), k.Transcript[:]...)
	return appendItem(b, p.Msg, p.Tweaks)
}

// appendItem encodes what one signature is over: the tweaks and the message.
func appendItem(b, msg []byte, tweaks []frost.Tweak) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(tweaks)))
	for _, t := range tweaks {
		b = append(b, t.Value[:]...)
		if t.XOnly {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(msg)))
	return append(b, msg...)
}

func runSign(ctx context.Context, pt *party, p SignParams, myID int, session [32]byte, outKey [32]byte) ([64]byte, error) {
	var zero [64]byte
	k := p.Key
	// Each post is followed by waiting for the others' (nonces, then
	// partial signatures): on a relay, post and fetch go in one request,
	// the first with the seat claim.
	sendLazily(pt.tr)
	secnonce, pubnonce, err := frost.NonceGen(p.Rand, &frost.NonceGenArgs{
		SecShare: p.Share, PubShare: k.PubShares[myID][:], ThreshPKXOnly: outKey[:],
		Msg: p.Msg, HasMsg: true, ExtraIn: session[:],
	})
	if err != nil {
		return zero, abortf(roundNonce, envelope.Broadcast, ErrInput, "nonce generation: %v", err)
	}
	defer secnonce.Destroy()
	if err := pt.send(ctx, roundNonce, envelope.Broadcast, append(pubnonce[:], p.Certificate.marshal()...), false); err != nil {
		return zero, err
	}
	u, err := signerCount(ctx, p)
	if err != nil {
		return zero, err
	}
	got, err := pt.collect(ctx, roundNonce, pt.others(), u-1, nil)
	if err != nil {
		return zero, err
	}
	if p.Pending {
		if err := adoptCertificate(k, p, got, frost.PubNonceSize); err != nil {
			return zero, err
		}
	}
	// The signer set, in id order: everyone heard in round 1, and us.
	var signers []envelope.Party
	nonces := map[envelope.Party]frost.PubNonce{pt.me: pubnonce}
	for id, m := range pt.members {
		if id == myID {
			signers = append(signers, m)
			continue
		}
		if e := got[othersIndex(id, myID)]; e != nil {
			if len(e.Payload) < len(pubnonce) {
				return zero, abortf(roundNonce, m, ErrProtocol, "public nonce of %d bytes", len(e.Payload))
			}
			// Decoded (once) by frost.NewSignerSession, which blames an
			// undecodable nonce on its signer.
			signers = append(signers, m)
			nonces[m] = frost.PubNonce(e.Payload[:len(pubnonce)])
		}
	}
	ids := make([]uint32, len(signers))
	pubnonces := make([]frost.PubNonce, len(signers))
	pubshares := make([]frost.PubShare, len(signers))
	for i, s := range signers {
		id := pt.index[s]
		ids[i], pubnonces[i], pubshares[i] = uint32(id), nonces[s], frost.PubShare(k.PubShares[id])
	}
	sess, err := frost.NewSignerSession(&frost.SignersCtx{N: uint32(k.N), T: uint32(k.T), IDs: ids, PubShares: pubshares, ThreshPK: k.ThreshPK},
		pubnonces, p.Tweaks, p.Msg, secnonce)
	if err != nil {
		return zero, blame(roundNonce, signers, err)
	}
	psig, err := sess.Sign(secnonce, p.Share, uint32(myID))
	if err != nil {
		return zero, abortf(roundPsig, envelope.Broadcast, ErrInput, "partial signature: %v", err)
	}
	sent := psig
	if p.tamperPsig != nil {
		p.tamperPsig(&sent)
	}
	otherSigners := make([]envelope.Party, 0, len(signers)-1)
	for _, s := range signers {
		if s != pt.me {
			otherSigners = append(otherSigners, s)
		}
	}
	seen := nonceView(ids, pubnonces)
	// Encrypted to each other signer (the relay cannot link the session to
	// the signature that gets published), in one broadcast after this
	// signer's view of round 1. The post runs while the others' partial
	// signatures (read ahead) are verified and aggregated; the signature is
	// returned only once the post is done.
	posted := pt.broadcastBoxesAsync(ctx, roundPsig, otherSigners, seen[:], sent[:])
	sig, err := func() ([64]byte, error) {
		pos := make(map[envelope.Party]int, len(signers))
		for i, s := range signers {
			pos[s] = i
		}
		psigs := make([]frost.PartialSig, len(signers))
		psigs[pos[pt.me]] = psig
		// Each partial signature is verified as it arrives: identifiable abort.
		_, err := pt.collect(ctx, roundPsig, otherSigners, len(otherSigners), func(e *envelope.Envelope) error {
			i := pos[e.From]
			if err := checkView(e, seen); err != nil {
				return err
			}
			raw, err := pt.openBox(e, len(seen), boxesFrom(signers, e.From))
			if err != nil {
				return err
			}
			ps, err := frost.ParsePartialSig(raw)
			if err == nil {
				err = sess.Verify(ps, i)
			}
			if err != nil {
				return abortf(roundPsig, e.From, ErrBadPartialSig, "signer id %d", ids[i])
			}
			psigs[i] = ps
			return nil
		})
		if err != nil {
			return zero, err
		}
		sig, err := sess.Agg(psigs)
		if err != nil {
			return zero, blame(roundPsig, signers, err)
		}
		if err := bip340.Verify(outKey[:], p.Msg, sig[:]); err != nil {
			return zero, abortf(roundPsig, envelope.Broadcast, ErrProtocol, "aggregate signature does not verify: %v", err)
		}
		return [64]byte(sig), nil
	}()
	if perr := posted(); err == nil {
		err = perr
	}
	return sig, err
}

// nonceView hashes the signer set and its public nonces as this signer
// saw them in round 1 (public data).
func nonceView(ids []uint32, pubnonces []frost.PubNonce) [32]byte {
	h := sha256.New()
	for i, id := range ids {
		h.Write(binary.BigEndian.AppendUint32(nil, id))
		h.Write(pubnonces[i][:])
	}
	return [32]byte(h.Sum(nil))
}

// checkView compares the round-1 view (32 bytes) that opens a round-2
// payload with this signer's own.
func checkView(e *envelope.Envelope, seen [32]byte) error {
	if len(e.Payload) < len(seen) || [32]byte(e.Payload[:len(seen)]) != seen {
		// Signed, but who equivocated (a signer or the relay's delivery of
		// its broadcast) cannot be told from here.
		return abortf(roundPsig, envelope.Broadcast, ErrProtocol, "signer %s saw other round 1 broadcasts than this signer", envelope.Short(e.From))
	}
	return nil
}

// othersIndex maps a member id to its index in party.others().
func othersIndex(id, myID int) int {
	if id > myID {
		return id - 1
	}
	return id
}

// blame names the signer a frost contribution error points at.
func blame(round uint8, signers []envelope.Party, err error) error {
	var ice *frost.InvalidContributionError
	if errors.As(err, &ice) && ice.Signer >= 0 && ice.Signer < len(signers) {
		return abortf(round, signers[ice.Signer], ErrProtocol, "%v", err)
	}
	return abortf(round, envelope.Broadcast, ErrProtocol, "%v", err)
}

// adoptCertificate is a pending signer's recovery: it signs only with a
// valid certificate for its key from another signer, recorded first. The
// certificates ride on the round-1 payloads after their first skip bytes.
func adoptCertificate(k *KeyInfo, p SignParams, got []*envelope.Envelope, skip int) error {
	certLen := k.N * envelope.SigSize
	for _, e := range got {
		if e == nil || len(e.Payload) != skip+certLen {
			continue
		}
		c, err := parseCertificate(e.Payload[skip:], k.N)
		if err != nil || k.VerifyCertificate(c) != nil {
			continue
		}
		if p.OnCertified != nil {
			if err := p.OnCertified(c); err != nil {
				return abortf(roundNonce, envelope.Broadcast, fmt.Errorf("%w: %w", ErrCommit, err), "recording the certificate")
			}
		}
		return nil
	}
	return abortf(roundNonce, envelope.Broadcast, ErrPending, "this signer's key is pending and no other signer attached its success certificate")
}
