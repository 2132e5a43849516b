package chilldkg

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quorumd/quorumd/internal/testkit"
)

// The ChillDKG vectors (BlockstreamResearch/bip-frost-dkg vectors/, read in
// place). TestVectors enumerates the folder: a file without a handler fails
// the test, and each handler must run exactly the file's totalTests cases.

type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s *string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s == nil {
		*h = nil
		return nil
	}
	d, err := hex.DecodeString(*s)
	if err != nil {
		return err
	}
	*h = d
	if *h == nil {
		*h = []byte{}
	}
	return nil
}

type vParams struct {
	HostPubkeys []hexBytes `json:"hostpubkeys"`
	T           int        `json:"t"`
}

func (p vParams) params() SessionParams {
	sp := SessionParams{T: p.T}
	for _, pk := range p.HostPubkeys {
		sp.HostPubkeys = append(sp.HostPubkeys, pk)
	}
	return sp
}

type vError struct {
	Type           string `json:"type"`
	Message        string `json:"message"`
	ParticipantID  *int   `json:"participantId"`
	ParticipantID1 *int   `json:"participantId1"`
	ParticipantID2 *int   `json:"participantId2"`
}

type vOutput struct {
	Secshare  hexBytes   `json:"secshare"`
	ThreshPK  hexBytes   `json:"threshPk"`
	Pubshares []hexBytes `json:"pubshares"`
}

// vCase holds the union of every file's per-case fields.
type vCase struct {
	TcID        int             `json:"tcId"`
	Comment     string          `json:"comment"`
	ExpectedErr *vError         `json:"expectedError"`
	Hostseckey  hexBytes        `json:"hostseckey"`
	Params      *vParams        `json:"params"`
	Random      hexBytes        `json:"random"`
	AuxRand     hexBytes        `json:"auxRand"`
	Cmsg1       hexBytes        `json:"cmsg1"`
	Cmsg2       hexBytes        `json:"cmsg2"`
	Cmsg1Index  int             `json:"cmsg1Index"`
	CinvMsg     hexBytes        `json:"cinvMsg"`
	Pmsg1Idx    []int           `json:"pmsg1Indices"`
	Pmsg2Idx    []int           `json:"pmsg2Indices"`
	Recovery    hexBytes        `json:"recoveryData"`
	ExpHostpub  hexBytes        `json:"expectedHostpubkey"`
	ExpHash     hexBytes        `json:"expectedParamsHash"`
	ExpPmsg1    hexBytes        `json:"expectedPmsg1"`
	ExpPmsg2    hexBytes        `json:"expectedPmsg2"`
	ExpCmsg1    hexBytes        `json:"expectedCmsg1"`
	ExpCinvs    []hexBytes      `json:"expectedCinvMsgs"`
	ExpOutput   json.RawMessage `json:"expectedOutput"`
}

type vGroup struct {
	Params     *vParams   `json:"params"`
	Hostseckey hexBytes   `json:"hostseckey"`
	Random     hexBytes   `json:"random"`
	AuxRand    hexBytes   `json:"auxRand"`
	Pmsg1      hexBytes   `json:"pmsg1"`
	Pmsgs1     []hexBytes `json:"pmsgs1"`
	Cmsg1      hexBytes   `json:"cmsg1"`
	Pmsg2      hexBytes   `json:"pmsg2"`
	Pmsg1Pool  []hexBytes `json:"pmsg1Pool"`
	Pmsg2Pool  []hexBytes `json:"pmsg2Pool"`
	Cmsg1Pool  []hexBytes `json:"cmsg1Pool"`
	Valid      []vCase    `json:"validTestCases"`
	Errors     []vCase    `json:"errorTestCases"`
}

type vFile struct {
	TotalTests int      `json:"totalTests"`
	Groups     []vGroup `json:"testGroups"`
	Valid      []vCase  `json:"validTestCases"`
	Errors     []vCase  `json:"errorTestCases"`
	keys       []string // top-level keys, to refuse unknown layouts
	raw        []byte   // for strict per-case key checks
	_          [0]hexBytes
}

// groups returns the file's groups, treating a flat file as one group.
func (f *vFile) groups() []vGroup {
	if len(f.Groups) > 0 {
		return f.Groups
	}
	return []vGroup{{Valid: f.Valid, Errors: f.Errors}}
}

