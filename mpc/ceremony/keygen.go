package ceremony

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/quorumd/quorumd/mpc/bip340"
	"github.com/quorumd/quorumd/mpc/chilldkg"
	"github.com/quorumd/quorumd/mpc/envelope"
)

// KeygenLabel versions the keygen protocol inside every session id.
const KeygenLabel = "quorumd/keygen/v1"

// Keygen rounds: ChillDKG's first messages, then the certify rounds
// (certify.go), which carry ChillDKG's CertEq signatures.
const roundKeygen1 uint8 = 1

// ErrDKGEquivocation: a participant sent different first messages to
// different parties (its two signed envelopes are the proof).
var ErrDKGEquivocation = errors.New("participant sent different keygen messages to different parties")

// KeygenParams are one party's inputs to a keygen (ChillDKG) ceremony.
type KeygenParams struct {
	Room      string
	Identity  *envelope.Identity // the slot's identity key: ChillDKG's host key
	Others    []envelope.Party
	Threshold int
	Transport Transport
	// Rand is the source of ChillDKG's session randomness; crypto/rand when nil.
	Rand io.Reader
	// HostKey, when set, is 32 bytes of locked memory for the host secret
	// key's encoding (ChillDKG takes bytes); cleared after use.
	HostKey []byte

	// Tests only: play a member that equivocates (split) or sends a bad
	// first message to everyone (tamper).
	split  splitFunc
	tamper func(pmsg1 []byte) []byte
}

// Keygen runs one party's side of ChillDKG (DESIGN §4a) with no trusted
// coordinator: every party broadcasts its first message, computes the
// coordinator's aggregation itself from the n first messages, runs
// participant step 2 (its share, checked against the summed commitment),
// durably prepares, and then certifies with ChillDKG's CertEq signatures
// through the shared certify step: the n signatures are both ChillDKG's
// success certificate and DESIGN §3's. Recovery data is ChillDKG's
// (eq_input plus the certificate, Kind KindKeygen). Failures are as Import
// documents; a bad share is investigated and its sender named.
func Keygen(ctx context.Context, p KeygenParams, d Durable) (*KeyInfo, error) {
	parties, err := importParties(ImportParams{Identity: p.Identity, Others: p.Others, Threshold: p.Threshold, Transport: p.Transport})
	if err != nil {
		return nil, err
	}
	n, t := len(parties), p.Threshold
	session := envelope.SessionID(KeygenLabel, p.Room, parties, t, n, nil)
	pt := newParty(p.Identity, envelope.KindKeygen, session, parties, p.Transport)
	pt.split = p.split
	// The certificate's broadcast and the leave are off the answer's path.
	pt.lateTail = true
	defer pt.leaveLater(ctx)

	hostKey := p.HostKey
	if len(hostKey) < 32 {
		hostKey = make([]byte, 32)
	}
	hostKey = hostKey[:32]
	p.Identity.PutPrivateBytes(hostKey)
	defer clear(hostKey)

	kg, err := runKeygen(ctx, pt, p, hostKey)
	if err != nil {
		return nil, pt.fail(err)
	}
	pt.scheme = &chillScheme{parties: parties, eqInput: kg.rd.Deal, mine: kg.sig}
	evidence := kg.evidence
	return prepareAndCertify(ctx, pt, kg.ks, kg.rd, d, evidence, func(e *envelope.Envelope, theirs []byte) *AbortError {
		return blameKeygenMismatch(e, theirs, evidence, parties)
	}, nil)
}

// keygenRun is the outcome of a keygen's first half: the pending share,
// recovery data without certificate, this party's CertEq signature, and
// the evidence (every first message's envelope digest and signature, by id)
// that names an equivocating member if transcripts differ.
type keygenRun struct {
	ks       *KeyShare
	rd       *RecoveryData
	sig      [64]byte
	evidence []byte
}

