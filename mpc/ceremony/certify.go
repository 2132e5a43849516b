package ceremony

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/quorumd/quorumd/internal/tail"
	"github.com/quorumd/quorumd/mpc/bip340"
	"github.com/quorumd/quorumd/mpc/envelope"
)

// Certificate is CertEq's success certificate (../spec/chilldkg.md): every
// party's BIP340 signature over the ceremony's transcript hash, by id. It
// proves that every party durably prepared the same outcome (DESIGN §3).
type Certificate [][envelope.SigSize]byte

// certifyTag domain-separates transcript signatures from every other
// signature an identity key makes.
const certifyTag = "quorumd/certeq/v2"

func certDigest(transcript [32]byte) [32]byte { return bip340.TaggedHash(certifyTag, transcript[:]) }

// signTranscript is this party's CertEq signature over transcript.
func signTranscript(id *envelope.Identity, transcript [32]byte) ([64]byte, error) {
	var aux [32]byte
	if _, err := rand.Read(aux[:]); err != nil {
		return [64]byte{}, err
	}
	d := certDigest(transcript)
	return id.Sign(d[:], aux)
}

func verifyTranscriptSig(p envelope.Party, transcript [32]byte, sig [64]byte) bool {
	d := certDigest(transcript)
	return bip340.Verify(p[1:], d[:], sig[:]) == nil
}

// Verify checks that c holds a valid signature over transcript from every
// one of parties, in order.
func (c Certificate) Verify(parties []envelope.Party, transcript [32]byte) error {
	if len(c) != len(parties) {
		return fmt.Errorf("%w: certificate of %d signatures for %d parties", ErrRecovery, len(c), len(parties))
	}
	for i, p := range parties {
		if !verifyTranscriptSig(p, transcript, c[i]) {
			return fmt.Errorf("%w: certificate signature %d (%s) invalid", ErrRecovery, i, envelope.Short(p))
		}
	}
	return nil
}

func (c Certificate) marshal() []byte {
	b := make([]byte, 0, len(c)*envelope.SigSize)
	for i := range c {
		b = append(b, c[i][:]...)
	}
	return b
}

func parseCertificate(b []byte, n int) (Certificate, error) {
	if len(b) != n*envelope.SigSize {
		return nil, fmt.Errorf("certificate of %d bytes for %d parties", len(b), n)
	}
	c := make(Certificate, n)
	for i := range c {
		copy(c[i][:], b[i*envelope.SigSize:])
	}
	return c, nil
}

// Durable persists one party's outcome of a certified ceremony (in quorumd:
// HSM sealing and the key store). The ceremony calls Prepare before this
// party signs the transcript, so its signature promises a durable share.
type Durable interface {
	// Prepare stores the share as pending together with rd (no certificate
	// yet) and returns only once that is durable. An error aborts the
	// ceremony with ErrCommit before this party signs: then no certificate
	// can exist, and the others learn so from its refusal.
	Prepare(ks *KeyShare, rd *RecoveryData) error
	// Certified records the success certificate (rd.Cert is set): the record
	// becomes ready. It may be lazy: a prepared record plus a certificate
	// held by anyone is already complete (recovery finishes it).
	Certified(info *KeyInfo, rd *RecoveryData) error
	// Discard drops the prepared record. It is called only on proof that no
	// certificate can exist: this party never released its transcript
	// signature (it aborted before signing, e.g. on a member's refusal).
	Discard(info *KeyInfo) error
	// Refused notes, on the still pending record, that member by refused
	// after this party signed: no proof that no certificate exists (by may
	// have signed for others), so the record stays pending, unusable until
	// recovery makes it ready or an operator deletes it. Best effort.
	Refused(info *KeyInfo, by envelope.Party) error
}

// Rounds of the certify step, the same numbers in every certified ceremony.
const (
	roundPrepared uint8 = 0xef // broadcast: transcript ‖ ceremony evidence, after the durable prepare
	roundCertify  uint8 = 0xf0 // broadcast: transcript ‖ signature ‖ ceremony evidence
	roundCert     uint8 = 0xf1 // broadcast: transcript ‖ certificate
)

// certSendTimeout bounds the best-effort broadcast of a certificate.
const certSendTimeout = 2 * time.Second

// mismatchFunc explains a prepared announcement or transcript signature
// over another transcript (theirEvidence is the sender's ceremony
// evidence): whom to blame.
type mismatchFunc func(e *envelope.Envelope, theirEvidence []byte) *AbortError