// errKind names err as the spec's exception class.
func errKind(err error) string {
	switch err.(type) {
	case *HostSeckeyError:
		return "HostSeckeyError"
	case *ThresholdOrCountError:
		return "ThresholdOrCountError"
	case *InvalidHostPubkeyError:
		return "InvalidHostPubkeyError"
	case *DuplicateHostPubkeyError:
		return "DuplicateHostPubkeyError"
	case *RandomnessError:
		return "RandomnessError"
	case *FaultyParticipantError:
		return "FaultyParticipantError"
	case *FaultyParticipantOrCoordinatorError:
		return "FaultyParticipantOrCoordinatorError"
	case *FaultyCoordinatorError:
		return "FaultyCoordinatorError"
	case *UnknownFaultyParticipantOrCoordinatorError:
		return "UnknownFaultyParticipantOrCoordinatorError"
	case *RecoveryDataError:
		return "RecoveryDataError"
	case *InvalidRecoveryAckError:
		return "InvalidRecoveryAckError"
	}
	if errors.Is(err, ErrInvalidInput) {
		return "ValueError"
	}
	return "unknown"
}

func errMsg(err error) string {
	switch e := err.(type) {
	case *HostSeckeyError:
		return e.Msg
	case *FaultyParticipantError:
		return e.Msg
	case *FaultyParticipantOrCoordinatorError:
		return e.Msg
	case *FaultyCoordinatorError:
		return e.Msg
	case *UnknownFaultyParticipantOrCoordinatorError:
		return e.Msg
	case *RecoveryDataError:
		return e.Msg
	}
	return ""
}

// checkErr asserts err is the expected exception with the expected blame.
func checkErr(t *testing.T, c *vCase, err error) {
	t.Helper()
	want := c.ExpectedErr
	if err == nil {
		t.Fatalf("tc %d (%s): no error, want %s", c.TcID, c.Comment, want.Type)
	}
	if got := errKind(err); got != want.Type {
		t.Fatalf("tc %d (%s): error %q is %s, want %s", c.TcID, c.Comment, err, got, want.Type)
	}
	if want.Message != "" && errMsg(err) != want.Message {
		t.Errorf("tc %d (%s): message %q, want %q", c.TcID, c.Comment, errMsg(err), want.Message)
	}
	var gotID, gotID1, gotID2 *int
	switch e := err.(type) {
	case *InvalidHostPubkeyError:
		gotID = &e.ParticipantID
	case *FaultyParticipantError:
		gotID = &e.ParticipantID
	case *FaultyParticipantOrCoordinatorError:
		gotID = &e.ParticipantID
	case *InvalidRecoveryAckError:
		gotID = &e.ParticipantID
	case *DuplicateHostPubkeyError:
		gotID1, gotID2 = &e.ParticipantID1, &e.ParticipantID2
	}
	eq := func(name string, got, want *int) {
		if (got == nil) != (want == nil) || (got != nil && *got != *want) {
			t.Errorf("tc %d (%s): %s = %v, want %v", c.TcID, c.Comment, name, deref(got), deref(want))
		}
	}
	// Every blame-carrying error must be checked against the vector's blame.
	eq("participantId", gotID, want.ParticipantID)
	eq("participantId1", gotID1, want.ParticipantID1)
	eq("participantId2", gotID2, want.ParticipantID2)
	b, blames := BlameOf(err)
	if want.ParticipantID != nil && (!blames || b.Participant != *want.ParticipantID) {
		t.Errorf("tc %d: BlameOf = %+v, %v", c.TcID, b, blames)
	}
	if want.Type == "FaultyCoordinatorError" && (!blames || !b.Coordinator || b.Participant != -1) {
		t.Errorf("tc %d: BlameOf = %+v, %v, want the coordinator", c.TcID, b, blames)
	}
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

func checkOutput(t *testing.T, c *vCase, raw json.RawMessage, got *DKGOutput) {
	t.Helper()
	var want vOutput
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Secshare, want.Secshare) || (got.Secshare == nil) != (want.Secshare == nil) {
		t.Errorf("tc %d: secshare %x, want %x", c.TcID, got.Secshare, want.Secshare)
	}
	if !bytes.Equal(got.ThreshPK, want.ThreshPK) {
		t.Errorf("tc %d: threshPk %x, want %x", c.TcID, got.ThreshPK, want.ThreshPK)
	}
	if len(got.Pubshares) != len(want.Pubshares) {
		t.Fatalf("tc %d: %d pubshares, want %d", c.TcID, len(got.Pubshares), len(want.Pubshares))
	}
	for i := range want.Pubshares {
		if !bytes.Equal(got.Pubshares[i], want.Pubshares[i]) {
			t.Errorf("tc %d: pubshare %d %x, want %x", c.TcID, i, got.Pubshares[i], want.Pubshares[i])
		}
	}
}

