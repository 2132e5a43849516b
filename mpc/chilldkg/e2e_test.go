package chilldkg

import (
	"bytes"
	crand "crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/bip340"
	"github.com/quorumd/quorumd/mpc/frost"
)

// An in-process session: n participant goroutines and a coordinator
// goroutine talking over Go channels, with hooks through which a test makes
// a participant or the coordinator misbehave. A party that gives up sends an
// abort so nobody waits for a timeout, except where silence is the point.

type msgKind int

const (
	kindPmsg1 msgKind = iota
	kindPmsg2
	kindInvestigate // a participant asks for its investigation message
	kindAbort
)

type toCoord struct {
	from int
	kind msgKind
	msg  []byte
}

type fromCoord struct {
	kind msgKind // kindPmsg1 carries cmsg1, kindPmsg2 cmsg2, kindInvestigate cinv
	msg  []byte
}

// adversary hooks; nil fields behave honestly.
type adversary struct {
	silent      map[int]bool                                     // never send pmsg1
	pmsg1       func(from int, msg []byte) []byte                // what a participant sends
	cmsg1       func(to int, msg []byte, pmsgs1 [][]byte) []byte // what the coordinator sends to one participant
	skipCertChk bool                                             // coordinator forwards a certificate without checking it
}

type partResult struct {
	out *DKGOutput
	rd  RecoveryData
	err error
}

type session struct {
	hostkeys [][]byte
	params   SessionParams
	parts    []partResult
	coordOut *DKGOutput
	coordRD  RecoveryData
	coordErr error
	pmsgs1   [][]byte // what the coordinator aggregated, and its broadcast
	cmsg1    []byte
}

func randBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := crand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func newHostKeys(t testing.TB, n int) ([][]byte, SessionParams) {
	keys := make([][]byte, n)
	params := SessionParams{HostPubkeys: make([][]byte, n)}
	for i := range keys {
		for {
			keys[i] = randBytes(t, 32)
			pk, err := HostPubkeyGen(keys[i])
			if err == nil {
				params.HostPubkeys[i] = pk
				break
			}
		}
	}
	return keys, params
}

// errTimeout is a party's blame of whoever failed to send in time.
type errTimeout struct{ who string }

func (e *errTimeout) Error() string { return "timeout waiting for " + e.who }

const msgTimeout = 20 * time.Second // generous: 2 loaded cores

func runSession(t *testing.T, n, thr int, adv adversary, silenceTimeout time.Duration) *session {
	t.Helper()
	keys, params := newHostKeys(t, n)
	params.T = thr
	return runSessionKeys(t, keys, params, adv, silenceTimeout)
}

func runSessionKeys(t *testing.T, keys [][]byte, params SessionParams, adv adversary, silenceTimeout time.Duration) *session {
	t.Helper()
	n := len(keys)
	s := &session{hostkeys: keys, params: params, parts: make([]partResult, n)}
	up := make(chan toCoord, 4*n)
	down := make([]chan fromCoord, n)
	for i := range down {
		down[i] = make(chan fromCoord, 4)
	}
	results := make(chan struct {
		id int
		r  partResult
	}, n)
	recv := func(i int, kind msgKind) ([]byte, error) {
		select {
		case m := <-down[i]:
			if m.kind == kindAbort {
				return nil, errors.New("coordinator aborted")
			}
			if m.kind != kind {
				return nil, fmt.Errorf("unexpected message kind %d", m.kind)
			}
			return m.msg, nil
		case <-time.After(msgTimeout):
			return nil, &errTimeout{"the coordinator"}
		}
	}
	for i := range n {
		go func() {
			r := participant(t, i, keys[i], params, adv, up, recv)
			results <- struct {
				id int
				r  partResult
			}{i, r}
		}()
	}
	s.coordOut, s.coordRD, s.coordErr = coordinator(params, adv, up, down, silenceTimeout, s)
	for range n {
		r := <-results
		s.parts[r.id] = r.r
	}
	return s
}