// certify is prepare-then-certify's second half, written once for every
// ceremony that ends in a key share (DESIGN §3, CertEq). The caller has
// durably prepared; certify first announces that (roundPrepared, with the
// transcript and evidence, what the ceremony needs to blame a mismatch)
// and waits until every other member announced the same transcript; only
// then does it sign, broadcast the signature and wait for all N signatures
// or a certificate from anyone; holding it, it broadcasts the certificate
// and returns it.
//
// The barrier is what makes failures clean: an honest member that fails
// (a bad share, a failed durable write, a crash, a timeout) never announces
// prepared, so no honest party signs and every one can prove to itself that
// no certificate exists (its own signature was never released): any
// failure before signing lets the caller discard (p.signed stays false).
//
// After the signature, nothing this party receives proves that no
// certificate exists: a member that refuses to this party may have signed
// for the others, who then hold every signature, this party's included.
// So every failure after signing wraps ErrPending and the caller keeps its
// prepared record. A refusal (Refused set, ReportedBy naming the member)
// shortens the wait to refusalGrace, enough for an honest peer's
// certificate to arrive if the refuser equivocated; a mismatching
// signature is not proof either (a member may sign two transcripts), so
// certify keeps waiting for a certificate after one and reports it only if
// none comes.
func (p *party) certify(ctx context.Context, transcript [32]byte, evidence []byte, mismatch mismatchFunc) (Certificate, error) {
	if err := p.awaitPrepared(ctx, transcript, evidence, mismatch); err != nil {
		return nil, err
	}
	n := len(p.members)
	myID := p.index[p.me]
	sig, err := p.signCert(transcript)
	if err != nil {
		return nil, abortf(roundCertify, envelope.Broadcast, ErrInput, "signing the transcript: %v", err)
	}
	p.signed = true
	cert := make(Certificate, n)
	have := make([]bool, n)
	cert[myID], have[myID] = sig, true
	got := 1
	pending := func(cause *AbortError) error {
		ae := *cause
		ae.Err = fmt.Errorf("%w: %w", ErrPending, cause.Err)
		return &ae
	}
	payload := append(append(append(make([]byte, 0, 96+len(evidence)), transcript[:]...), sig[:]...), evidence...)
	// Sent even if the deadline passed meanwhile: once signed, the
	// signature is worth delivering (the others may still be waiting).
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), certSendTimeout)
	err = p.send(sctx, roundCertify, envelope.Broadcast, payload, false)
	scancel()
	if err != nil {
		// Our signature may have reached someone: a certificate may exist.
		return nil, pending(err.(*AbortError))
	}
	var cause, timedOut, refused *AbortError
	noticed := make([]bool, n) // members whose abort or refusal arrived
	noticed[myID] = true
	wait := ctx
	for got < n {
		e, err := p.next(wait, func() string { return p.missingSigs(have) }, roundCertify, roundCert)
		if err != nil {
			ae := err.(*AbortError)
			if ae.ReportedBy != envelope.Broadcast {
				i, signer := p.index[ae.ReportedBy]
				switch {
				case ae.Refused && signer && !have[i] && refused == nil:
					// Not proof: it may have signed for others. Wait a
					// little for their certificate.
					refused = ae
					gctx, cancel := context.WithTimeout(wait, refusalGrace)
					defer cancel()
					wait = gctx
				case cause == nil:
					// An abort from a party that signed (or a refusal from
					// one that did, or from an external dealer): a
					// certificate may still come from another.
					cause = ae
				}
				if signer {
					noticed[i] = true
				}
				if !slices.Contains(noticed, false) {
					// Every other member gave up: no honest one will pass
					// a certificate on.
					return nil, p.afterSigning(refused, cause, ae)
				}
				continue
			}
			if refused != nil && errors.Is(ae.Err, ErrTimeout) {
				return nil, p.afterSigning(refused, cause, ae)
			}
			if timedOut == nil && errors.Is(ae.Err, ErrTimeout) {
				// Past our deadline, listen a little longer: a late
				// certificate still completes the key, and a refusal
				// names who stopped it.
				timedOut = ae
				gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refusalGrace)
				defer cancel()
				wait = gctx
				continue
			}
			if timedOut != nil {
				ae = timedOut
				if ms := p.missingList(have); len(ms) == 1 {
					ae.Culprit = ms[0]
				}
			}
			if cause != nil {
				ae.Culprit = cause.Culprit
				ae.Detail = cause.Error() + "; " + ae.Detail
				ae.Err = fmt.Errorf("%w: %w", ae.Err, cause.Err)
			}
			return nil, pending(ae)
		}
		if len(e.Payload) < 32 || [32]byte(e.Payload[:32]) != transcript {
			if cause == nil && e.Round == roundCertify && len(e.Payload) >= 96 {
				cause = mismatch(e, e.Payload[96:])
			}
			continue
		}
		if e.Round == roundCert {
			c, err := parseCertificate(e.Payload[32:], n)
			if err == nil && p.checkCert(c, transcript, cert, have) == nil {
				cert, got = c, n
			}
			continue
		}
		i, signer := p.index[e.From]
		if !signer || len(e.Payload) < 96 || have[i] {
			continue
		}
		s := [64]byte(e.Payload[32:96])
		if p.verifySig(i, transcript, s) {
			cert[i], have[i] = s, true
			got++
		}
	}
	p.sendCert(ctx, append(transcript[:], cert.marshal()...))
	return cert, nil
}