func pick(pool []hexBytes, idx []int) [][]byte {
	out := make([][]byte, len(idx))
	for i, j := range idx {
		out[i] = pool[j]
	}
	return out
}

// vectorHandlers maps each vector file to the function that runs all its
// cases and returns how many it ran.
var vectorHandlers = map[string]func(*testing.T, *vFile) int{
	"hostpubkey_gen_vectors.json":          runHostpubkeyGen,
	"params_hash_vectors.json":             runParamsHash,
	"participant_step1_vectors.json":       runParticipantStep1,
	"participant_step2_vectors.json":       runParticipantStep2,
	"participant_finalize_vectors.json":    runParticipantFinalize,
	"participant_investigate_vectors.json": runParticipantInvestigate,
	"coordinator_step1_vectors.json":       runCoordinatorStep1,
	"coordinator_finalize_vectors.json":    runCoordinatorFinalize,
	"coordinator_investigate_vectors.json": runCoordinatorInvestigate,
	"recover_vectors.json":                 runRecover,
}

func chillVectorsDir(t testing.TB) string {
	return filepath.Join(testkit.VectorsDir(t), "chilldkg")
}

// vectorFiles lists the vector files in dir (everything but COPYING) and
// those among them that no handler reads.
func vectorFiles(dir string) (files, unhandled []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		if e.IsDir() || e.Name() == "COPYING" {
			continue
		}
		files = append(files, e.Name())
		if _, ok := vectorHandlers[e.Name()]; !ok {
			unhandled = append(unhandled, e.Name())
		}
	}
	return files, unhandled, nil
}

// TestVectors runs every case of every vector file and fails on a file no
// handler reads, or a handler that ran fewer or more cases than the file has.
func TestVectors(t *testing.T) {
	dir := chillVectorsDir(t)
	files, unhandled, err := vectorFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range unhandled {
		t.Errorf("vector file %s is not read by any test", name)
	}
	for name := range vectorHandlers {
		if !slices.Contains(files, name) {
			t.Errorf("handler for %s, but the file is missing", name)
		}
	}
	for _, name := range files {
		h, ok := vectorHandlers[name]
		if !ok {
			continue
		}
		t.Run(strings.TrimSuffix(name, "_vectors.json"), func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			var f vFile
			if err := json.Unmarshal(raw, &f); err != nil {
				t.Fatal(err)
			}
			if f.TotalTests == 0 {
				t.Fatal("no totalTests")
			}
			if ran := h(t, &f); ran != f.TotalTests {
				t.Errorf("ran %d cases, file has %d", ran, f.TotalTests)
			}
		})
	}
}

