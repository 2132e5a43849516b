package ceremony

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/vss"
)

// RecoveryData is what any party of a certified ceremony keeps and serves
// (DESIGN §3a): the session parameters, the ceremony's signed public
// messages (for import: the deal, which carries every share encrypted to its
// owner) and, once known, the success certificate. It holds no plaintext
// secret and authenticates itself: Recover checks it all.
type RecoveryData struct {
	Kind    uint8 // envelope.KindImport, KindKeygen, KindRefresh, KindReshare
	Room    string
	T       int
	Parties []envelope.Party // sorted; index = BIP445 id
	Deal    []byte           // import: the dealer's signed deal envelope, as sent; keygen: ChillDKG's eq_input; refresh, reshare: every deal (packDeals)
	Cert    Certificate      // nil while pending
}

var recoveryMagic = [4]byte{'Q', 'R', 'D', '2'}

// maxRecoveryData bounds what ParseRecoveryData accepts.
const maxRecoveryData = 2 * envelope.MaxPayload

// Marshal encodes rd: magic ‖ kind ‖ t(2) ‖ n(2) ‖ room(2+len) ‖ parties
// (33 each) ‖ deal(4+len) ‖ certificate flag ‖ certificate (64 each).
func (rd *RecoveryData) Marshal() []byte {
	b := make([]byte, 0, 16+len(rd.Room)+len(rd.Parties)*(envelope.PartySize+envelope.SigSize)+len(rd.Deal))
	b = append(b, recoveryMagic[:]...)
	b = append(b, rd.Kind)
	b = binary.BigEndian.AppendUint16(b, uint16(rd.T))
	b = binary.BigEndian.AppendUint16(b, uint16(len(rd.Parties)))
	b = binary.BigEndian.AppendUint16(b, uint16(len(rd.Room)))
	b = append(b, rd.Room...)
	for _, p := range rd.Parties {
		b = append(b, p[:]...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(rd.Deal)))
	b = append(b, rd.Deal...)
	if rd.Cert == nil {
		return append(b, 0)
	}
	return append(append(b, 1), rd.Cert.marshal()...)
}

var errRecoveryFormat = fmt.Errorf("%w: malformed", ErrRecovery)

// ParseRecoveryData decodes recovery data strictly; it checks the format
// only (Recover checks the content).
func ParseRecoveryData(b []byte) (*RecoveryData, error) {
	if len(b) > maxRecoveryData || len(b) < 11 || [4]byte(b[:4]) != recoveryMagic {
		return nil, errRecoveryFormat
	}
	rd := &RecoveryData{Kind: b[4], T: int(binary.BigEndian.Uint16(b[5:]))}
	n := int(binary.BigEndian.Uint16(b[7:]))
	rl := int(binary.BigEndian.Uint16(b[9:]))
	b = b[11:]
	if n < 1 || n > vss.MaxParticipants || len(b) < rl+n*envelope.PartySize+4 {
		return nil, errRecoveryFormat
	}
	rd.Room, b = string(b[:rl]), b[rl:]
	for range n {
		p, err := envelope.ParseParty(b[:envelope.PartySize])
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrRecovery, err)
		}
		rd.Parties, b = append(rd.Parties, p), b[envelope.PartySize:]
	}
	dl := int(binary.BigEndian.Uint32(b))
	b = b[4:]
	if dl > len(b)-1 {
		return nil, errRecoveryFormat
	}
	rd.Deal, b = append([]byte(nil), b[:dl]...), b[dl:]
	switch {
	case len(b) == 1 && b[0] == 0:
	case len(b) >= 1 && b[0] == 1:
		c, err := parseCertificate(b[1:], n)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrRecovery, err)
		}
		rd.Cert = c
	default:
		return nil, errRecoveryFormat
	}
	return rd, nil
}

// ErrNotAParty: recovery data of a ceremony the identity was not part of.
var ErrNotAParty = errors.New("this identity is not a party of the recovered key")