// sendCert broadcasts the certificate, best effort: it serves only members
// that missed a signature. With lateTail it is signed now (the identity
// key may be zeroed once the ceremony returns) and posted after the
// caller's answer (tail.Go), off the answer's path; leaveLater leaves
// after it.
func (p *party) sendCert(ctx context.Context, payload []byte) {
	if !p.lateTail || p.split != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), certSendTimeout)
		defer cancel()
		_ = p.send(sctx, roundCert, envelope.Broadcast, payload, false)
		return
	}
	raw, err := p.out.Seal(roundCert, envelope.Broadcast, payload, false)
	if err != nil {
		return
	}
	if queueNext(p.tr) {
		// Queued, no request: leaveLater's Leave (after the answer) posts
		// it and leaves in one request. (A Send that cannot queue posts at
		// once, within the certificate's own budget.)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), certSendTimeout)
		defer cancel()
		_ = p.tr.Send(sctx, envelope.Broadcast, raw)
		return
	}
	done := make(chan struct{})
	p.tail = done
	tr := p.tr
	tail.Go(ctx, func() {
		defer close(done)
		// The post's time starts when it does, not when it was deferred.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), certSendTimeout)
		defer cancel()
		_ = tr.Send(sctx, envelope.Broadcast, raw)
	})
}

// leaveLater leaves the room after the caller's answer (tail.Go), after
// the certificate's broadcast if one is deferred: nothing of it is worth a
// caller's wait. The ECDH secrets are wiped now (the certificate is
// already sealed).
func (p *party) leaveLater(ctx context.Context) {
	p.ch.Zero()
	posted, tr := p.tail, p.tr
	if _, ok := tr.(Leaver); !ok {
		return
	}
	tail.Go(ctx, func() {
		if posted != nil {
			<-posted
		}
		leave(tr)
	})
}

// afterSigning is certify's failure once this party signed: pending, and
// when a member refused, Refused and naming it (ReportedBy) as the reason
// this party holds no certificate.
func (p *party) afterSigning(refused, cause, last *AbortError) *AbortError {
	ae := *last
	if refused != nil {
		ae = *refused
		ae.Detail = fmt.Sprintf("%s refused after this party signed its transcript signature; "+
			"it may have signed for the others, so the share stays pending (recover it, or delete the key): %s",
			envelope.Short(refused.ReportedBy), refused.Detail)
	} else if cause != nil {
		ae = *cause
	}
	ae.Err = fmt.Errorf("%w: %w", ErrPending, ae.Err)
	return &ae
}

// awaitPrepared broadcasts that this party durably prepared transcript
// and waits until every other member announced the same: the barrier
// before this party's signature. Any failure here leaves p.signed false,
// so the caller may discard: no certificate can include a signature that
// was never made.
func (p *party) awaitPrepared(ctx context.Context, transcript [32]byte, evidence []byte, mismatch mismatchFunc) error {
	n := len(p.members)
	have := make([]bool, n)
	have[p.index[p.me]] = true
	got := 1
	payload := append(append(make([]byte, 0, 32+len(evidence)), transcript[:]...), evidence...)
	queueNext(p.tr) // on a relay, the post rides on the fetch that follows
	if err := p.send(ctx, roundPrepared, envelope.Broadcast, payload, false); err != nil {
		return err
	}
	for got < n {
		e, err := p.next(ctx, func() string {
			return "not every member announced its durable prepare: missing " + shortList(p.missingList(have))
		}, roundPrepared)
		if err != nil {
			ae := err.(*AbortError)
			if ms := p.missingList(have); errors.Is(ae.Err, ErrTimeout) && len(ms) == 1 {
				ae.Culprit = ms[0]
			}
			return ae
		}
		i, member := p.index[e.From]
		if !member || have[i] {
			continue
		}
		if len(e.Payload) < 32 || [32]byte(e.Payload[:32]) != transcript {
			return mismatch(e, e.Payload[min(32, len(e.Payload)):])
		}
		have[i] = true
		got++
	}
	return nil
}