// TestVectorFilesUnreadDetected: a copy of the vector folder with one extra
// file must report that file as unread, so TestVectors fails on it.
func TestVectorFilesUnreadDetected(t *testing.T) {
	src := chillVectorsDir(t)
	dst := t.TempDir()
	files, _, err := vectorFiles(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range append(files, "COPYING") {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, unhandled, err := vectorFiles(dst); err != nil || len(unhandled) != 0 {
		t.Fatalf("copy: unhandled %v, %v", unhandled, err)
	}
	if err := os.WriteFile(filepath.Join(dst, "participant_step3_vectors.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, unhandled, err := vectorFiles(dst); err != nil || !slices.Equal(unhandled, []string{"participant_step3_vectors.json"}) {
		t.Fatalf("extra file: unhandled %v, %v", unhandled, err)
	}
}

func runHostpubkeyGen(t *testing.T, f *vFile) int {
	n := 0
	for _, c := range f.Valid {
		n++
		got, err := HostPubkeyGen(c.Hostseckey)
		if err != nil || !bytes.Equal(got, c.ExpHostpub) {
			t.Errorf("tc %d: %x, %v; want %x", c.TcID, got, err, c.ExpHostpub)
		}
	}
	for _, c := range f.Errors {
		n++
		_, err := HostPubkeyGen(c.Hostseckey)
		checkErr(t, &c, err)
	}
	return n
}

func runParamsHash(t *testing.T, f *vFile) int {
	n := 0
	for _, c := range f.Valid {
		n++
		got, err := ParamsHash(c.Params.params())
		if err != nil || !bytes.Equal(got[:], c.ExpHash) {
			t.Errorf("tc %d: %x, %v; want %x", c.TcID, got, err, c.ExpHash)
		}
	}
	for _, c := range f.Errors {
		n++
		_, err := ParamsHash(c.Params.params())
		checkErr(t, &c, err)
	}
	return n
}

func runParticipantStep1(t *testing.T, f *vFile) int {
	n := 0
	for _, g := range f.groups() {
		for _, c := range g.Valid {
			n++
			_, msg, err := ParticipantStep1(c.Hostseckey, c.Params.params(), c.Random)
			if err != nil || !bytes.Equal(msg, c.ExpPmsg1) {
				t.Errorf("tc %d (%s): %v\n got %x\nwant %x", c.TcID, c.Comment, err, msg, c.ExpPmsg1)
			}
		}
		for _, c := range g.Errors {
			n++
			_, _, err := ParticipantStep1(c.Hostseckey, c.Params.params(), c.Random)
			checkErr(t, &c, err)
		}
	}
	return n
}

// step1 re-derives the group's participant state, checking its pmsg1.
func step1(t *testing.T, g *vGroup) *ParticipantState1 {
	t.Helper()
	st, msg, err := ParticipantStep1(g.Hostseckey, g.Params.params(), g.Random)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(msg, g.Pmsg1) {
		t.Fatalf("pmsg1\n got %x\nwant %x", msg, g.Pmsg1)
	}
	return st
}

func orDefault(b, def hexBytes) []byte {
	if b != nil {
		return b
	}
	return def
}

func runParticipantStep2(t *testing.T, f *vFile) int {
	n := 0
	for _, g := range f.groups() {
		st := step1(t, &g)
		for _, c := range g.Valid {
			n++
			_, msg, err := ParticipantStep2(orDefault(c.Hostseckey, g.Hostseckey), st, c.Cmsg1, orDefault(c.AuxRand, g.AuxRand))
			if err != nil || !bytes.Equal(msg, c.ExpPmsg2) {
				t.Errorf("tc %d (%s): %v\n got %x\nwant %x", c.TcID, c.Comment, err, msg, c.ExpPmsg2)
			}
		}
		for _, c := range g.Errors {
			n++
			_, _, err := ParticipantStep2(orDefault(c.Hostseckey, g.Hostseckey), st, c.Cmsg1, orDefault(c.AuxRand, g.AuxRand))
			checkErr(t, &c, err)
		}
	}
	return n
}

func runParticipantFinalize(t *testing.T, f *vFile) int {
	n := 0
	for _, g := range f.groups() {
		st1 := step1(t, &g)
		st2, pmsg2, err := ParticipantStep2(g.Hostseckey, st1, g.Cmsg1, g.AuxRand)
		if err != nil || !bytes.Equal(pmsg2, g.Pmsg2) {
			t.Fatalf("step2: %v\n got %x\nwant %x", err, pmsg2, g.Pmsg2)
		}
		for _, c := range g.Valid {
			n++
			out, rd, err := ParticipantFinalize(st2, c.Cmsg2)
			if err != nil {
				t.Errorf("tc %d: %v", c.TcID, err)
				continue
			}
			var want struct {
				DKGOutput    json.RawMessage `json:"dkgOutput"`
				RecoveryData hexBytes        `json:"recoveryData"`
			}
			if err := json.Unmarshal(c.ExpOutput, &want); err != nil {
				t.Fatal(err)
			}
			checkOutput(t, &c, want.DKGOutput, out)
			if !bytes.Equal(rd, want.RecoveryData) {
				t.Errorf("tc %d: recovery data differs", c.TcID)
			}
		}
		for _, c := range g.Errors {
			n++
			_, _, err := ParticipantFinalize(st2, c.Cmsg2)
			checkErr(t, &c, err)
		}
	}
	return n
}

func runParticipantInvestigate(t *testing.T, f *vFile) int {
	n := 0
	for _, g := range f.groups() {
		if len(g.Valid) != 0 {
			t.Fatal("participant_investigate has no valid cases by definition")
		}
		st := step1(t, &g)
		for _, c := range g.Errors {
			n++
			_, _, err := ParticipantStep2(g.Hostseckey, st, g.Cmsg1Pool[c.Cmsg1Index], g.AuxRand)
			var uerr *UnknownFaultyParticipantOrCoordinatorError
			if !errors.As(err, &uerr) {
				t.Fatalf("tc %d: step2 returned %v, want UnknownFaultyParticipantOrCoordinatorError", c.TcID, err)
			}
			checkErr(t, &c, ParticipantInvestigate(uerr, c.CinvMsg))
			if uerr.inv != nil {
				t.Errorf("tc %d: investigation data not zeroed", c.TcID)
			}
		}
	}
	return n
}

func runCoordinatorStep1(t *testing.T, f *vFile) int {
	n := 0
	for _, g := range f.groups() {
		for _, c := range g.Valid {
			n++
			_, msg, err := CoordinatorStep1(pick(g.Pmsg1Pool, c.Pmsg1Idx), c.Params.params())
			if err != nil || !bytes.Equal(msg, c.ExpCmsg1) {
				t.Errorf("tc %d (%s): %v\n got %x\nwant %x", c.TcID, c.Comment, err, msg, c.ExpCmsg1)
			}
		}
		for _, c := range g.Errors {
			n++
			_, _, err := CoordinatorStep1(pick(g.Pmsg1Pool, c.Pmsg1Idx), c.Params.params())
			checkErr(t, &c, err)
		}
	}
	return n
}

func runCoordinatorFinalize(t *testing.T, f *vFile) int {
	n := 0
	for _, g := range f.groups() {
		st, cmsg1, err := CoordinatorStep1(pick(g.Pmsgs1, []int{0, 1, 2, 3}[:len(g.Pmsgs1)]), g.Params.params())
		if err != nil || !bytes.Equal(cmsg1, g.Cmsg1) {
			t.Fatalf("coordinator step1: %v", err)
		}
		for _, c := range g.Valid {
			n++
			cmsg2, out, rd, err := CoordinatorFinalize(st, pick(g.Pmsg2Pool, c.Pmsg2Idx))
			if err != nil {
				t.Errorf("tc %d: %v", c.TcID, err)
				continue
			}
			var want struct {
				Cmsg2        hexBytes        `json:"cmsg2"`
				DKGOutput    json.RawMessage `json:"dkgOutput"`
				RecoveryData hexBytes        `json:"recoveryData"`
			}
			if err := json.Unmarshal(c.ExpOutput, &want); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(cmsg2, want.Cmsg2) {
				t.Errorf("tc %d: cmsg2 differs", c.TcID)
			}
			checkOutput(t, &c, want.DKGOutput, out)
			if !bytes.Equal(rd, want.RecoveryData) {
				t.Errorf("tc %d: recovery data differs", c.TcID)
			}
		}
		for _, c := range g.Errors {
			n++
			_, _, _, err := CoordinatorFinalize(st, pick(g.Pmsg2Pool, c.Pmsg2Idx))
			checkErr(t, &c, err)
		}
	}
	return n
}

func runCoordinatorInvestigate(t *testing.T, f *vFile) int {
	n := 0
	for _, g := range f.groups() {
		for _, c := range g.Valid {
			n++
			got, err := CoordinatorInvestigate(pick(g.Pmsgs1, []int{0, 1, 2, 3}[:len(g.Pmsgs1)]), g.Params.params())
			if err != nil || len(got) != len(c.ExpCinvs) {
				t.Fatalf("tc %d: %d messages, %v", c.TcID, len(got), err)
			}
			for i := range got {
				if !bytes.Equal(got[i], c.ExpCinvs[i]) {
					t.Errorf("tc %d: cinv %d\n got %x\nwant %x", c.TcID, i, got[i], c.ExpCinvs[i])
				}
			}
		}
		for _, c := range g.Errors {
			n++
			_, err := CoordinatorInvestigate(pick(g.Pmsgs1, []int{0, 1, 2, 3}[:len(g.Pmsgs1)]), g.Params.params())
			checkErr(t, &c, err)
		}
	}
	return n
}

func runRecover(t *testing.T, f *vFile) int {
	n := 0
	for _, g := range f.groups() {
		run := func(c *vCase) (*DKGOutput, SessionParams, error) {
			if c.Hostseckey == nil {
				return CoordinatorRecover(RecoveryData(c.Recovery))
			}
			return ParticipantRecover(c.Hostseckey, RecoveryData(c.Recovery))
		}
		for _, c := range g.Valid {
			n++
			out, params, err := run(&c)
			if err != nil {
				t.Errorf("tc %d: %v", c.TcID, err)
				continue
			}
			var want struct {
				DKGOutput json.RawMessage `json:"dkgOutput"`
				Params    vParams         `json:"params"`
			}
			if err := json.Unmarshal(c.ExpOutput, &want); err != nil {
				t.Fatal(err)
			}
			checkOutput(t, &c, want.DKGOutput, out)
			wp := want.Params.params()
			if params.T != wp.T || len(params.HostPubkeys) != len(wp.HostPubkeys) {
				t.Fatalf("tc %d: params %+v, want %+v", c.TcID, params, wp)
			}
			for i := range wp.HostPubkeys {
				if !bytes.Equal(params.HostPubkeys[i], wp.HostPubkeys[i]) {
					t.Errorf("tc %d: hostpubkey %d differs", c.TcID, i)
				}
			}
		}
		for _, c := range g.Errors {
			n++
			_, _, err := run(&c)
			checkErr(t, &c, err)
		}
	}
	return n
}