func participant(t *testing.T, i int, hostkey []byte, params SessionParams, adv adversary, up chan<- toCoord, recv func(int, msgKind) ([]byte, error)) partResult {
	st1, m1, err := ParticipantStep1(hostkey, params, randBytes(t, 32))
	if err != nil {
		up <- toCoord{from: i, kind: kindAbort}
		return partResult{err: err}
	}
	if adv.silent[i] {
		return partResult{err: errors.New("silent")}
	}
	if adv.pmsg1 != nil {
		m1 = adv.pmsg1(i, m1)
	}
	up <- toCoord{from: i, kind: kindPmsg1, msg: m1}
	c1, err := recv(i, kindPmsg1)
	if err != nil {
		return partResult{err: err}
	}
	st2, m2, err := ParticipantStep2(hostkey, st1, c1, randBytes(t, 32))
	var uerr *UnknownFaultyParticipantOrCoordinatorError
	if errors.As(err, &uerr) {
		up <- toCoord{from: i, kind: kindInvestigate}
		cinv, rerr := recv(i, kindInvestigate)
		if rerr != nil {
			return partResult{err: rerr}
		}
		err = ParticipantInvestigate(uerr, cinv)
	}
	if err != nil {
		up <- toCoord{from: i, kind: kindAbort}
		return partResult{err: err}
	}
	defer st2.Zero()
	up <- toCoord{from: i, kind: kindPmsg2, msg: m2}
	c2, err := recv(i, kindPmsg2)
	if err != nil {
		return partResult{err: err}
	}
	out, rd, err := ParticipantFinalize(st2, c2)
	return partResult{out: out, rd: rd, err: err}
}

// coordinator collects a round; a participant missing after silenceTimeout
// is blamed, as the spec's timeout rule says.
func coordinator(params SessionParams, adv adversary, up <-chan toCoord, down []chan fromCoord, silenceTimeout time.Duration, rec *session) (*DKGOutput, RecoveryData, error) {
	n := len(params.HostPubkeys)
	abortAll := func() {
		for i := range down {
			down[i] <- fromCoord{kind: kindAbort}
		}
	}
	var pmsgs1 [][]byte
	collect := func(kind msgKind) ([][]byte, error) {
		got := make([][]byte, n)
		have := 0
		deadline := time.After(silenceTimeout)
		for have < n {
			select {
			case m := <-up:
				switch {
				case m.kind == kindAbort:
					return nil, fmt.Errorf("participant %d aborted", m.from)
				case m.kind == kindInvestigate:
					cinvs, err := CoordinatorInvestigate(pmsgs1, params)
					if err != nil {
						return nil, err
					}
					down[m.from] <- fromCoord{kind: kindInvestigate, msg: cinvs[m.from]}
				case m.kind == kind && got[m.from] == nil:
					got[m.from] = m.msg
					have++
				}
			case <-deadline:
				for i := range got {
					if got[i] == nil {
						return nil, &FaultyParticipantError{ParticipantID: i, Msg: "timeout"}
					}
				}
			}
		}
		return got, nil
	}
	var err error
	if pmsgs1, err = collect(kindPmsg1); err != nil {
		abortAll()
		return nil, nil, err
	}
	st, c1, err := CoordinatorStep1(pmsgs1, params)
	if err != nil {
		abortAll()
		return nil, nil, err
	}
	rec.pmsgs1, rec.cmsg1 = pmsgs1, c1
	for i := range down {
		m := c1
		if adv.cmsg1 != nil {
			m = adv.cmsg1(i, c1, pmsgs1)
		}
		down[i] <- fromCoord{kind: kindPmsg1, msg: m}
	}
	pmsgs2, err := collect(kindPmsg2)
	if err != nil {
		abortAll()
		return nil, nil, err
	}
	c2, out, rd, err := CoordinatorFinalize(st, pmsgs2)
	if err != nil && adv.skipCertChk {
		c2 = bytes.Join(pmsgs2, nil)
	} else if err != nil {
		abortAll()
		return nil, nil, err
	}
	for i := range down {
		down[i] <- fromCoord{kind: kindPmsg2, msg: c2}
	}
	return out, rd, err
}

