package ceremony

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/quorumd/quorumd/mpc/envelope"
)

// roundAbort is the round number of abort notices, valid in any ceremony.
const roundAbort uint8 = 0xff

// maxReason bounds the human-readable reason in an abort notice.
const maxReason = 256

// party is the runtime shared by the ceremonies: it sends envelopes, checks
// incoming ones, buffers those of later rounds, and turns every failure into
// an AbortError that it also announces to the others.
type party struct {
	id      *envelope.Identity
	me      envelope.Party
	members []envelope.Party // sorted; index = BIP445 id
	index   map[envelope.Party]int
	tr      Transport
	in      *envelope.Inbox
	out     *envelope.Sender
	pending map[uint8][]*envelope.Envelope
	aborted bool
}

func newParty(id *envelope.Identity, kind uint8, session [envelope.SessionIDSize]byte, members []envelope.Party, tr Transport) *party {
	idx := make(map[envelope.Party]int, len(members))
	for i, m := range members {
		idx[m] = i
	}
	return &party{
		id: id, me: id.Public(), members: members, index: idx, tr: tr,
		in:      envelope.NewInbox(id, kind, session, members),
		out:     envelope.NewSender(id, kind, session),
		pending: map[uint8][]*envelope.Envelope{},
	}
}

// send seals and posts one envelope; a transport failure aborts the round.
func (p *party) send(ctx context.Context, round uint8, to envelope.Party, payload []byte, encrypt bool) error {
	raw, err := p.out.Seal(round, to, payload, encrypt)
	if err != nil {
		return abortf(round, envelope.Broadcast, ErrProtocol, "sealing: %v", err)
	}
	if err := p.tr.Send(ctx, to, raw); err != nil {
		if ctx.Err() != nil {
			return abortf(round, envelope.Broadcast, ErrTimeout, "sending round %d", round)
		}
		return abortf(round, envelope.Broadcast, fmt.Errorf("%w: %w", ErrTransport, err), "sending round %d", round)
	}
	return nil
}

// collect returns one envelope of round from each of need distinct parties
// of from (all of them when need is len(from)), in the order of from, with
// nil for parties that were not heard. Envelopes of later rounds are kept
// for later; one of an earlier round, a second one from the same sender, or
// one from a party not in from is a protocol violation by its (signed)
// sender. check, when set, runs on each envelope as it arrives, so a bad
// contribution aborts at once rather than after the stragglers.
func (p *party) collect(ctx context.Context, round uint8, from []envelope.Party, need int, check func(*envelope.Envelope) error) ([]*envelope.Envelope, error) {
	want := make(map[envelope.Party]int, len(from))
	for i, f := range from {
		want[f] = i
	}
	got := make([]*envelope.Envelope, len(from))
	n := 0
	take := func(e *envelope.Envelope) error {
		i, ok := want[e.From]
		if !ok {
			return abortf(round, e.From, ErrProtocol, "unexpected round %d envelope from a party not expected in this round", e.Round)
		}
		if got[i] != nil {
			return abortf(round, e.From, ErrProtocol, "second round %d envelope from the same party", e.Round)
		}
		if check != nil {
			if err := check(e); err != nil {
				return err
			}
		}
		got[i] = e
		n++
		return nil
	}
	for _, e := range p.pending[round] {
		if err := take(e); err != nil {
			return nil, err
		}
	}
	delete(p.pending, round)
	for n < need {
		raw, err := p.tr.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
				missing := make([]envelope.Party, 0, len(from)-n)
				for i, f := range from {
					if got[i] == nil {
						missing = append(missing, f)
					}
				}
				culprit := envelope.Broadcast
				if len(missing) == 1 && need == len(from) {
					culprit = missing[0]
				}
				return nil, abortf(round, culprit, ErrTimeout, "%d of %d round %d messages missing (not heard from %s)", need-n, need, round, shortList(missing))
			}
			return nil, abortf(round, envelope.Broadcast, fmt.Errorf("%w: %w", ErrTransport, err), "receiving round %d", round)
		}
		e, err := p.in.Accept(raw)
		if err != nil {
			return nil, rejectAbort(round, err)
		}
		switch {
		case e.Round == roundAbort:
			return nil, remoteAbort(round, e)
		case e.Round == round:
			if err := take(e); err != nil {
				return nil, err
			}
		case e.Round > round:
			p.pending[e.Round] = append(p.pending[e.Round], e)
		default:
			return nil, abortf(round, e.From, ErrProtocol, "late envelope for round %d", e.Round)
		}
	}
	return got, nil
}

// others returns every member but this party, in id order.
func (p *party) others() []envelope.Party {
	out := make([]envelope.Party, 0, len(p.members)-1)
	for _, m := range p.members {
		if m != p.me {
			out = append(out, m)
		}
	}
	return out
}

// rejectAbort turns an Inbox rejection into an abort. A valid signature
// proves who wrote an envelope, not who delivered it: a replayed, reordered,
// misrouted or cross-session envelope is the relay's doing, so it names no
// culprit. The sender is blamed only for what its signature commits it to
// (an undecryptable payload, a wrong ceremony kind), and a non-member for
// being in the room at all.
func rejectAbort(round uint8, err error) *AbortError {
	var re *envelope.RejectError
	if errors.As(err, &re) {
		culprit := envelope.Broadcast
		switch {
		case errors.Is(err, envelope.ErrNonMember),
			re.Signed && (errors.Is(err, envelope.ErrDecrypt) || errors.Is(err, envelope.ErrWrongKind)):
			culprit = re.Claimed
		}
		return &AbortError{Round: round, Culprit: culprit, Err: fmt.Errorf("%w: %w", ErrRejected, re.Err)}
	}
	return &AbortError{Round: round, Err: fmt.Errorf("%w: %w", ErrRejected, err)}
}

// remoteAbort decodes another party's abort notice.
func remoteAbort(round uint8, e *envelope.Envelope) *AbortError {
	ae := &AbortError{Round: round, ReportedBy: e.From, Err: ErrRemoteAbort}
	if len(e.Payload) >= envelope.PartySize {
		copy(ae.Culprit[:], e.Payload[:envelope.PartySize])
		r := e.Payload[envelope.PartySize:]
		if len(r) > maxReason {
			r = r[:maxReason]
		}
		ae.Detail = printable(r)
	}
	return ae
}

// fail announces err to every other party (best effort, bounded in time)
// and returns it as an *AbortError.
func (p *party) fail(err error) error {
	var ae *AbortError
	if !errors.As(err, &ae) {
		ae = &AbortError{Err: err}
	}
	if p.aborted || ae.ReportedBy != envelope.Broadcast {
		return ae
	}
	p.aborted = true
	reason := ae.Err.Error()
	if ae.Detail != "" {
		reason += ": " + ae.Detail
	}
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	payload := append(append([]byte(nil), ae.Culprit[:]...), reason...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = p.send(ctx, roundAbort, envelope.Broadcast, payload, false)
	return ae
}

func shortList(ps []envelope.Party) string {
	s := ""
	for i, p := range ps {
		if i > 0 {
			s += ", "
		}
		s += envelope.Short(p)
	}
	return s
}

// printable keeps an untrusted reason safe to log.
func printable(b []byte) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c >= 0x20 && c < 0x7f {
			out = append(out, c)
		} else {
			out = append(out, '?')
		}
	}
	return string(out)
}
