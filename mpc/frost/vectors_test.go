package frost

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/bip340"
)

// vectorsDir is where the shared test vectors are read in place.
func vectorsDir(tb testing.TB) string { return testkit.VectorsDir(tb) }

func loadVectors(t testing.TB, name string, v any) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(vectorsDir(t), "bip445", name))
	if err != nil {
		t.Fatalf("reading vectors: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding %s: %v", name, err)
	}
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func unhexOpt(t testing.TB, s *string) []byte {
	if s == nil {
		return nil
	}
	return unhex(t, *s)
}

// unhexLen decodes s, which must be n bytes (so that it converts to [n]byte).
func unhexLen(t testing.TB, s string, n int) []byte {
	t.Helper()
	b := unhex(t, s)
	if len(b) != n {
		t.Fatalf("hex %q: %d bytes, want %d", s, len(b), n)
	}
	return b
}

// scalarRaw decodes a vector scalar without range checks other than < n, so
// that deliberately invalid (zero) secrets reach the code under test.
func scalarRaw(t testing.TB, s string) *btcec.ModNScalar {
	t.Helper()
	b := unhex(t, s)
	k := new(btcec.ModNScalar)
	if len(b) != 32 || k.SetByteSlice(b) {
		t.Fatalf("vector scalar %q out of range", s)
	}
	return k
}

// secNonceFromVector rebuilds a SecNonce from the spec's 64-byte form.
func secNonceFromVector(t testing.TB, s string) *SecNonce {
	t.Helper()
	b := unhex(t, s)
	if len(b) != 64 {
		t.Fatalf("secnonce length %d", len(b))
	}
	return newSecNonce(scalarRaw(t, s[:64]), scalarRaw(t, s[64:]))
}

type vecError struct {
	Type        string `json:"type"`
	Message     string `json:"message"`
	SignerIndex *int   `json:"signer_index"`
	Contrib     string `json:"contrib"`
}

// valueErrorReasons maps the reference implementation's ValueError messages
// to this package's reasons.
var valueErrorReasons = map[string]error{
	"The threshold must be 1 <= t <= n.":                                  ErrThresholdRange,
	"The number of signers must be between t and n.":                      ErrSignerCount,
	"The pubshares and ids arrays must have the same length.":             ErrPubSharesLength,
	"The participant identifier at index %d is out of range.":             ErrIDOutOfRange,
	"Invalid pubshare at index %d.":                                       ErrInvalidPubShare,
	"The participant identifier list contains duplicate elements.":        ErrDuplicateIDs,
	"The threshold pubkey must not be the point at infinity.":             ErrThreshPKInfinity,
	"The provided key material is incorrect.":                             ErrKeyMaterial,
	"The tweak must be a 32-byte array.":                                  ErrTweakLength,
	"The tweaks and is_xonly arrays must have the same length.":           ErrTweakModesLength,
	"The tweak value is out of range.":                                    ErrTweakOutOfRange,
	"The result of tweaking cannot be infinity.":                          ErrTweakInfinity,
	"first secnonce value is out of range.":                               ErrSecNonce1OutOfRange,
	"second secnonce value is out of range.":                              ErrSecNonce2OutOfRange,
	"The signer's secret share value is out of range.":                    ErrSecShareOutOfRange,
	"The signer's pubshare must be included in the list of pubshares.":    ErrPubShareNotInSet,
	"The signer's id must be present in the participant identifier list.": ErrIDNotInSet,
	"The psigs and ids arrays must have the same length.":                 ErrPsigsLength,
	"The pubnonces and ids arrays must have the same length.":             ErrPubNoncesLength,
}

var indexedMessage = regexp.MustCompile(`^(.*) at index (\d+)(.*)$`)