// frostSign signs msg with the participants ids through mpc/frost and
// checks the result with mpc/bip340.Verify under the threshold key.
func frostSign(t *testing.T, n, thr int, outs []*DKGOutput, ids []uint32, msg []byte) {
	t.Helper()
	thresh := [33]byte(outs[ids[0]].ThreshPK)
	sc := frost.SignersCtx{N: uint32(n), T: uint32(thr), IDs: ids, ThreshPK: thresh}
	for _, id := range ids {
		sc.PubShares = append(sc.PubShares, frost.PubShare(outs[id].Pubshares[id]))
	}
	secnonces := make([]*frost.SecNonce, len(ids))
	pubnonces := make([]frost.PubNonce, len(ids))
	shares := make([]btcec.ModNScalar, len(ids))
	for k, id := range ids {
		if shares[k].SetByteSlice(outs[id].Secshare) {
			t.Fatal("secshare overflows")
		}
		var err error
		secnonces[k], pubnonces[k], err = frost.NonceGen(nil, &frost.NonceGenArgs{
			SecShare: &shares[k], PubShare: outs[id].Pubshares[id], ThreshPKXOnly: thresh[1:], Msg: msg, HasMsg: true,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	agg, err := frost.NonceAgg(pubnonces)
	if err != nil {
		t.Fatal(err)
	}
	sess := &frost.SessionCtx{Signers: sc, AggNonce: agg, Msg: msg}
	psigs := make([]frost.PartialSig, len(ids))
	for k, id := range ids {
		if psigs[k], err = frost.Sign(secnonces[k], &shares[k], id, sess); err != nil {
			t.Fatalf("frost.Sign(%d): %v", id, err)
		}
		shares[k].Zero()
	}
	sig, err := frost.PartialSigAgg(psigs, sess)
	if err != nil {
		t.Fatal(err)
	}
	if err := bip340.Verify(thresh[1:], msg, sig[:]); err != nil {
		t.Fatalf("threshold signature does not verify: %v", err)
	}
}

// TestEndToEnd: honest sessions of several sizes agree on the threshold key,
// public shares and recovery data; every t-subset tried signs a BIP340
// signature through FROST; recovery from the host key and the recovery data
// restores each participant's output; acknowledgments verify.
func TestEndToEnd(t *testing.T) {
	for _, c := range []struct{ t, n int }{{1, 1}, {2, 3}, {3, 3}, {3, 5}, {5, 7}} {
		t.Run(fmt.Sprintf("%d-of-%d", c.t, c.n), func(t *testing.T) {
			s := runSession(t, c.n, c.t, adversary{}, msgTimeout)
			if s.coordErr != nil {
				t.Fatalf("coordinator: %v", s.coordErr)
			}
			outs := make([]*DKGOutput, c.n)
			for i, r := range s.parts {
				if r.err != nil {
					t.Fatalf("participant %d: %v", i, r.err)
				}
				outs[i] = r.out
				if !bytes.Equal(r.out.ThreshPK, s.coordOut.ThreshPK) || !bytes.Equal(r.rd, s.coordRD) {
					t.Fatalf("participant %d disagrees with the coordinator", i)
				}
				for j := range c.n {
					if !bytes.Equal(r.out.Pubshares[j], s.coordOut.Pubshares[j]) {
						t.Fatalf("participant %d: pubshare %d differs", i, j)
					}
				}
			}
			// Any party can recompute the coordinator's aggregation from the
			// broadcast first messages and must get the same bytes.
			for range 2 {
				_, c1, err := CoordinatorStep1(s.pmsgs1, s.params)
				if err != nil || !bytes.Equal(c1, s.cmsg1) {
					t.Fatalf("recomputed coordinator message differs: %v", err)
				}
			}
			// Two signer sets: the first t, and the last t.
			first, last := make([]uint32, c.t), make([]uint32, c.t)
			for k := range c.t {
				first[k], last[k] = uint32(k), uint32(c.n-c.t+k)
			}
			frostSign(t, c.n, c.t, outs, first, []byte("chilldkg end to end"))
			frostSign(t, c.n, c.t, outs, last, nil)

			acks := make([][]byte, c.n)
			for i := range c.n {
				rec, params, err := ParticipantRecover(s.hostkeys[i], s.coordRD)
				if err != nil {
					t.Fatalf("recover %d: %v", i, err)
				}
				if !bytes.Equal(rec.Secshare, outs[i].Secshare) || !bytes.Equal(rec.ThreshPK, outs[i].ThreshPK) || params.T != c.t {
					t.Fatalf("recover %d: output differs", i)
				}
				if acks[i], err = ParticipantRecoveryAckSign(s.hostkeys[i], s.coordRD, s.params, randBytes(t, 32)); err != nil {
					t.Fatal(err)
				}
			}
			if err := ParticipantRecoveryAcksVerify(s.coordRD, s.params, acks); err != nil {
				t.Fatal(err)
			}
			if c.n > 1 {
				acks[1], acks[0] = acks[0], acks[1]
				var ae *InvalidRecoveryAckError
				var fp *FaultyParticipantError
				err := ParticipantRecoveryAcksVerify(s.coordRD, s.params, acks)
				if !errors.As(err, &ae) || ae.ParticipantID != 0 || !errors.As(err, &fp) || fp.ParticipantID != 0 {
					t.Fatalf("swapped acks: %v", err)
				}
			}
			if rec, _, err := CoordinatorRecover(s.coordRD); err != nil || rec.Secshare != nil || !bytes.Equal(rec.ThreshPK, s.coordOut.ThreshPK) {
				t.Fatalf("coordinator recover: %v", err)
			}
		})
	}
}

// TestRecoverRestoresShareAfterLostFinalize: a participant whose final
// message is lost (it never finalizes) recovers the same share from another
// party's recovery data, and signs with the others.
func TestRecoverRestoresShareAfterLostFinalize(t *testing.T) {
	const n, thr = 3, 2
	s := runSession(t, n, thr, adversary{}, msgTimeout)
	if s.coordErr != nil {
		t.Fatal(s.coordErr)
	}
	outs := []*DKGOutput{nil, s.parts[1].out, s.parts[2].out}
	lost := s.parts[0].out.Secshare
	rec, _, err := ParticipantRecover(s.hostkeys[0], s.parts[2].rd)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rec.Secshare, lost) {
		t.Fatal("recovered share differs")
	}
	outs[0] = rec
	frostSign(t, n, thr, outs, []uint32{0, 2}, []byte("after recovery"))
	if _, _, err := ParticipantRecover(s.hostkeys[0][:31], s.coordRD); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("short key: %v", err)
	}
	other, _ := newHostKeys(t, 1)
	var he *HostSeckeyError
	if _, _, err := ParticipantRecover(other[0], s.coordRD); !errors.As(err, &he) {
		t.Fatalf("foreign key: %v", err)
	}
	bad := append(RecoveryData(nil), s.coordRD...)
	bad[len(bad)-1] ^= 1
	var re *RecoveryDataError
	if _, _, err := ParticipantRecover(s.hostkeys[0], bad); !errors.As(err, &re) {
		t.Fatalf("tampered recovery data: %v", err)
	}
}

// addOne returns msg with the 32-byte scalar at off incremented (mod n).
func addOne(msg []byte, off int) []byte {
	m := append([]byte(nil), msg...)
	var s, one btcec.ModNScalar
	s.SetByteSlice(m[off : off+32])
	one.SetInt(1)
	s.Add(&one)
	b := s.Bytes()
	copy(m[off:], b[:])
	return m
}

func expectBlame(t *testing.T, who string, err error, wantParticipant int, wantCoordinator bool) {
	t.Helper()
	b, ok := BlameOf(err)
	if !ok || b.Participant != wantParticipant || b.Coordinator != wantCoordinator {
		t.Fatalf("%s: error %v blames %+v (ok=%v), want participant %d coordinator %v", who, err, b, ok, wantParticipant, wantCoordinator)
	}
}

func noneSucceeded(t *testing.T, s *session) {
	t.Helper()
	for i, r := range s.parts {
		if r.err == nil || r.out != nil {
			t.Fatalf("participant %d finished a failed session", i)
		}
	}
	if s.coordErr == nil {
		t.Fatal("coordinator finished a failed session")
	}
}

// TestAdversarialBadShare: participant 1 sends participant 0 a bad encrypted
// share. Participant 0's step 2 fails without a culprit, the investigation
// names participant 1, and nobody finishes the session.
func TestAdversarialBadShare(t *testing.T) {
	const n, thr = 4, 3
	s := runSession(t, n, thr, adversary{pmsg1: func(from int, m []byte) []byte {
		if from != 1 {
			return m
		}
		return addOne(m, 33*thr+97+32*0) // enc_shares[0]
	}}, msgTimeout)
	expectBlame(t, "participant 0", s.parts[0].err, 1, true)
	var fpc *FaultyParticipantOrCoordinatorError
	if !errors.As(s.parts[0].err, &fpc) || fpc.Msg != "Participant sent invalid partial secshare" {
		t.Fatalf("participant 0: %v", s.parts[0].err)
	}
	noneSucceeded(t, s)
}

// TestAdversarialBadPop: participant 2's proof of possession is corrupted;
// every other participant blames participant 2.
func TestAdversarialBadPop(t *testing.T) {
	const n, thr = 3, 2
	s := runSession(t, n, thr, adversary{pmsg1: func(from int, m []byte) []byte {
		if from != 2 {
			return m
		}
		m = append([]byte(nil), m...)
		m[33*thr+40] ^= 1 // inside the pop's s
		return m
	}}, msgTimeout)
	for _, i := range []int{0, 1} {
		expectBlame(t, fmt.Sprintf("participant %d", i), s.parts[i].err, 2, true)
	}
	noneSucceeded(t, s)
}

// TestAdversarialCoordinatorTampersShare: the coordinator alters participant
// 0's aggregated encrypted share; the investigation blames the coordinator.
func TestAdversarialCoordinatorTampersShare(t *testing.T) {
	const n, thr = 3, 2
	s := runSession(t, n, thr, adversary{cmsg1: func(to int, m []byte, _ [][]byte) []byte {
		if to != 0 {
			return m
		}
		return addOne(m, CoordinatorMsg1Len(thr, n)-32*n)
	}}, msgTimeout)
	expectBlame(t, "participant 0", s.parts[0].err, -1, true)
	noneSucceeded(t, s)
}

// TestAdversarialEquivocation: participant 2 produces two valid first
// messages, and the coordinator (colluding) shows participant 0 the second
// one. Every check of step 2 passes for everyone, but the transcripts
// differ, so CertEq fails: the honest-protocol coordinator rejects
// participant 0's signature (the spec's conditional blame: with a faulty
// coordinator the named participant may be framed), and if it forwards the
// certificate anyway every participant blames the coordinator. Nobody
// deems the session successful.
func TestAdversarialEquivocation(t *testing.T) {
	const n, thr = 3, 2
	for _, forward := range []bool{false, true} {
		t.Run(fmt.Sprintf("forward-bad-certificate=%v", forward), func(t *testing.T) {
			keys, params := newHostKeys(t, n)
			params.T = thr
			_, alt, err := ParticipantStep1(keys[2], params, randBytes(t, 32))
			if err != nil {
				t.Fatal(err)
			}
			s := runSessionKeys(t, keys, params, adversary{
				skipCertChk: forward,
				cmsg1: func(to int, m []byte, pmsgs1 [][]byte) []byte {
					if to != 0 {
						return m
					}
					view := append([][]byte(nil), pmsgs1...)
					view[2] = alt
					_, c1, err := CoordinatorStep1(view, params)
					if err != nil {
						panic(err)
					}
					return c1
				},
			}, msgTimeout)
			if forward {
				for i := range n {
					expectBlame(t, fmt.Sprintf("participant %d", i), s.parts[i].err, -1, true)
				}
			} else {
				expectBlame(t, "coordinator", s.coordErr, 0, false)
			}
			noneSucceeded(t, s)
		})
	}
}

// TestAdversarialEquivocationNoCoordinator: without a trusted coordinator
// every party runs CoordinatorStep1 itself on the broadcast first messages.
// Participant 2 broadcasts one message to participants 0 and 1 and another
// to participant 3; the honest parties' local aggregations differ, each
// local CoordinatorFinalize rejects a signature from the other view, and no
// honest party obtains a valid certificate.
func TestAdversarialEquivocationNoCoordinator(t *testing.T) {
	const n, thr = 4, 3
	keys, params := newHostKeys(t, n)
	params.T = thr
	pm1 := make([][]byte, n)
	st1 := make([]*ParticipantState1, n)
	for i := range n {
		var err error
		if st1[i], pm1[i], err = ParticipantStep1(keys[i], params, randBytes(t, 32)); err != nil {
			t.Fatal(err)
		}
	}
	_, alt, err := ParticipantStep1(keys[2], params, randBytes(t, 32))
	if err != nil {
		t.Fatal(err)
	}
	honest := []int{0, 1, 3}
	views := map[int][][]byte{}
	for _, i := range honest {
		v := append([][]byte(nil), pm1...)
		if i == 3 {
			v[2] = alt
		}
		views[i] = v
	}
	// Participant 2 signs in the majority view, as a real equivocator would
	// for whichever view it likes.
	cstate := map[int]*CoordinatorState{}
	sigs := make([][]byte, n)
	states := map[int]*ParticipantState2{}
	for _, i := range append(honest, 2) {
		view := views[i]
		if i == 2 {
			view = views[0]
		}
		cs, c1, err := CoordinatorStep1(view, params)
		if err != nil {
			t.Fatalf("party %d aggregation: %v", i, err)
		}
		cstate[i] = cs
		st2, m2, err := ParticipantStep2(keys[i], st1[i], c1, randBytes(t, 32))
		if err != nil {
			t.Fatalf("party %d step 2: %v (each view is valid on its own)", i, err)
		}
		sigs[i], states[i] = m2, st2
	}
	for _, i := range honest {
		_, _, _, err := CoordinatorFinalize(cstate[i], sigs)
		var fp *FaultyParticipantError
		if !errors.As(err, &fp) {
			t.Fatalf("party %d: local finalize %v, want a rejected signature", i, err)
		}
		// The rejected signer is one whose view differs from party i's.
		sameView := (i == 3) == (fp.ParticipantID == 3)
		if sameView {
			t.Fatalf("party %d rejected participant %d, who shares its view", i, fp.ParticipantID)
		}
		if _, _, err := ParticipantFinalize(states[i], bytes.Join(sigs, nil)); err == nil {
			t.Fatalf("party %d accepted a certificate over diverging transcripts", i)
		}
	}
}

// TestAdversarialSilentParticipant: participant 1 never sends its first
// message; after the timeout the coordinator blames it and everyone aborts.
func TestAdversarialSilentParticipant(t *testing.T) {
	s := runSession(t, 3, 2, adversary{silent: map[int]bool{1: true}}, 2*time.Second)
	expectBlame(t, "coordinator", s.coordErr, 1, false)
	for _, i := range []int{0, 2} {
		if s.parts[i].err == nil {
			t.Fatalf("participant %d finished", i)
		}
	}
}

// TestStepsReplayable: re-running a step with the same inputs (a restarted
// party) reproduces the same message, and the rebuilt state finishes the
// session; fresh randomness gives a different message.
func TestStepsReplayable(t *testing.T) {
	const n, thr = 3, 2
	keys, params := newHostKeys(t, n)
	params.T = thr
	rnd, aux := randBytes(t, 32), randBytes(t, 32)
	pm1 := make([][]byte, n)
	st1 := make([]*ParticipantState1, n)
	for i := range n {
		var err error
		if st1[i], pm1[i], err = ParticipantStep1(keys[i], params, rnd); err != nil {
			t.Fatal(err)
		}
	}
	again, m, err := ParticipantStep1(keys[0], params, rnd)
	if err != nil || !bytes.Equal(m, pm1[0]) {
		t.Fatalf("step 1 replay differs: %v", err)
	}
	if _, other, _ := ParticipantStep1(keys[0], params, randBytes(t, 32)); bytes.Equal(other, pm1[0]) {
		t.Fatal("fresh randomness gave the same message")
	}
	cs, c1, err := CoordinatorStep1(pm1, params)
	if err != nil {
		t.Fatal(err)
	}
	pm2 := make([][]byte, n)
	for i := range n {
		s := st1[i]
		if i == 0 {
			s = again // the restarted party's rebuilt state
		}
		if _, pm2[i], err = ParticipantStep2(keys[i], s, c1, aux); err != nil {
			t.Fatal(err)
		}
	}
	st2, m2, err := ParticipantStep2(keys[0], st1[0], c1, aux)
	if err != nil || !bytes.Equal(m2, pm2[0]) {
		t.Fatalf("step 2 replay differs: %v", err)
	}
	c2, _, _, err := CoordinatorFinalize(cs, pm2)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ParticipantFinalize(st2, c2); err != nil {
		t.Fatal(err)
	}
}
