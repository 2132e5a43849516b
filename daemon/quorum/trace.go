package quorum

import (
	"context"
	"fmt"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/mpc/ceremony"
	"github.com/quorumd/quorumd/mpc/envelope"
)

// tracedTransport marks every envelope a ceremony sends or receives in the
// request's phase trace (daemon.Phases, log level debug only): "send r1",
// "recv r240", so a trace shows which round's message a party waited for.
// The relay seat is claimed inside the first call, so that call includes it.
type tracedTransport struct {
	ceremony.Transport
	ctx context.Context // the request's, for Leave (called without it)
}

// traced wraps tr when ctx carries a phase trace.
func traced(ctx context.Context, tr ceremony.Transport) ceremony.Transport {
	if !daemon.Tracing(ctx) {
		return tr
	}
	return &tracedTransport{Transport: tr, ctx: ctx}
}

func roundOf(raw []byte) int {
	if len(raw) > 6 {
		return int(raw[6]) // the header's round byte (mpc/envelope)
	}
	return -1
}

func (t *tracedTransport) Send(ctx context.Context, to envelope.Party, body []byte) error {
	err := t.Transport.Send(ctx, to, body)
	daemon.MarkPhase(t.ctx, fmt.Sprintf("send_r%d", roundOf(body)))
	return err
}

func (t *tracedTransport) Recv(ctx context.Context) ([]byte, error) {
	b, err := t.Transport.Recv(ctx)
	daemon.MarkPhase(t.ctx, fmt.Sprintf("recv_r%d", roundOf(b)))
	return b, err
}

// Claim forwards to the transport's Claim, if it has one.
func (t *tracedTransport) Claim(ctx context.Context) error {
	c, ok := t.Transport.(ceremony.Claimer)
	if !ok {
		return nil
	}
	err := c.Claim(ctx)
	daemon.MarkPhase(t.ctx, "seat_claim")
	return err
}

// Leave forwards to the transport's Leave, if it has one.
func (t *tracedTransport) Leave(ctx context.Context) error {
	l, ok := t.Transport.(ceremony.Leaver)
	if !ok {
		return nil
	}
	err := l.Leave(ctx)
	daemon.MarkPhase(t.ctx, "leave")
	return err
}
