package ceremony

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/quorumd/quorumd/mpc/envelope"
)

// Notice rounds, valid in any ceremony: roundAbort from a party that may
// already have signed the ceremony's transcript, roundRefuse from one that
// has not and never will (proof that no success certificate can exist).
const (
	roundAbort  uint8 = 0xff
	roundRefuse uint8 = 0xfe
)

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
	ch      *envelope.Channels // ECDH secrets with the peers, zeroed by leave
	pending map[uint8][]*envelope.Envelope
	p2p     map[uint8]bool // point-to-point rounds; all others are broadcast
	aborted bool
	// signed is set once this party signed the ceremony's transcript: from
	// then on its notices are aborts, never refusals.
	signed   bool
	drops    int
	lastDrop string

	// lateTail posts the certificate and leaves the room in the background
	// (sendCert, leaveLater); tail is closed once that post is done.
	lateTail bool
	tail     chan struct{}

	scheme   certScheme // nil: quorumd's transcript signatures (certify.go)
	split    splitFunc  // tests only
	splitOut map[envelope.Party]*envelope.Sender
}

func newParty(id *envelope.Identity, kind uint8, session [envelope.SessionIDSize]byte, members []envelope.Party, tr Transport, p2pRounds ...uint8) *party {
	p2p := make(map[uint8]bool, len(p2pRounds))
	for _, r := range p2pRounds {
		p2p[r] = true
	}
	idx := make(map[envelope.Party]int, len(members))
	for i, m := range members {
		idx[m] = i
	}
	ch := envelope.NewChannels()
	return &party{
		id: id, me: id.Public(), members: members, index: idx, tr: tr, ch: ch,
		in:      envelope.NewInbox(id, kind, session, members).WithChannels(ch),
		out:     envelope.NewSender(id, kind, session).WithChannels(ch),
		pending: map[uint8][]*envelope.Envelope{},
		p2p:     p2p,
	}
}

// leave ends the party's part in the ceremony: it leaves the room (when the
// transport can) and wipes the ECDH secrets with its peers.
func (p *party) leave() {
	leave(p.tr)
	p.ch.Zero()
}

// send seals and posts one envelope; a transport failure aborts the round.
func (p *party) send(ctx context.Context, round uint8, to envelope.Party, payload []byte, encrypt bool) error {
	_, err := p.sealSend(ctx, round, to, payload, encrypt)
	return err
}

// sealSend is send returning the envelope as sent (kept as recovery data).
func (p *party) sealSend(ctx context.Context, round uint8, to envelope.Party, payload []byte, encrypt bool) ([]byte, error) {
	raw, err := p.out.Seal(round, to, payload, encrypt)
	if err != nil {
		return nil, abortf(round, envelope.Broadcast, ErrProtocol, "sealing: %v", err)
	}
	if p.split != nil && to.IsBroadcast() {
		return raw, p.sendSplit(ctx, round, payload)
	}
	if err := p.tr.Send(ctx, to, raw); err != nil {
		return nil, sendAbort(ctx, round, err)
	}
	return raw, nil
}

func sendAbort(ctx context.Context, round uint8, err error) *AbortError {
	if ctx.Err() != nil {
		return abortf(round, envelope.Broadcast, ErrTimeout, "sending round %d", round)
	}
	return abortf(round, envelope.Broadcast, fmt.Errorf("%w: %w", ErrTransport, err), "sending round %d", round)
}

// broadcastBoxesAsync seals payload to each of to, each copy sealed to its
// recipient (envelope.SealBox, ECDH from the party's Channels), all in one
// broadcast of round after head (public, e.g. a view of the round before):
// one envelope signature and one relay post instead of one encrypted
// envelope per recipient. The boxes follow the order of to; openBox finds a
// recipient's. Sealing happens now; the post runs in the background, and
// the returned func waits for it and returns its error: call it before
// anything else is sent and before the ceremony ends.
func (p *party) broadcastBoxesAsync(ctx context.Context, round uint8, to []envelope.Party, head, payload []byte) func() error {
	b := make([]byte, 0, len(head)+len(to)*(len(payload)+envelope.BoxOverhead))
	b = append(b, head...)
	for _, m := range to {
		box, err := envelope.SealBox(p.id, p.ch, m, p.in.Session(), []byte{'b', round}, payload)
		if err != nil {
			return failed(abortf(round, envelope.Broadcast, ErrProtocol, "sealing: %v", err))
		}
		b = append(b, box...)
	}
	return p.sendAsync(ctx, round, envelope.Broadcast, b)
}

