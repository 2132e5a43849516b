package chilldkg

import (
	"github.com/btcsuite/btcd/btcec/v2"
)

// Byte encodings of the protocol messages, exactly as the spec serialises
// them (the vectors fix them). A wrong total length is the caller's
// ErrInvalidInput; a well-sized message with an undecodable field is a
// *parseError, which the receiving function turns into blame of the sender.
// Ciphertexts and pops are public.

type parseError struct{ msg string }

func (e *parseError) Error() string { return e.msg }

// Message lengths as functions of t and n.

// ParticipantMsg1Len is the length of a participant's first message.
func ParticipantMsg1Len(t, n int) int { return 33*t + 64 + 33 + 32*n }

// CoordinatorMsg1Len is the length of the coordinator's first message.
func CoordinatorMsg1Len(t, n int) int { return 162*n + 33*(t-1) }

// ParticipantMsg2Len is the length of a participant's second message (its
// CertEq signature).
const ParticipantMsg2Len = 64

// CoordinatorMsg2Len is the length of the coordinator's second message (the
// success certificate).
func CoordinatorMsg2Len(n int) int { return 64 * n }

// CoordinatorInvestigationMsgLen is the length of one investigation message.
func CoordinatorInvestigationMsgLen(n int) int { return 65 * n }

// scalarsBytes appends 32-byte big-endian encodings.
func appendScalars(b []byte, s []btcec.ModNScalar) []byte {
	for i := range s {
		e := s[i].Bytes()
		b = append(b, e[:]...)
	}
	return b
}

// parseScalars decodes n 32-byte scalars, rejecting values ≥ n (the spec's
// from_bytes_checked).
func parseScalars(b []byte, n int) ([]btcec.ModNScalar, bool) {
	s := make([]btcec.ModNScalar, n)
	for i := range s {
		if s[i].SetByteSlice(b[32*i : 32*(i+1)]) {
			return nil, false
		}
	}
	return s, true
}

func splitFixed(b []byte, size, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = b[size*i : size*(i+1)]
	}
	return out
}

// pmsg1 is a participant's first message: its VSS commitment, its proof of
// possession, its public encryption nonce and its encrypted shares.
type pmsg1 struct {
	com       commitment
	pop       []byte
	pubnonce  []byte
	encShares []btcec.ModNScalar
}

func (m *pmsg1) bytes() []byte {
	b := make([]byte, 0, ParticipantMsg1Len(len(m.com), len(m.encShares)))
	b = m.com.appendBytes(b)
	b = append(b, m.pop...)
	b = append(b, m.pubnonce...)
	return appendScalars(b, m.encShares)
}

func parsePmsg1(b []byte, t, n int) (*pmsg1, error) {
	if len(b) != ParticipantMsg1Len(t, n) {
		return nil, invalidInput("participant message 1 is %d bytes, want %d", len(b), ParticipantMsg1Len(t, n))
	}
	com, err := parseCommitment(b[:33*t], t)
	if err != nil {
		return nil, &parseError{"invalid VSS commitment"}
	}
	rest := b[33*t:]
	m := &pmsg1{com: com, pop: rest[:64], pubnonce: rest[64:97]}
	var ok bool
	if m.encShares, ok = parseScalars(rest[97:], n); !ok {
		return nil, &parseError{"invalid encrypted secret share"}
	}
	return m, nil
}

// cmsg1 is the coordinator's first message: the commitments to every
// participant's secret, the sums of the other commitment terms, the pops,
// the public nonces, and the aggregated encrypted share of every participant.
type cmsg1 struct {
	comsToSecrets []point
	sumNonconst   []point
	pops          [][]byte
	pubnonces     [][]byte
	encSecshares  []btcec.ModNScalar
}

func (m *cmsg1) bytes() []byte {
	n, t := len(m.comsToSecrets), len(m.sumNonconst)+1
	b := make([]byte, 0, CoordinatorMsg1Len(t, n))
	b = commitment(m.comsToSecrets).appendBytes(b)
	b = commitment(m.sumNonconst).appendBytes(b)
	for _, p := range m.pops {
		b = append(b, p...)
	}
	for _, p := range m.pubnonces {
		b = append(b, p...)
	}
	return appendScalars(b, m.encSecshares)
}

func parseCmsg1(b []byte, t, n int) (*cmsg1, error) {
	if len(b) != CoordinatorMsg1Len(t, n) {
		return nil, invalidInput("coordinator message 1 is %d bytes, want %d", len(b), CoordinatorMsg1Len(t, n))
	}
	cs, err := parseCommitment(b[:33*n], n)
	if err != nil {
		return nil, &parseError{"invalid commitment to secret"}
	}
	rest := b[33*n:]
	sn, err := parseCommitment(rest[:33*(t-1)], t-1)
	if err != nil {
		return nil, &parseError{"invalid sum commitment to non-constant term"}
	}
	rest = rest[33*(t-1):]
	m := &cmsg1{comsToSecrets: cs, sumNonconst: sn}
	m.pops = splitFixed(rest[:64*n], 64, n)
	rest = rest[64*n:]
	m.pubnonces = splitFixed(rest[:33*n], 33, n)
	var ok bool
	if m.encSecshares, ok = parseScalars(rest[33*n:], n); !ok {
		return nil, &parseError{"invalid encrypted secret shares"}
	}
	return m, nil
}

// cinv is an investigation message for one participant: every sender's
// encrypted partial share to it and the matching partial public shares.
type cinv struct {
	encPartial       []btcec.ModNScalar
	partialPubshares []point
}

func (m *cinv) bytes() []byte {
	b := make([]byte, 0, CoordinatorInvestigationMsgLen(len(m.encPartial)))
	b = appendScalars(b, m.encPartial)
	return commitment(m.partialPubshares).appendBytes(b)
}

func parseCinv(b []byte, n int) (*cinv, error) {
	if len(b) != CoordinatorInvestigationMsgLen(n) {
		return nil, invalidInput("investigation message is %d bytes, want %d", len(b), CoordinatorInvestigationMsgLen(n))
	}
	enc, ok := parseScalars(b[:32*n], n)
	if !ok {
		return nil, &parseError{"invalid encrypted partial secshare"}
	}
	pp, err := parseCommitment(b[32*n:], n)
	if err != nil {
		return nil, &parseError{"invalid partial pubshare"}
	}
	return &cinv{encPartial: enc, partialPubshares: pp}, nil
}
