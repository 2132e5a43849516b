package chilldkg

import (
	"fmt"
	"testing"
)

// benchSession is a finished session whose messages the benchmarks replay:
// ParticipantStep1 with the same randomness reproduces the same message, so
// one participant's three steps can be timed against fixed coordinator
// messages.
type benchSession struct {
	keys          [][]byte
	params        SessionParams
	random, aux   []byte
	pmsgs1        [][]byte
	cmsg1         []byte
	pmsgs2        [][]byte
	cmsg2         []byte
	recoveryData  RecoveryData
	participantSt []*ParticipantState1
}

func newBenchSession(b *testing.B, thr, n int) *benchSession {
	s := &benchSession{random: randBytes(b, 32), aux: randBytes(b, 32)}
	s.keys, s.params = newHostKeys(b, n)
	s.params.T = thr
	s.pmsgs1 = make([][]byte, n)
	s.participantSt = make([]*ParticipantState1, n)
	for i := range n {
		var err error
		if s.participantSt[i], s.pmsgs1[i], err = ParticipantStep1(s.keys[i], s.params, s.random); err != nil {
			b.Fatal(err)
		}
	}
	cs, c1, err := CoordinatorStep1(s.pmsgs1, s.params)
	if err != nil {
		b.Fatal(err)
	}
	s.cmsg1 = c1
	s.pmsgs2 = make([][]byte, n)
	for i := range n {
		if _, s.pmsgs2[i], err = ParticipantStep2(s.keys[i], s.participantSt[i], c1, s.aux); err != nil {
			b.Fatal(err)
		}
	}
	if s.cmsg2, _, s.recoveryData, err = CoordinatorFinalize(cs, s.pmsgs2); err != nil {
		b.Fatal(err)
	}
	return s
}

var benchSizes = []struct{ t, n int }{{2, 3}, {3, 5}, {7, 10}, {67, 100}}

// BenchmarkKeygen times, per size, one participant's compute for a whole
// session (step 1, step 2, finalize), the coordinator's (step 1, finalize),
// and a party in a deployment without a trusted coordinator, which does both.
// Message transport is not included.
func BenchmarkKeygen(b *testing.B) {
	for _, sz := range benchSizes {
		name := fmt.Sprintf("%d-of-%d", sz.t, sz.n)
		var s *benchSession
		setup := func(b *testing.B) {
			if s == nil {
				s = newBenchSession(b, sz.t, sz.n)
			}
		}
		participant := func(b *testing.B) {
			st1, _, err := ParticipantStep1(s.keys[0], s.params, s.random)
			if err != nil {
				b.Fatal(err)
			}
			st2, _, err := ParticipantStep2(s.keys[0], st1, s.cmsg1, s.aux)
			if err != nil {
				b.Fatal(err)
			}
			out, _, err := ParticipantFinalize(st2, s.cmsg2)
			if err != nil {
				b.Fatal(err)
			}
			out.Zero()
			st2.Zero()
		}
		coordinator := func(b *testing.B) {
			cs, _, err := CoordinatorStep1(s.pmsgs1, s.params)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, _, err := CoordinatorFinalize(cs, s.pmsgs2); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(name+"/participant", func(b *testing.B) {
			setup(b)
			for b.Loop() {
				participant(b)
			}
		})
		b.Run(name+"/coordinator", func(b *testing.B) {
			setup(b)
			for b.Loop() {
				coordinator(b)
			}
		})
		b.Run(name+"/party-without-coordinator", func(b *testing.B) {
			setup(b)
			for b.Loop() {
				participant(b)
				coordinator(b)
			}
		})
	}
}

// BenchmarkRecover times ParticipantRecover per size.
func BenchmarkRecover(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(fmt.Sprintf("%d-of-%d", sz.t, sz.n), func(b *testing.B) {
			s := newBenchSession(b, sz.t, sz.n)
			for b.Loop() {
				out, _, err := ParticipantRecover(s.keys[0], s.recoveryData)
				if err != nil {
					b.Fatal(err)
				}
				out.Zero()
			}
		})
	}
}
