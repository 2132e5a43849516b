package ceremony

import (
	"testing"

	"github.com/quorumd/quorumd/mpc/envelope"
)

// FuzzRedealDeal: a reshare deal is untrusted input to every party (a new
// party learns the old key from it); its decoding and checks never panic.
func FuzzRedealDeal(f *testing.F) {
	_, hs := dealtKey(f, 2, 3)
	newcomer := newIdentity(f)
	set := []envelope.Party{hs[0].id.Public(), hs[1].id.Public(), newcomer.Public()}
	envelope.SortParties(set)
	r := redealFor(envelope.KindReshare, "fuzz", 2, set, hs[0].info)
	raw := sealDeal(f, r, hs[0])
	e, err := envelope.Unmarshal(raw)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(e.Payload)
	f.Add([]byte{0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, payload []byte) {
		nr := redealFor(envelope.KindReshare, "fuzz", 2, set, nil)
		d := &envelope.Envelope{Kind: envelope.KindReshare, Round: roundDeal, From: hs[0].id.Public(), To: envelope.Broadcast, Payload: payload}
		if nr.adoptContext(d) != nil {
			return
		}
		if s, err := nr.checkDeal(newcomer, d); err == nil {
			s.Zero()
		}
	})
}