// sendAsync seals a broadcast now and posts it in the background; the
// returned func waits for the post (see broadcastBoxesAsync).
func (p *party) sendAsync(ctx context.Context, round uint8, to envelope.Party, payload []byte) func() error {
	if p.split != nil || sendsLazily(p.tr) {
		// A lazy transport's Send only queues: nothing to overlap.
		return failed(p.send(ctx, round, to, payload, false))
	}
	raw, err := p.out.Seal(round, to, payload, false)
	if err != nil {
		return failed(abortf(round, envelope.Broadcast, ErrProtocol, "sealing: %v", err))
	}
	done := make(chan error, 1)
	go func() { done <- p.tr.Send(ctx, to, raw) }()
	return sync.OnceValue(func() error {
		if err := <-done; err != nil {
			return sendAbort(ctx, round, err)
		}
		return nil
	})
}

func failed(err error) func() error { return func() error { return err } }

// openBox returns this party's payload from a broadcastBoxesAsync envelope
// e, after its head of skip bytes, whose sender sealed to recipients to
// (this party among them; the boxes are of equal size). A malformed
// broadcast or a box that does not open aborts naming the sender, whose
// signature the envelope carries.
func (p *party) openBox(e *envelope.Envelope, skip int, to []envelope.Party) ([]byte, error) {
	i := slices.Index(to, p.me)
	boxes := e.Payload[min(skip, len(e.Payload)):]
	if i < 0 || len(e.Payload) < skip || len(boxes)%len(to) != 0 || len(boxes)/len(to) < envelope.BoxOverhead {
		return nil, abortf(e.Round, e.From, ErrProtocol, "round %d broadcast of %d bytes for %d recipients", e.Round, len(e.Payload), len(to))
	}
	boxSize := len(boxes) / len(to)
	pt, err := envelope.OpenBox(p.id, p.ch, e.From, p.in.Session(), []byte{'b', e.Round}, boxes[i*boxSize:(i+1)*boxSize])
	if err != nil {
		return nil, abortf(e.Round, e.From, ErrProtocol, "round %d: this party's box does not open", e.Round)
	}
	return pt, nil
}

// boxesFrom is the recipients of sender's broadcastBoxes among signers:
// every signer but the sender, in order.
func boxesFrom(signers []envelope.Party, sender envelope.Party) []envelope.Party {
	return slices.DeleteFunc(slices.Clone(signers), func(s envelope.Party) bool { return s == sender })
}

// splitFunc lets tests play a member that sends each party its own version
// of a broadcast (or none): what an honest relay cannot tell from a real
// broadcast. It returns the payload for to, and whether to send at all.
type splitFunc func(round uint8, to envelope.Party, payload []byte) ([]byte, bool)