// checkError asserts that err has the kind and culprit the vector expects.
func checkError(t *testing.T, err error, want vecError) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %+v", want)
	}
	switch want.Type {
	case "ValueError":
		reason, index := valueErrorReasons[want.Message], -1
		if m := indexedMessage.FindStringSubmatch(want.Message); m != nil {
			reason = valueErrorReasons[m[1]+" at index %d"+m[3]]
			index, _ = strconv.Atoi(m[2])
		}
		if reason == nil {
			t.Fatalf("unknown vector message %q", want.Message)
		}
		var ie *InputError
		if !errors.As(err, &ie) || !errors.Is(err, ErrInvalidInput) {
			t.Fatalf("error %v (%T), want ValueError %q", err, err, want.Message)
		}
		if ie.Reason != reason || ie.Index != index || !errors.Is(err, reason) {
			t.Fatalf("error %v, want %v at index %d (%q)", err, reason, index, want.Message)
		}
	case "InvalidContributionError":
		wantSigner := CoordinatorCulprit
		if want.SignerIndex != nil {
			wantSigner = *want.SignerIndex
		}
		var ce *InvalidContributionError
		if !errors.As(err, &ce) || !errors.Is(err, ErrInvalidContribution) {
			t.Fatalf("error %v (%T), want InvalidContributionError", err, err)
		}
		if ce.Signer != wantSigner || string(ce.Contrib) != want.Contrib {
			t.Fatalf("culprit (%d, %s), want (%d, %s)", ce.Signer, ce.Contrib, wantSigner, want.Contrib)
		}
	default:
		t.Fatalf("unknown vector error type %q", want.Type)
	}
}

