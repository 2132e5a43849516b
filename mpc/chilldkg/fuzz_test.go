package chilldkg

import (
	"errors"
	"testing"
)

// Fuzz targets for the decoders, driven through the public functions that
// parse untrusted bytes: any input must give a result or one of the spec's
// errors, never a panic or an unclassified error.

// fuzzSession is a fixed 2-of-3 session (deterministic keys) whose messages
// seed the corpora.
type fuzzSession struct {
	keys   [][]byte
	params SessionParams
	pmsgs1 [][]byte
	st1    *ParticipantState1
	cmsg1  []byte
	cinvs  [][]byte
	rd     RecoveryData
}

func newFuzzSession(f *testing.F) *fuzzSession {
	s := &fuzzSession{params: SessionParams{T: 2}}
	for i := range 3 {
		k := make([]byte, 32)
		k[31] = byte(i + 1)
		k[0] = 0x5a
		pk, err := HostPubkeyGen(k)
		if err != nil {
			f.Fatal(err)
		}
		s.keys = append(s.keys, k)
		s.params.HostPubkeys = append(s.params.HostPubkeys, pk)
	}
	rnd := make([]byte, 32)
	rnd[0] = 1
	var sts []*ParticipantState1
	for i := range 3 {
		st, m, err := ParticipantStep1(s.keys[i], s.params, rnd)
		if err != nil {
			f.Fatal(err)
		}
		sts = append(sts, st)
		s.pmsgs1 = append(s.pmsgs1, m)
	}
	s.st1 = sts[0]
	cs, c1, err := CoordinatorStep1(s.pmsgs1, s.params)
	if err != nil {
		f.Fatal(err)
	}
	s.cmsg1 = c1
	if s.cinvs, err = CoordinatorInvestigate(s.pmsgs1, s.params); err != nil {
		f.Fatal(err)
	}
	var pm2 [][]byte
	for i := range 3 {
		_, m, err := ParticipantStep2(s.keys[i], sts[i], c1, rnd)
		if err != nil {
			f.Fatal(err)
		}
		pm2 = append(pm2, m)
	}
	if _, _, s.rd, err = CoordinatorFinalize(cs, pm2); err != nil {
		f.Fatal(err)
	}
	return s
}

func fuzzCheck(t *testing.T, err error) {
	if err != nil && errKind(err) == "unknown" && !errors.Is(err, ErrNoFault) {
		t.Fatalf("unclassified error %T: %v", err, err)
	}
}

// FuzzCoordinatorStep1 decodes a participant's first message.
func FuzzCoordinatorStep1(f *testing.F) {
	s := newFuzzSession(f)
	f.Add(s.pmsgs1[1])
	f.Add(s.pmsgs1[1][:100])
	f.Fuzz(func(t *testing.T, m []byte) {
		pm := append([][]byte(nil), s.pmsgs1...)
		pm[1] = m
		_, _, err := CoordinatorStep1(pm, s.params)
		fuzzCheck(t, err)
		_, err = CoordinatorInvestigate(pm, s.params)
		fuzzCheck(t, err)
	})
}

// FuzzParticipantStep2 decodes the coordinator's first message.
func FuzzParticipantStep2(f *testing.F) {
	s := newFuzzSession(f)
	f.Add(s.cmsg1)
	aux := make([]byte, 32)
	f.Fuzz(func(t *testing.T, m []byte) {
		_, _, err := ParticipantStep2(s.keys[0], s.st1, m, aux)
		fuzzCheck(t, err)
		var uerr *UnknownFaultyParticipantOrCoordinatorError
		if errors.As(err, &uerr) {
			fuzzCheck(t, ParticipantInvestigate(uerr, s.cinvs[0]))
		}
	})
}

// FuzzParticipantInvestigate decodes an investigation message.
func FuzzParticipantInvestigate(f *testing.F) {
	s := newFuzzSession(f)
	// Participant 0 receives a share that does not verify.
	bad := append([]byte(nil), s.cmsg1...)
	bad[len(bad)-32*3+31] ^= 1
	aux := make([]byte, 32)
	f.Add(s.cinvs[0])
	f.Fuzz(func(t *testing.T, m []byte) {
		_, _, err := ParticipantStep2(s.keys[0], s.st1, bad, aux)
		var uerr *UnknownFaultyParticipantOrCoordinatorError
		if !errors.As(err, &uerr) {
			t.Fatalf("step 2: %v", err)
		}
		err = ParticipantInvestigate(uerr, m)
		if err == nil {
			t.Fatal("investigation returned nil")
		}
		fuzzCheck(t, err)
	})
}

// FuzzRecover decodes recovery data.
func FuzzRecover(f *testing.F) {
	s := newFuzzSession(f)
	f.Add([]byte(s.rd))
	f.Add([]byte(s.rd[:40]))
	f.Fuzz(func(t *testing.T, rd []byte) {
		_, _, err := ParticipantRecover(s.keys[1], rd)
		fuzzCheck(t, err)
		_, _, err = CoordinatorRecover(rd)
		fuzzCheck(t, err)
	})
}