// certScheme makes and checks a ceremony's transcript signatures when they
// are not quorumd's own (signTranscript): keygen's are ChillDKG's CertEq
// signatures, so its certificate and recovery data are the spec's.
type certScheme interface {
	sign(transcript [32]byte) ([64]byte, error)
	verify(id int, transcript [32]byte, sig [64]byte) bool
}

func (p *party) signCert(transcript [32]byte) ([64]byte, error) {
	if p.scheme != nil {
		return p.scheme.sign(transcript)
	}
	return signTranscript(p.id, transcript)
}

func (p *party) verifySig(id int, transcript [32]byte, sig [64]byte) bool {
	if p.scheme != nil {
		return p.scheme.verify(id, transcript, sig)
	}
	return verifyTranscriptSig(p.members[id], transcript, sig)
}

// checkCert checks a certificate received from another party. This party
// already verified the signatures known[i] where have[i]: a certificate
// carrying those very bytes needs only its other signatures verified (in a
// large ceremony a late party gets certificates while it still collects
// signatures).
func (p *party) checkCert(c Certificate, transcript [32]byte, known Certificate, have []bool) error {
	if len(c) != len(p.members) {
		return fmt.Errorf("%w: certificate of %d signatures for %d parties", ErrRecovery, len(c), len(p.members))
	}
	for i := range c {
		if i < len(have) && have[i] && known[i] == c[i] {
			continue
		}
		if !p.verifySig(i, transcript, c[i]) {
			return fmt.Errorf("%w: certificate signature %d (%s) invalid", ErrRecovery, i, envelope.Short(p.members[i]))
		}
	}
	return nil
}

func (p *party) missingSigs(have []bool) string {
	return fmt.Sprintf("no success certificate: transcript signatures missing from %s", shortList(p.missingList(have)))
}

func (p *party) missingList(have []bool) []envelope.Party {
	var ms []envelope.Party
	for i, h := range have {
		if !h {
			ms = append(ms, p.members[i])
		}
	}
	return ms
}

// refusalGrace is how long a party still listens for a certificate once
// its deadline passed or a member refused after it signed: parties that
// never got to sign refuse at their own deadline, which is about ours, and
// an honest peer passes a certificate on at once (a late certificate turns
// "pending" into success).
const refusalGrace = 2 * time.Second

// prepareAndCertify is a certified ceremony's ending once this party holds
// its new share (ks) and recovery data: Prepare durably, certify, then
// Certified. On failure before this party signed, Discard (nothing can be
// certified without its signature); after, keep the pending record, noting
// a member's refusal with Refused. ks.Share is zeroed. Errors as Import's.
//
// overlap, if not nil, waits for work the ceremony left running alongside
// Prepare (it may read ks, never write it): a check of what ks came from,
// or a post. Its failure aborts before this party signs, discarding what
// Prepare stored.
func prepareAndCertify(ctx context.Context, pt *party, ks *KeyShare, rd *RecoveryData, d Durable, evidence []byte, mismatch mismatchFunc, overlap func() error) (*KeyInfo, error) {
	info := ks.KeyInfo
	err := d.Prepare(ks, rd)
	var oerr error
	if overlap != nil {
		oerr = overlap()
	}
	ks.Share.Zero()
	if oerr != nil {
		var ae *AbortError
		if !errors.As(oerr, &ae) {
			ae = &AbortError{Round: roundCertify, Err: oerr}
		}
		if err == nil {
			if derr := d.Discard(&info); derr != nil {
				ae.Err = fmt.Errorf("%w (and discarding the prepared share failed: %w)", ae.Err, derr)
			}
		}
		return nil, pt.fail(ae)
	}
	if err != nil {
		return nil, pt.fail(&AbortError{Round: roundCertify, Err: fmt.Errorf("%w: %w", ErrCommit, err)})
	}
	cert, err := pt.certify(ctx, info.Transcript, evidence, mismatch)
	if err != nil {
		ae := err.(*AbortError)
		switch {
		case !pt.signed:
			if derr := d.Discard(&info); derr != nil {
				ae.Err = fmt.Errorf("%w (and discarding the prepared share failed: %w)", ae.Err, derr)
			}
		case ae.Refused:
			_ = d.Refused(&info, ae.ReportedBy) // the record is pending either way
		}
		return nil, pt.announce(ae)
	}
	rd.Cert = cert
	// A prepared record plus a certificate anywhere is complete: a failure
	// to mark it ready is finished by recovery, not an abort.
	_ = d.Certified(&info, rd)
	return &info, nil
}

// announce tells the others how this party's ceremony ended, even when
// another party's notice ended it: a refusal while it never signed, an
// abort after. It returns ae unchanged.
func (p *party) announce(ae *AbortError) error {
	own := *ae
	own.ReportedBy = envelope.Broadcast
	_ = p.fail(&own)
	return ae
}