// Recover rebuilds id's key share from recovery data presented by anyone
// (DESIGN §3a), checking everything before returning it: the ceremony's
// signed messages, the commitments against the decrypted share, the
// transcript, and the success certificate over it. The caller stores the
// share only after Recover returned it, and zeroes ks.Share.
func Recover(id *envelope.Identity, data []byte) (*KeyShare, *RecoveryData, error) {
	rd, err := ParseRecoveryData(data)
	if err != nil {
		return nil, nil, err
	}
	if rd.Cert == nil {
		return nil, nil, fmt.Errorf("%w: no success certificate", ErrRecovery)
	}
	var ks *KeyShare
	switch rd.Kind {
	case envelope.KindImport:
		ks, err = recoverImport(id, rd)
	case envelope.KindKeygen:
		ks, err = recoverKeygen(id, rd)
	case envelope.KindReshare:
		ks, err = recoverRedeal(id, rd, nil, nil)
	case envelope.KindRefresh:
		err = fmt.Errorf("%w: a refresh is recovered with the old share (RecoverRefresh)", ErrRecovery)
	default:
		err = fmt.Errorf("%w: unknown ceremony kind %d", ErrRecovery, rd.Kind)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := ks.VerifyCertificate(rd.Cert); err != nil {
		ks.Share.Zero()
		return nil, nil, err
	}
	return ks, rd, nil
}

// Inspect returns recovery data's public parameters (n, t, and whether it
// carries a certificate) without checking it, e.g. for an authorization
// decision taken before Recover.
func Inspect(data []byte) (n, t int, certified bool, err error) {
	rd, err := ParseRecoveryData(data)
	if err != nil {
		return 0, 0, false, err
	}
	return len(rd.Parties), rd.T, rd.Cert != nil, nil
}

// CheckCertificate verifies cert over info's transcript, e.g. one attached
// to a signing request by another signer.
func CheckCertificate(info *KeyInfo, cert Certificate) error {
	return info.VerifyCertificate(cert)
}

// ParseCertificate decodes a certificate for n parties.
func ParseCertificate(b []byte, n int) (Certificate, error) { return parseCertificate(b, n) }

// Marshal encodes the certificate (64 bytes per party, by id).
func (c Certificate) Marshal() []byte { return c.marshal() }

// RecoverRefresh is Recover for a refresh's recovery data: the new share is
// the old one plus the dealt sharings of zero, so the party's old key and
// share (not modified) are needed too.
func RecoverRefresh(id *envelope.Identity, data []byte, old *KeyInfo, oldShare *btcec.ModNScalar) (*KeyShare, *RecoveryData, error) {
	rd, err := ParseRecoveryData(data)
	if err != nil {
		return nil, nil, err
	}
	if rd.Cert == nil || rd.Kind != envelope.KindRefresh {
		return nil, nil, fmt.Errorf("%w: not a certified refresh", ErrRecovery)
	}
	ks, err := recoverRedeal(id, rd, old, oldShare)
	if err != nil {
		return nil, nil, err
	}
	if err := rd.Cert.Verify(rd.Parties, ks.Transcript); err != nil {
		ks.Share.Zero()
		return nil, nil, err
	}
	return ks, rd, nil
}

// RefreshedKey returns the old key that a refresh's recovery data renews,
// as its deals present it (threshold key and transcript, which name the
// old generation), so that a party can find its old share for
// RecoverRefresh. Unverified: RecoverRefresh checks everything.
func RefreshedKey(data []byte) (*KeyInfo, error) {
	rd, err := ParseRecoveryData(data)
	if err != nil {
		return nil, err
	}
	if rd.Kind != envelope.KindRefresh {
		return nil, fmt.Errorf("%w: not a refresh", ErrRecovery)
	}
	deals, err := unpackDeals(rd.Deal)
	if err != nil {
		return nil, err
	}
	if len(deals) == 0 {
		return nil, fmt.Errorf("%w: no deals", ErrRecovery)
	}
	c, _, _, err := splitDeal(deals[0].Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRecovery, err)
	}
	old, err := parseOldContext(c)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRecovery, err)
	}
	return old, nil
}
