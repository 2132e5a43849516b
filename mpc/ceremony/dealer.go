package ceremony

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/vss"
)

// DealParams are an external dealer's inputs (DESIGN §3: a client dealing
// itself, so that x never reaches any daemon). The dealer holds no share:
// every one of Parties is a recipient running Import with Dealer set to
// this identity, and the room seats the N parties plus the dealer.
type DealParams struct {
	Room string
	// Identity is the dealer's (ephemeral) identity; it is not a party.
	Identity  *envelope.Identity
	Parties   []envelope.Party // the recipients' keygen_ids: every share holder
	Threshold int
	// Transport is seated among Parties plus Identity's public key.
	Transport Transport
	// PrivateKey is x; Deal zeroes it once dealt.
	PrivateKey *btcec.ModNScalar
	// Rand is the coefficient source; crypto/rand when nil.
	Rand io.Reader
	// CorruptShareOf makes the dealer cheat: that party's share is off by
	// one, inconsistent with the commitments. It exists to test the
	// recipients' checks end to end; a dealer holding x can always cheat,
	// so it grants nothing.
	CorruptShareOf envelope.Party
}

// Deal runs an external dealer's side of an import: it deals x to the
// parties in one signed broadcast deal (the same format and checks as an
// importer's), zeroes x and the polynomial, then waits for the success
// certificate (every party's transcript signature, made only after its
// durable prepare), so a nil error means every party holds its share. The
// certificate is the recovery data's; the dealer keeps nothing secret.
//
// A recipient's refusal aborts with its culprit (e.g. the dealer itself,
// for a bad share); a timeout leaves the outcome unknown (parties may be
// pending), and the error wraps ErrTimeout.
func Deal(ctx context.Context, p DealParams) (*KeyInfo, Certificate, error) {
	if p.PrivateKey != nil {
		defer p.PrivateKey.Zero()
	}
	if p.Identity == nil || p.Transport == nil || p.PrivateKey == nil {
		return nil, nil, &AbortError{Err: ErrInput, Detail: "identity, transport and private key are required"}
	}
	me := p.Identity.Public()
	parties, err := checkParties(p.Parties, p.Threshold, me)
	if err != nil {
		return nil, nil, err
	}
	t := p.Threshold
	session := importSession(p.Room, parties, t, me)
	seated := append(slices.Clone(parties), me)
	envelope.SortParties(seated)
	pt := newParty(p.Identity, envelope.KindImport, session, seated, p.Transport)
	defer pt.leave()

	ks, err := dealOut(ctx, pt, p, parties, session)
	if err != nil {
		return nil, nil, pt.fail(err)
	}
	// From here a certificate may come: notices are aborts, not refusals
	// (the dealer is no signer; its refusal would prove nothing anyway).
	pt.signed = true
	cert, err := pt.awaitCertificate(ctx, parties, ks.Transcript)
	if err != nil {
		return nil, nil, pt.fail(err)
	}
	return &ks.KeyInfo, cert, nil
}

// dealOut deals x, broadcasts the deal and derives its public outcome;
// x and the polynomial are zeroed before it returns.
func dealOut(ctx context.Context, pt *party, p DealParams, parties []envelope.Party, session [32]byte) (*KeyShare, error) {
	rnd := p.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	d, err := vss.Deal(p.PrivateKey, p.Threshold, len(parties), rnd)
	p.PrivateKey.Zero()
	if err != nil {
		return nil, abortf(roundDeal, envelope.Broadcast, ErrInput, "dealing: %v", err)
	}
	defer d.Zero()
	if i := slices.Index(parties, p.CorruptShareOf); i >= 0 {
		var one btcec.ModNScalar
		one.SetInt(1)
		d.Shares[i].Add(&one)
	}
	pubs, err := vss.PublicShares(d.Commitments, len(parties))
	if err != nil {
		return nil, abortf(roundDeal, envelope.Broadcast, ErrInput, "dealing: %v", err)
	}
	payload, err := dealPayload(p.Identity, session, parties, d, pubs)
	if err != nil {
		return nil, abortf(roundDeal, envelope.Broadcast, ErrInput, "sealing shares: %v", err)
	}
	raw, err := pt.sealSend(ctx, roundDeal, envelope.Broadcast, payload, false)
	if err != nil {
		return nil, err
	}
	e, err := envelope.Unmarshal(raw)
	if err != nil {
		return nil, abortf(roundDeal, envelope.Broadcast, ErrProtocol, "own deal: %v", err)
	}
	return keyShare(session, parties, p.Threshold, e, d.Commitments, pubs)
}

// awaitCertificate collects the parties' transcript signatures (or a
// certificate one of them assembled) over transcript. Neither a refusal
// nor an abort proves that none exists (a party that refuses to the dealer
// may have signed for the others), so after one the wait goes on for
// refusalGrace, or until every party gave up, and reports the first.
func (p *party) awaitCertificate(ctx context.Context, signers []envelope.Party, transcript [32]byte) (Certificate, error) {
	n := len(signers)
	cert := make(Certificate, n)
	have := make([]bool, n)
	noticed := make([]bool, n)
	got := 0
	missing := func() string {
		var ms []envelope.Party
		for i, h := range have {
			if !h {
				ms = append(ms, signers[i])
			}
		}
		return "no success certificate: transcript signatures missing from " + shortList(ms)
	}
	var cause *AbortError
	wait, graced := ctx, false
	for got < n {
		e, err := p.next(wait, missing, roundPrepared, roundCertify, roundCert)
		if err != nil {
			ae := err.(*AbortError)
			if i := slices.Index(signers, ae.ReportedBy); i >= 0 {
				noticed[i] = true
				if cause == nil {
					cause = ae
				}
				if ae.Refused && !graced {
					graced = true
					gctx, cancel := context.WithTimeout(wait, refusalGrace)
					defer cancel()
					wait = gctx
				}
				if slices.Contains(noticed, false) {
					continue
				}
				return nil, cause
			}
			if cause != nil && errors.Is(ae.Err, ErrTimeout) {
				if graced {
					return nil, cause
				}
				ae.Culprit = cause.Culprit
				ae.Detail = cause.Error() + "; " + ae.Detail
			}
			return nil, ae
		}
		if e.Round == roundPrepared {
			continue // the parties' barrier before signing
		}
		if len(e.Payload) < 32 || [32]byte(e.Payload[:32]) != transcript {
			if cause == nil {
				cause = abortf(roundCertify, e.From, ErrMismatch, "transcript signature over another transcript")
			}
			continue
		}
		if e.Round == roundCert {
			if c, err := parseCertificate(e.Payload[32:], n); err == nil && c.Verify(signers, transcript) == nil {
				return c, nil
			}
			continue
		}
		i := slices.Index(signers, e.From)
		if i < 0 || len(e.Payload) < 96 || have[i] {
			continue
		}
		if s := [64]byte(e.Payload[32:96]); verifyTranscriptSig(e.From, transcript, s) {
			cert[i], have[i] = s, true
			got++
		}
	}
	if err := cert.Verify(signers, transcript); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return cert, nil
}