func runKeygen(ctx context.Context, pt *party, p KeygenParams, hostKey []byte) (*keygenRun, error) {
	n, t := len(pt.members), p.Threshold
	params := chilldkg.SessionParams{T: t, HostPubkeys: make([][]byte, n)}
	for i := range pt.members {
		params.HostPubkeys[i] = pt.members[i][:]
	}
	rnd := p.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	var random, aux [32]byte
	if _, err := io.ReadFull(rnd, random[:]); err != nil {
		return nil, abortf(roundKeygen1, envelope.Broadcast, ErrInput, "randomness: %v", err)
	}
	if _, err := io.ReadFull(rnd, aux[:]); err != nil {
		return nil, abortf(roundKeygen1, envelope.Broadcast, ErrInput, "randomness: %v", err)
	}
	defer clear(random[:])
	defer clear(aux[:])
	st1, msg1, err := chilldkg.ParticipantStep1(hostKey, params, random[:])
	if err != nil {
		return nil, abortf(roundKeygen1, envelope.Broadcast, ErrInput, "keygen step 1: %v", err)
	}
	if p.tamper != nil {
		msg1 = p.tamper(msg1)
	}
	raw, err := pt.sealSend(ctx, roundKeygen1, envelope.Broadcast, msg1, false)
	if err != nil {
		return nil, err
	}
	myID := pt.index[pt.me]
	want := chilldkg.ParticipantMsg1Len(t, n)
	got, err := pt.collect(ctx, roundKeygen1, pt.others(), n-1, func(e *envelope.Envelope) error {
		if e.Flags&envelope.FlagEncrypted != 0 || len(e.Payload) != want {
			return abortf(roundKeygen1, e.From, ErrProtocol, "keygen first message of %d bytes, want %d", len(e.Payload), want)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Every first message by id, and the evidence of who sent what.
	pmsgs1 := make([][]byte, n)
	evidence := make([]byte, 0, n*(32+envelope.SigSize))
	others := pt.others()
	own, err := envelope.Unmarshal(raw)
	if err != nil {
		return nil, abortf(roundKeygen1, envelope.Broadcast, ErrProtocol, "own first message: %v", err)
	}
	for i := range n {
		e := own
		if i != myID {
			e = got[slices.Index(others, pt.members[i])]
		}
		pmsgs1[i] = e.Payload
		dg := e.Digest()
		evidence = append(append(evidence, dg[:]...), e.Sig[:]...)
	}
	// The coordinator's aggregation, computed here: nobody is trusted with it.
	_, cmsg1, err := chilldkg.CoordinatorStep1(pmsgs1, params)
	if err != nil {
		return nil, chillAbort(roundKeygen1, pt.members, ErrProtocol, err)
	}
	st2, sig, err := chilldkg.ParticipantStep2(hostKey, st1, cmsg1, aux[:])
	if err != nil {
		var uerr *chilldkg.UnknownFaultyParticipantOrCoordinatorError
		if errors.As(err, &uerr) {
			return nil, chillAbort(roundKeygen1, pt.members, ErrBadShare, investigate(uerr, pmsgs1, params, myID))
		}
		return nil, chillAbort(roundKeygen1, pt.members, ErrProtocol, err)
	}
	defer st2.Zero()
	out := st2.Pending()
	defer out.Zero()
	ks, err := keygenShare(pt.members, t, myID, out, st2.EqInput())
	if err != nil {
		return nil, err
	}
	rd := &RecoveryData{Kind: envelope.KindKeygen, Room: p.Room, T: t, Parties: pt.members, Deal: ks.EqInput}
	return &keygenRun{ks: ks, rd: rd, sig: [64]byte(sig), evidence: evidence}, nil
}

// investigate finds who sent this party a bad share: the coordinator's
// investigation message is computed here too, from the same first messages.
func investigate(uerr *chilldkg.UnknownFaultyParticipantOrCoordinatorError, pmsgs1 [][]byte, params chilldkg.SessionParams, myID int) error {
	defer uerr.Zero()
	cinv, err := chilldkg.CoordinatorInvestigate(pmsgs1, params)
	if err != nil {
		return err
	}
	return chilldkg.ParticipantInvestigate(uerr, cinv[myID])
}

// chillAbort turns a ChillDKG error into an abort of class naming the
// blamed participant. The coordinator is this party's own computation, so
// blame shared with the coordinator falls on the participant alone.
func chillAbort(round uint8, parties []envelope.Party, class, err error) *AbortError {
	culprit := envelope.Broadcast
	if b, ok := chilldkg.BlameOf(err); ok && b.Participant >= 0 && b.Participant < len(parties) {
		culprit = parties[b.Participant]
	}
	return abortf(round, culprit, class, "%v", err)
}

// keygenShare is ChillDKG's output as a KeyShare (transcript = hash of
// eq_input, which fixes every public value and is what the certificate
// covers). It copies the secret share into ks.Share.
func keygenShare(parties []envelope.Party, t, id int, out *chilldkg.DKGOutput, eqInput []byte) (*KeyShare, error) {
	n := len(parties)
	if len(out.ThreshPK) != 33 || len(out.Pubshares) != n || len(out.Secshare) != 32 {
		return nil, abortf(roundKeygen1, envelope.Broadcast, ErrProtocol, "keygen output of unexpected shape")
	}
	ks := &KeyShare{ID: id}
	ks.T, ks.N, ks.Parties = t, n, parties
	ks.ThreshPK = [33]byte(out.ThreshPK)
	ks.PubShares = make([][33]byte, n)
	for i, p := range out.Pubshares {
		if len(p) != 33 {
			return nil, abortf(roundKeygen1, envelope.Broadcast, ErrProtocol, "keygen public share of %d bytes", len(p))
		}
		ks.PubShares[i] = [33]byte(p)
	}
	ks.EqInput = eqInput
	ks.Transcript = keygenTranscript(eqInput)
	if overflow := ks.Share.SetByteSlice(out.Secshare); overflow || ks.Share.IsZero() {
		ks.Share.Zero()
		return nil, abortf(roundKeygen1, envelope.Broadcast, ErrProtocol, "keygen share out of range")
	}
	return ks, nil
}

func keygenTranscript(eqInput []byte) [32]byte {
	return bip340.TaggedHash("quorumd/keygen/transcript/v1", eqInput)
}

// chillScheme makes the certify step's signatures ChillDKG's CertEq ones.
type chillScheme struct {
	parties []envelope.Party
	eqInput []byte
	mine    [64]byte // from ParticipantStep2
}

func (c *chillScheme) sign([32]byte) ([64]byte, error) { return c.mine, nil }

func (c *chillScheme) verify(id int, _ [32]byte, sig [64]byte) bool {
	return chilldkg.CertEqVerify(c.parties[id][:], id, c.eqInput, sig[:])
}

func verifyChillCert(parties []envelope.Party, eqInput []byte, c Certificate) error {
	if len(c) != len(parties) {
		return fmt.Errorf("%w: certificate of %d signatures for %d parties", ErrRecovery, len(c), len(parties))
	}
	for i := range c {
		if !chilldkg.CertEqVerify(parties[i][:], i, eqInput, c[i][:]) {
			return fmt.Errorf("%w: certificate signature %d (%s) invalid", ErrRecovery, i, envelope.Short(parties[i]))
		}
	}
	return nil
}

// blameKeygenMismatch explains a transcript signature over another
// transcript: a member equivocated if the signer's evidence holds another
// first message that member signed; otherwise the signer is to blame.
func blameKeygenMismatch(e *envelope.Envelope, theirs, ours []byte, parties []envelope.Party) *AbortError {
	const entry = 32 + envelope.SigSize
	if len(theirs) == len(ours) && len(ours) == len(parties)*entry {
		for i, p := range parties {
			a, b := ours[i*entry:(i+1)*entry], theirs[i*entry:(i+1)*entry]
			if bytes.Equal(a, b) {
				continue
			}
			if envelope.VerifyDigest(p, [32]byte(b[:32]), [envelope.SigSize]byte(b[32:])) {
				return abortf(roundCertify, p, ErrDKGEquivocation, "")
			}
		}
	}
	return abortf(roundCertify, e.From, ErrMismatch, "transcript signature over another transcript")
}

// recoverKeygen rebuilds a keygen party's share from ChillDKG's recovery
// data (chilldkg.ParticipantRecover checks the certificate, decrypts the
// share and checks it against the commitments).
func recoverKeygen(id *envelope.Identity, rd *RecoveryData) (*KeyShare, error) {
	n := len(rd.Parties)
	if rd.T < 1 || rd.T > n || !slices.IsSortedFunc(rd.Parties, compareParties) {
		return nil, fmt.Errorf("%w: %d-of-%d, parties not sorted", ErrRecovery, rd.T, n)
	}
	myID := slices.Index(rd.Parties, id.Public())
	if myID < 0 {
		return nil, fmt.Errorf("%w: %w", ErrRecovery, ErrNotAParty)
	}
	data := append(append(make([]byte, 0, len(rd.Deal)+n*envelope.SigSize), rd.Deal...), rd.Cert.marshal()...)
	var hostKey [32]byte
	id.PutPrivateBytes(hostKey[:])
	out, params, err := chilldkg.ParticipantRecover(hostKey[:], data)
	clear(hostKey[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRecovery, err)
	}
	defer out.Zero()
	if params.T != rd.T || len(params.HostPubkeys) != n {
		return nil, fmt.Errorf("%w: recovery data's parameters differ from its header", ErrRecovery)
	}
	for i, p := range rd.Parties {
		if !bytes.Equal(params.HostPubkeys[i], p[:]) {
			return nil, fmt.Errorf("%w: recovery data's parties differ from its header", ErrRecovery)
		}
	}
	ks, err := keygenShare(rd.Parties, rd.T, myID, out, rd.Deal)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRecovery, err)
	}
	return ks, nil
}