// TestVectorFilesCovered fails when the vector directory holds a file no test
// reads, so new upstream vectors cannot be silently skipped.
func TestVectorFilesCovered(t *testing.T) {
	covered := map[string]bool{
		"nonce_gen_vectors.json": true, "nonce_agg_vectors.json": true,
		"sign_verify_vectors.json": true, "tweak_vectors.json": true,
		"det_sign_vectors.json": true, "sig_agg_vectors.json": true,
		"dealer_keygen.json": true,
	}
	entries, err := os.ReadDir(filepath.Join(vectorsDir(t), "bip445"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(covered) {
		t.Errorf("%d vector files, %d covered", len(entries), len(covered))
	}
	for _, e := range entries {
		if !covered[e.Name()] {
			t.Errorf("vector file %s is not read by any test", e.Name())
		}
	}
}

func TestNonceGenVectors(t *testing.T) {
	var v struct {
		ValidTests []struct {
			TcID          int       `json:"tc_id"`
			Comment       string    `json:"comment"`
			Rand          string    `json:"rand"`
			SecShare      *string   `json:"secshare"`
			PubShare      *string   `json:"pubshare"`
			ThreshPKXOnly *string   `json:"thresh_pk_xonly"`
			Msg           *string   `json:"msg"`
			ExtraIn       *string   `json:"extra_in"`
			Expected      [2]string `json:"expected"`
		} `json:"valid_tests"`
	}
	loadVectors(t, "nonce_gen_vectors.json", &v)
	if len(v.ValidTests) == 0 {
		t.Fatal("no vectors")
	}
	for _, tc := range v.ValidTests {
		t.Run(strconv.Itoa(tc.TcID), func(t *testing.T) {
			args := &NonceGenArgs{
				PubShare:      unhexOpt(t, tc.PubShare),
				ThreshPKXOnly: unhexOpt(t, tc.ThreshPKXOnly),
				ExtraIn:       unhexOpt(t, tc.ExtraIn),
			}
			if tc.SecShare != nil {
				args.SecShare = scalarRaw(t, *tc.SecShare)
			}
			if tc.Msg != nil {
				args.Msg, args.HasMsg = unhex(t, *tc.Msg), true
			}
			sn, pn, err := NonceGen(bytes.NewReader(unhex(t, tc.Rand)), args)
			if err != nil {
				t.Fatal(err)
			}
			k1, k2 := sn.k1.Bytes(), sn.k2.Bytes()
			if got := hex.EncodeToString(append(k1[:], k2[:]...)); !equalHex(got, tc.Expected[0]) {
				t.Errorf("secnonce %s, want %s", got, tc.Expected[0])
			}
			if got := hex.EncodeToString(pn[:]); !equalHex(got, tc.Expected[1]) {
				t.Errorf("pubnonce %s, want %s", got, tc.Expected[1])
			}
			if sn.PubNonce() != pn {
				t.Error("SecNonce.PubNonce differs from returned pubnonce")
			}
		})
	}
}

func equalHex(a, b string) bool { return bytes.EqualFold([]byte(a), []byte(b)) }

func TestNonceAggVectors(t *testing.T) {
	var v struct {
		PubNonces  []string `json:"pubnonces"`
		ValidTests []struct {
			TcID     int    `json:"tc_id"`
			Comment  string `json:"comment"`
			Indices  []int  `json:"pubnonce_indices"`
			Expected string `json:"expected"`
		} `json:"valid_tests"`
		ErrorTests []struct {
			TcID    int      `json:"tc_id"`
			Comment string   `json:"comment"`
			Indices []int    `json:"pubnonce_indices"`
			Error   vecError `json:"error"`
		} `json:"error_tests"`
	}
	loadVectors(t, "nonce_agg_vectors.json", &v)
	pick := func(idx []int) []PubNonce {
		out := make([]PubNonce, len(idx))
		for i, j := range idx {
			out[i] = PubNonce(unhexLen(t, v.PubNonces[j], PubNonceSize))
		}
		return out
	}
	for _, tc := range v.ValidTests {
		t.Run(strconv.Itoa(tc.TcID), func(t *testing.T) {
			agg, err := NonceAgg(pick(tc.Indices))
			if err != nil {
				t.Fatal(err)
			}
			if agg != AggNonce(unhexLen(t, tc.Expected, AggNonceSize)) {
				t.Errorf("aggnonce %x, want %s", agg, tc.Expected)
			}
			if _, err := ParseAggNonce(agg[:]); err != nil {
				t.Errorf("ParseAggNonce(own output): %v", err)
			}
		})
	}
	for _, tc := range v.ErrorTests {
		t.Run(strconv.Itoa(tc.TcID), func(t *testing.T) {
			_, err := NonceAgg(pick(tc.Indices))
			checkError(t, err, tc.Error)
		})
	}
}

// group is the shared part of a vector test group.
type group struct {
	TgID      string   `json:"tg_id"`
	T         uint32   `json:"t"`
	N         uint32   `json:"n"`
	ThreshPK  string   `json:"thresh_pk"`
	PubShares []string `json:"pubshares"`
	PubNonces []string `json:"pubnonces"`
	SecShares []string `json:"secshares"`
	SecNonces []string `json:"secnonces"`
	Tweaks    []string `json:"tweaks"`
}

func (g *group) signers(t *testing.T, ids []uint32, pubshareIdx []int) *SignersCtx {
	ps := make([]PubShare, len(pubshareIdx))
	for i, j := range pubshareIdx {
		ps[i] = PubShare(unhexLen(t, g.PubShares[j], PubShareSize))
	}
	return &SignersCtx{N: g.N, T: g.T, IDs: ids, PubShares: ps, ThreshPK: [33]byte(unhexLen(t, g.ThreshPK, 33))}
}

func (g *group) pubnonces(t *testing.T, idx []int) []PubNonce {
	out := make([]PubNonce, len(idx))
	for i, j := range idx {
		out[i] = PubNonce(unhexLen(t, g.PubNonces[j], PubNonceSize))
	}
	return out
}

func (g *group) tweaks(t *testing.T, idx []int, xonly []bool) ([]Tweak, error) {
	vals := make([][]byte, len(idx))
	for i, j := range idx {
		vals[i] = unhex(t, g.Tweaks[j])
	}
	return NewTweaks(vals, xonly)
}

// signCase is the shape shared by sign_verify and tweak cases.
type signCase struct {
	TcID           int      `json:"tc_id"`
	Comment        string   `json:"comment"`
	MyID           uint32   `json:"my_id"`
	IDs            []uint32 `json:"ids"`
	PubShareIdx    []int    `json:"pubshare_indices"`
	PubNonceIdx    []int    `json:"pubnonce_indices"`
	SecShareIdx    int      `json:"secshare_index"`
	SecNonceIdx    int      `json:"secnonce_index"`
	AggNonce       string   `json:"aggnonce"`
	Msg            string   `json:"msg"`
	TweakIdx       []int    `json:"tweak_indices"`
	IsXOnly        []bool   `json:"is_xonly"`
	Expected       string   `json:"expected"`
	Error          vecError `json:"error"`
	PSig           string   `json:"psig"`
	SignerIndex    int      `json:"signer_index"`
	hasPubNonceIdx bool
}

// runSign runs Sign for a case and also checks that the nonce is consumed.
func runSign(t *testing.T, g *group, tc *signCase) (PartialSig, *SessionCtx, error) {
	t.Helper()
	tweaks, err := g.tweaks(t, tc.TweakIdx, tc.IsXOnly)
	if err != nil {
		return PartialSig{}, nil, err
	}
	sess := &SessionCtx{
		Signers:  *g.signers(t, tc.IDs, tc.PubShareIdx),
		AggNonce: AggNonce(unhexLen(t, tc.AggNonce, AggNonceSize)),
		Tweaks:   tweaks,
		Msg:      unhex(t, tc.Msg),
	}
	sn := secNonceFromVector(t, g.SecNonces[tc.SecNonceIdx])
	psig, err := Sign(sn, scalarRaw(t, g.SecShares[tc.SecShareIdx]), tc.MyID, sess)
	if !sn.Used() || !sn.k1.IsZero() || !sn.k2.IsZero() {
		t.Error("Sign did not consume the secret nonce")
	}
	return psig, sess, err
}

// checkValidSign checks a valid case byte for byte and cross-checks it with
// NonceAgg and PartialSigVerify.
func checkValidSign(t *testing.T, g *group, tc *signCase) {
	psig, sess, err := runSign(t, g, tc)
	if err != nil {
		t.Fatal(err)
	}
	if psig != PartialSig(unhexLen(t, tc.Expected, PartialSigSize)) {
		t.Fatalf("psig %x, want %s", psig, tc.Expected)
	}
	pns := g.pubnonces(t, tc.PubNonceIdx)
	agg, err := NonceAgg(pns)
	if err != nil || agg != sess.AggNonce {
		t.Fatalf("NonceAgg(pubnonces) = %x, %v; vector aggnonce %s", agg, err, tc.AggNonce)
	}
	i := -1
	for j, id := range tc.IDs {
		if id == tc.MyID {
			i = j
		}
	}
	if err := PartialSigVerify(psig, pns, &sess.Signers, sess.Tweaks, sess.Msg, i); err != nil {
		t.Fatalf("PartialSigVerify(own psig): %v", err)
	}
	if err := PartialSigVerifyInternal(psig, tc.MyID, pns[i], sess.Signers.PubShares[i], sess); err != nil {
		t.Fatalf("PartialSigVerifyInternal(own psig): %v", err)
	}
	// Any other signer index must reject it.
	for j := range tc.IDs {
		if j == i {
			continue
		}
		err := PartialSigVerify(psig, pns, &sess.Signers, sess.Tweaks, sess.Msg, j)
		if !errors.Is(err, ErrPartialSigInvalid) {
			t.Fatalf("psig of index %d accepted for index %d: %v", i, j, err)
		}
	}
}

func TestSignVerifyVectors(t *testing.T) {
	var v struct {
		TestGroups []struct {
			group
			ValidTests       []signCase `json:"valid_tests"`
			SignErrorTests   []signCase `json:"sign_error_tests"`
			VerifyFailTests  []signCase `json:"verify_fail_tests"`
			VerifyErrorTests []signCase `json:"verify_error_tests"`
		} `json:"test_groups"`
	}
	loadVectors(t, "sign_verify_vectors.json", &v)
	if len(v.TestGroups) == 0 {
		t.Fatal("no groups")
	}
	for _, g := range v.TestGroups {
		t.Run(g.TgID, func(t *testing.T) {
			for _, tc := range g.ValidTests {
				t.Run("valid/"+strconv.Itoa(tc.TcID), func(t *testing.T) { checkValidSign(t, &g.group, &tc) })
			}
			for _, tc := range g.SignErrorTests {
				t.Run("sign_error/"+strconv.Itoa(tc.TcID), func(t *testing.T) {
					_, _, err := runSign(t, &g.group, &tc)
					checkError(t, err, tc.Error)
				})
			}
			for _, tc := range g.VerifyFailTests {
				t.Run("verify_fail/"+strconv.Itoa(tc.TcID), func(t *testing.T) {
					err := PartialSigVerify(PartialSig(unhexLen(t, tc.PSig, PartialSigSize)), g.pubnonces(t, tc.PubNonceIdx),
						g.signers(t, tc.IDs, tc.PubShareIdx), nil, unhex(t, tc.Msg), tc.SignerIndex)
					var ce *InvalidContributionError
					if !errors.Is(err, ErrPartialSigInvalid) || !errors.As(err, &ce) ||
						ce.Signer != tc.SignerIndex || ce.Contrib != ContribPsig {
						t.Fatalf("got %v, want psig of signer %d rejected", err, tc.SignerIndex)
					}
				})
			}
			for _, tc := range g.VerifyErrorTests {
				t.Run("verify_error/"+strconv.Itoa(tc.TcID), func(t *testing.T) {
					err := PartialSigVerify(PartialSig(unhexLen(t, tc.PSig, PartialSigSize)), g.pubnonces(t, tc.PubNonceIdx),
						g.signers(t, tc.IDs, tc.PubShareIdx), nil, unhex(t, tc.Msg), tc.SignerIndex)
					checkError(t, err, tc.Error)
				})
			}
		})
	}
}

func TestTweakVectors(t *testing.T) {
	var v struct {
		TestGroups []struct {
			group
			ValidTests []signCase `json:"valid_tests"`
			ErrorTests []signCase `json:"error_tests"`
		} `json:"test_groups"`
	}
	loadVectors(t, "tweak_vectors.json", &v)
	if len(v.TestGroups) == 0 {
		t.Fatal("no groups")
	}
	for _, g := range v.TestGroups {
		t.Run(g.TgID, func(t *testing.T) {
			for _, tc := range g.ValidTests {
				t.Run("valid/"+strconv.Itoa(tc.TcID), func(t *testing.T) { checkValidSign(t, &g.group, &tc) })
			}
			for _, tc := range g.ErrorTests {
				t.Run("error/"+strconv.Itoa(tc.TcID), func(t *testing.T) {
					_, _, err := runSign(t, &g.group, &tc)
					checkError(t, err, tc.Error)
				})
			}
		})
	}
}

func TestDetSignVectors(t *testing.T) {
	type detCase struct {
		TcID          int       `json:"tc_id"`
		Comment       string    `json:"comment"`
		MyID          uint32    `json:"my_id"`
		IDs           []uint32  `json:"ids"`
		PubShareIdx   []int     `json:"pubshare_indices"`
		SecShareIdx   int       `json:"secshare_index"`
		AggOtherNonce *string   `json:"aggothernonce"`
		AuxRand       *string   `json:"aux_rand"`
		Msg           string    `json:"msg"`
		Tweaks        []string  `json:"tweaks"`
		IsXOnly       []bool    `json:"is_xonly"`
		Expected      [2]string `json:"expected"`
		Error         vecError  `json:"error"`
	}
	var v struct {
		TestGroups []struct {
			group
			ValidTests []detCase `json:"valid_tests"`
			ErrorTests []detCase `json:"error_tests"`
		} `json:"test_groups"`
	}
	loadVectors(t, "det_sign_vectors.json", &v)
	if len(v.TestGroups) == 0 {
		t.Fatal("no groups")
	}
	run := func(t *testing.T, g *group, tc *detCase) (PubNonce, PartialSig, *SignersCtx, []Tweak, error) {
		vals := make([][]byte, len(tc.Tweaks))
		for i, s := range tc.Tweaks {
			vals[i] = unhex(t, s)
		}
		tweaks, err := NewTweaks(vals, tc.IsXOnly)
		if err != nil {
			return PubNonce{}, PartialSig{}, nil, nil, err
		}
		var aggOther *AggNonce
		if tc.AggOtherNonce != nil {
			a := AggNonce(unhexLen(t, *tc.AggOtherNonce, AggNonceSize))
			aggOther = &a
		}
		var aux *[32]byte
		if tc.AuxRand != nil {
			a := [32]byte(unhexLen(t, *tc.AuxRand, 32))
			aux = &a
		}
		sc := g.signers(t, tc.IDs, tc.PubShareIdx)
		pn, ps, err := DeterministicSign(scalarRaw(t, g.SecShares[tc.SecShareIdx]), tc.MyID, aggOther, sc, tweaks, unhex(t, tc.Msg), aux)
		return pn, ps, sc, tweaks, err
	}
	soleSigner := 0
	defer func() {
		if soleSigner == 0 && !t.Failed() {
			t.Error("no sole-signer (u = 1) deterministic vector was aggregated")
		}
	}()
	for _, g := range v.TestGroups {
		t.Run(g.TgID, func(t *testing.T) {
			for _, tc := range g.ValidTests {
				t.Run("valid/"+strconv.Itoa(tc.TcID), func(t *testing.T) {
					pn, ps, sc, tweaks, err := run(t, &g.group, &tc)
					if err != nil {
						t.Fatal(err)
					}
					if pn != PubNonce(unhexLen(t, tc.Expected[0], PubNonceSize)) || ps != PartialSig(unhexLen(t, tc.Expected[1], PartialSigSize)) {
						t.Fatalf("got (%x, %x), want (%s, %s)", pn, ps, tc.Expected[0], tc.Expected[1])
					}
					// The psig verifies against the session it was made in.
					agg := AggNonce(pn)
					if tc.AggOtherNonce != nil {
						var err error
						other := PubNonce(unhexLen(t, *tc.AggOtherNonce, PubNonceSize))
						if agg, err = NonceAgg([]PubNonce{pn, other}); err != nil {
							t.Fatal(err)
						}
					}
					i := -1
					for j, id := range tc.IDs {
						if id == tc.MyID {
							i = j
						}
					}
					sess := &SessionCtx{Signers: *sc, AggNonce: agg, Tweaks: tweaks, Msg: unhex(t, tc.Msg)}
					if err := PartialSigVerifyInternal(ps, tc.MyID, pn, sc.PubShares[i], sess); err != nil {
						t.Fatalf("deterministic psig does not verify: %v", err)
					}
					if len(tc.IDs) == 1 { // a sole signer's psig is the whole signature
						sig, err := PartialSigAgg([]PartialSig{ps}, sess)
						if err != nil {
							t.Fatal(err)
						}
						tctx, err := tweakCtxFor(sc.ThreshPK, tweaks)
						if err != nil {
							t.Fatal(err)
						}
						verifyFinal(t, tctx.XOnlyPubKey(), sess.Msg, sig)
						soleSigner++
					}
				})
			}
			for _, tc := range g.ErrorTests {
				t.Run("error/"+strconv.Itoa(tc.TcID), func(t *testing.T) {
					_, _, _, _, err := run(t, &g.group, &tc)
					checkError(t, err, tc.Error)
				})
			}
		})
	}
}

func TestSigAggVectors(t *testing.T) {
	type aggCase struct {
		TcID        int      `json:"tc_id"`
		Comment     string   `json:"comment"`
		IDs         []uint32 `json:"ids"`
		PubShareIdx []int    `json:"pubshare_indices"`
		AggNonce    string   `json:"aggnonce"`
		TweakIdx    []int    `json:"tweak_indices"`
		IsXOnly     []bool   `json:"is_xonly"`
		PSigs       []string `json:"psigs"`
		Msg         string   `json:"msg"`
		Expected    string   `json:"expected"`
		Error       vecError `json:"error"`
	}
	var v struct {
		TestGroups []struct {
			group
			ValidTests []aggCase `json:"valid_tests"`
			ErrorTests []aggCase `json:"error_tests"`
		} `json:"test_groups"`
	}
	loadVectors(t, "sig_agg_vectors.json", &v)
	if len(v.TestGroups) == 0 {
		t.Fatal("no groups")
	}
	run := func(t *testing.T, g *group, tc *aggCase) (Signature, *SessionCtx, error) {
		tweaks, err := g.tweaks(t, tc.TweakIdx, tc.IsXOnly)
		if err != nil {
			return Signature{}, nil, err
		}
		sess := &SessionCtx{
			Signers:  *g.signers(t, tc.IDs, tc.PubShareIdx),
			AggNonce: AggNonce(unhexLen(t, tc.AggNonce, AggNonceSize)),
			Tweaks:   tweaks,
			Msg:      unhex(t, tc.Msg),
		}
		psigs := make([]PartialSig, len(tc.PSigs))
		for i, s := range tc.PSigs {
			psigs[i] = PartialSig(unhexLen(t, s, PartialSigSize))
		}
		sig, err := PartialSigAgg(psigs, sess)
		return sig, sess, err
	}
	for _, g := range v.TestGroups {
		t.Run(g.TgID, func(t *testing.T) {
			for _, tc := range g.ValidTests {
				t.Run("valid/"+strconv.Itoa(tc.TcID), func(t *testing.T) {
					sig, sess, err := run(t, &g.group, &tc)
					if err != nil {
						t.Fatal(err)
					}
					if sig != Signature(unhexLen(t, tc.Expected, SignatureSize)) {
						t.Fatalf("sig %x, want %s", sig, tc.Expected)
					}
					tc, err := tweakCtxFor(sess.Signers.ThreshPK, sess.Tweaks)
					if err != nil {
						t.Fatal(err)
					}
					verifyFinal(t, tc.XOnlyPubKey(), sess.Msg, sig)
				})
			}
			for _, tc := range g.ErrorTests {
				t.Run("error/"+strconv.Itoa(tc.TcID), func(t *testing.T) {
					_, _, err := run(t, &g.group, &tc)
					checkError(t, err, tc.Error)
				})
			}
		})
	}
}

// verifyFinal checks a final signature with libsecp256k1 and the pure-Go
// verifier of mpc/bip340 (any length), and with btcec's schnorr (32-byte
// messages only): three implementations that share no code.
func verifyFinal(t testing.TB, pk [32]byte, msg []byte, sig Signature) {
	t.Helper()
	if err := bip340.Verify(pk[:], msg, sig[:]); err != nil {
		t.Fatalf("bip340.Verify (libsecp256k1): %v", err)
	}
	if err := bip340.VerifyReference(pk[:], msg, sig[:]); err != nil {
		t.Fatalf("bip340.VerifyReference: %v", err)
	}
	if len(msg) != 32 {
		return
	}
	pub, err := schnorr.ParsePubKey(pk[:])
	if err != nil {
		t.Fatal(err)
	}
	s, err := schnorr.ParseSignature(sig[:])
	if err != nil {
		t.Fatal(err)
	}
	if !s.Verify(msg, pub) {
		t.Fatal("btcec schnorr.Verify rejects the signature")
	}
}