// sendSplit posts a broadcast as one broadcast-headed envelope per member,
// each through its own Sender so every recipient sees a gapless sequence.
func (p *party) sendSplit(ctx context.Context, round uint8, payload []byte) error {
	if p.splitOut == nil {
		p.splitOut = map[envelope.Party]*envelope.Sender{}
	}
	for _, m := range p.others() {
		pl, ok := p.split(round, m, append([]byte(nil), payload...))
		if !ok {
			continue
		}
		out := p.splitOut[m]
		if out == nil {
			out = envelope.NewSender(p.id, p.in.Kind(), p.in.Session()).WithChannels(p.ch)
			p.splitOut[m] = out
		}
		raw, err := out.Seal(round, envelope.Broadcast, pl, false)
		if err != nil {
			return abortf(round, envelope.Broadcast, ErrProtocol, "sealing: %v", err)
		}
		if err := p.tr.Send(ctx, m, raw); err != nil {
			return sendAbort(ctx, round, err)
		}
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
	for n < need {
		e, err := p.next(ctx, func() string { return p.missing(round, from, got, need) }, round)
		if err != nil {
			if ae, ok := err.(*AbortError); ok && errors.Is(ae.Err, ErrTimeout) && need == len(from) && len(from)-n == 1 {
				for i, f := range from {
					if got[i] == nil {
						ae.Culprit = f
					}
				}
			}
			return nil, err
		}
		i, ok := want[e.From]
		if !ok {
			return nil, abortf(round, e.From, ErrProtocol, "unexpected round %d envelope from a party not expected in this round", e.Round)
		}
		if got[i] != nil {
			return nil, abortf(round, e.From, ErrProtocol, "second round %d envelope from the same party", e.Round)
		}
		if check != nil {
			if err := check(e); err != nil {
				return nil, err
			}
		}
		got[i] = e
		n++
	}
	return got, nil
}

// missing describes, for a timeout, whose round messages never came.
func (p *party) missing(round uint8, from []envelope.Party, got []*envelope.Envelope, need int) string {
	var ms []envelope.Party
	n := 0
	for i, f := range from {
		if got[i] == nil {
			ms = append(ms, f)
		} else {
			n++
		}
	}
	return fmt.Sprintf("%d of %d round %d messages missing (not heard from %s)", need-n, need, round, shortList(ms))
}

// next returns the next accepted envelope of round: first any kept from
// earlier, then from the transport. Envelopes of later rounds are kept; an
// abort or refusal notice ends the wait with a remote abort. What the inbox
// refuses (forged, undecodable, from a non-member, replayed or misrouted by
// the relay) and what is mistyped for its round (a unicast in a broadcast
// round, a broadcast in a point-to-point one) is dropped and counted rather
// than aborting everyone: the relay could have dropped it anyway, and an
// outsider must not be able to end a ceremony. Only what a member's
// signature proves it sent wrongly (a wrong kind, a payload that does not
// decrypt) still aborts naming it. rounds are the rounds awaited, the first
// being the current one; timeoutDetail describes a timeout.
func (p *party) next(ctx context.Context, timeoutDetail func() string, rounds ...uint8) (*envelope.Envelope, error) {
	round, last := rounds[0], rounds[0]
	for _, r := range rounds {
		if q := p.pending[r]; len(q) > 0 {
			e := q[0]
			p.pending[r] = q[1:]
			return e, nil
		}
		last = max(last, r)
	}
	for {
		raw, err := p.tr.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
				d := timeoutDetail()
				if p.drops > 0 {
					d += fmt.Sprintf("; %d envelopes dropped (last: %s)", p.drops, p.lastDrop)
				}
				return nil, &AbortError{Round: round, Err: ErrTimeout, Detail: d}
			}
			return nil, abortf(round, envelope.Broadcast, fmt.Errorf("%w: %w", ErrTransport, err), "receiving round %d", round)
		}
		e, err := p.in.Accept(raw)
		if err != nil {
			if ae := rejectAbort(round, err); ae.HasCulprit() && !errors.Is(err, envelope.ErrNonMember) {
				return nil, ae
			}
			p.drop(err)
			continue
		}
		switch {
		case e.Round == roundAbort || e.Round == roundRefuse:
			return nil, remoteAbort(round, e)
		case p.typed(e) != nil:
			p.drop(p.typed(e))
		case slices.Contains(rounds, e.Round):
			return e, nil
		case e.Round > last:
			p.pending[e.Round] = append(p.pending[e.Round], e)
		default:
			p.drop(fmt.Errorf("%w: round %d envelope during round %d", errLate, e.Round, round))
		}
	}
}

// Reasons for dropping an envelope that the Inbox accepted.
var (
	errMistyped = errors.New("envelope of the wrong type for its round")
	errLate     = errors.New("envelope for an earlier round")
)

// typed checks an envelope against its round's type: broadcast rounds take
// only broadcast envelopes, point-to-point rounds only ones to this party.
func (p *party) typed(e *envelope.Envelope) error {
	if p.p2p[e.Round] == e.To.IsBroadcast() {
		return fmt.Errorf("%w: round %d", errMistyped, e.Round)
	}
	return nil
}

func (p *party) drop(err error) {
	p.drops++
	p.lastDrop = err.Error()
	countDrop(err)
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
	ae := &AbortError{Round: round, ReportedBy: e.From, Err: ErrRemoteAbort, Refused: e.Round == roundRefuse}
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
	notice := roundRefuse
	if p.signed {
		notice = roundAbort
	}
	_ = p.send(ctx, notice, envelope.Broadcast, payload, false)
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
