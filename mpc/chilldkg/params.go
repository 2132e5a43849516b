package chilldkg

import (
	"bytes"
	"encoding/binary"
	"math"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/bip340"
	"github.com/quorumd/quorumd/mpc/secp"
)

// Sizes of the fixed-length encodings.
const (
	HostSeckeySize = 32 // host secret key
	HostPubkeySize = 33 // compressed host public key
	RandomSize     = 32 // ParticipantStep1's randomness, ParticipantStep2's aux_rand
	SecshareSize   = 32
)

// bipTag prefixes every tagged hash of the spec.
const bipTag = "BIP DKG/"

func taggedHash(tag string, parts ...[]byte) [32]byte {
	return bip340.TaggedHash(bipTag+tag, parts...)
}

func be32(v int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }

// SessionParams are a session's common parameters: the ordered host public
// keys of all participants (a participant's id is its index) and the
// threshold T, with 1 <= T <= len(HostPubkeys) <= 2^32-1.
type SessionParams struct {
	HostPubkeys [][]byte
	T           int
}

// validate is the spec's params_validate: counts first, then each key, then
// duplicates (reported with the first and the later index).
func (p *SessionParams) validate() error {
	n := len(p.HostPubkeys)
	if !(1 <= p.T && p.T <= n && uint64(n) <= math.MaxUint32) {
		return &ThresholdOrCountError{T: p.T, N: n}
	}
	for i, pk := range p.HostPubkeys {
		if _, err := parsePoint(pk); err != nil {
			return &InvalidHostPubkeyError{ParticipantID: i}
		}
	}
	seen := make(map[string]int, n)
	for i, pk := range p.HostPubkeys {
		if j, ok := seen[string(pk)]; ok {
			return &DuplicateHostPubkeyError{ParticipantID1: j, ParticipantID2: i}
		}
		seen[string(pk)] = i
	}
	return nil
}

// index returns the id of hostpubkey in p, or -1.
func (p *SessionParams) index(hostpubkey []byte) int {
	for i, pk := range p.HostPubkeys {
		if bytes.Equal(pk, hostpubkey) {
			return i
		}
	}
	return -1
}

// ParamsHash returns the 32-byte hash of the session parameters that
// participants compare out of band to confirm they hold the same host keys
// and threshold. Public data only.
func ParamsHash(p SessionParams) ([32]byte, error) {
	if err := p.validate(); err != nil {
		return [32]byte{}, err
	}
	return taggedHash("params_hash", be32(p.T), bytes.Join(p.HostPubkeys, nil)), nil
}

// parseHostSeckey decodes the host secret key: ErrInvalidInput if it is not
// 32 bytes, *HostSeckeyError if it is zero or ≥ n. Constant time in the key
// except for the validity outcome. The caller zeroes the returned scalar.
func parseHostSeckey(hostseckey []byte) (*btcec.ModNScalar, error) {
	if len(hostseckey) != HostSeckeySize {
		return nil, invalidInput("host secret key is %d bytes, want 32", len(hostseckey))
	}
	k, err := bip340.ParsePrivateKey((*[32]byte)(hostseckey))
	if err != nil {
		return nil, &HostSeckeyError{}
	}
	return k, nil
}

// pubkeyOf returns the compressed encoding of k·G, constant time in k.
func pubkeyOf(k *btcec.ModNScalar) [HostPubkeySize]byte {
	var p btcec.JacobianPoint
	secp.ScalarBaseMult(k, &p)
	p.X.Normalize()
	p.Y.Normalize()
	var out [HostPubkeySize]byte
	out[0] = 2 | byte(p.Y.IsOddBit())
	p.X.PutBytesUnchecked(out[1:])
	p.X.Zero()
	p.Y.Zero()
	return out
}

// HostPubkeyGen returns the participant's host public key: the compressed
// encoding of hostseckey·G (BIP327 IndividualPubkey). Constant time in
// hostseckey.
func HostPubkeyGen(hostseckey []byte) ([]byte, error) {
	k, err := parseHostSeckey(hostseckey)
	if err != nil {
		return nil, err
	}
	defer k.Zero()
	pk := pubkeyOf(k)
	return pk[:], nil
}
