package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
)

// policyErr stands in for another package's typed error (e.g. policy's).
type policyErr struct {
	typ, msg string
	cause    error
}

func (e *policyErr) Error() string   { return e.msg }
func (e *policyErr) ErrType() string { return e.typ }
func (e *policyErr) Unwrap() error   { return e.cause }

var (
	errStoreNotFound = errors.New("store: not found")
	errHSM           = errors.New("hsm failure")
)

// abortErr stands in for a foreign error type without ErrType (like a
// ceremony's *AbortError), mapped by the Classify hook.
type abortErr struct {
	text  string
	cause error
}

func (e *abortErr) Error() string { return e.text }
func (e *abortErr) Unwrap() error { return e.cause }

func TestClassify(t *testing.T) {
	classifyHook := func(err error) (string, string, bool) {
		var a *abortErr
		if !errors.As(err, &a) {
			return "", "", false
		}
		if errors.Is(a, errHSM) {
			return ErrTypeInternalProblem, a.text, true
		}
		return ErrTypeExecutorResult, a.text, true
	}
	rules := &errorRules{
		classify: classifyHook,
		mappings: []ErrorMapping{{Target: errStoreNotFound, Type: ErrTypeKeyIDNotExists, Msg: "key_id does not exist"}},
	}
	srv := &Server{cfg: testConfig(), b: Backends{Classify: classifyHook}}
	cases := []struct {
		name    string
		err     error
		status  int
		errType string
		msg     string // "" = the internal message
	}{
		{"daemon error", badRequest("field %q", "x"), 400, ErrTypeBadRequestParams, `field "x"`},
		{"wrapped daemon error hides wrapper text", fmt.Errorf("vault at 10.0.0.1 said no: %w", ErrAccessDenied), 401, ErrTypeAccessDenied, ErrAccessDenied.Msg},
		{"sentinel", fmt.Errorf("get: %w", ErrKeyNotFound), 400, ErrTypeKeyIDNotExists, ErrKeyNotFound.Msg},
		{"foreign typed", fmt.Errorf("authorize: %w", &policyErr{ErrTypePolicyValidationFailed, "relay not allowed", nil}), 400, ErrTypePolicyValidationFailed, "relay not allowed"},
		{"foreign typed executor", &policyErr{ErrTypeExecutorResult, "party 02ab.. sent a bad share", nil}, 400, ErrTypeExecutorResult, "party 02ab.. sent a bad share"},
		{"foreign typed internal is hidden", &policyErr{ErrTypeInternalProblem, "CKR_GENERAL_ERROR", nil}, 500, ErrTypeInternalProblem, ""},
		{"foreign typed unknown type is hidden", &policyErr{"made_up", "detail", nil}, 500, ErrTypeInternalProblem, ""},
		{"mapped foreign sentinel", fmt.Errorf("bolt tx: %w", errStoreNotFound), 400, ErrTypeKeyIDNotExists, "key_id does not exist"},
		{"untyped", errors.New("pkcs11: token removed"), 500, ErrTypeInternalProblem, ""},
		{"bare deadline", context.DeadlineExceeded, 500, ErrTypeInternalProblem, ""},
		{"ceremony deadline", srv.ceremonyError(fmt.Errorf("round 2: %w", context.DeadlineExceeded)), 400, ErrTypeExecutorResult, ""},
		{"ceremony typed kept", srv.ceremonyError(&policyErr{ErrTypeExecutorResult, "culprit 03cd", context.DeadlineExceeded}), 400, ErrTypeExecutorResult, "culprit 03cd"},
		{"ceremony classified kept", srv.ceremonyError(&abortErr{"round 2 timed out (culprit 02ab)", context.DeadlineExceeded}), 400, ErrTypeExecutorResult, "round 2 timed out (culprit 02ab)"},
		{"ceremony cancel", srv.ceremonyError(context.Canceled), 400, ErrTypeExecutorResult, ""},
		{"classify hook", fmt.Errorf("import: %w", &abortErr{"bad share from 02cd", nil}), 400, ErrTypeExecutorResult, "bad share from 02cd"},
		{"classify hook internal hidden", &abortErr{"commit failed: CKR_DEVICE_ERROR", errHSM}, 500, ErrTypeInternalProblem, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := classify(c.err, rules)
			if got.status != c.status || got.errType != c.errType {
				t.Fatalf("got %d %s, want %d %s", got.status, got.errType, c.status, c.errType)
			}
			if c.status == 500 && (got.msg != internalMsg || !got.internal) {
				t.Fatalf("internal text shown: %q", got.msg)
			}
			if c.msg != "" && got.msg != c.msg {
				t.Fatalf("msg %q, want %q", got.msg, c.msg)
			}
			if c.status != 500 && got.internal {
				t.Fatal("client error marked internal")
			}
		})
	}
}

func TestErrTypeTable(t *testing.T) {
	types := ErrTypes()
	sort.Strings(types)
	if len(types) != 25 {
		t.Fatalf("%d err_types, DESIGN §2 has 25", len(types))
	}
	for _, typ := range types {
		status, ok := StatusOf(typ)
		want := 400
		switch typ {
		case ErrTypeAccessDenied:
			want = 401
		case ErrTypeNotFound:
			want = 404
		case ErrTypeInternalProblem:
			want = 500
		}
		if !ok || status != want {
			t.Errorf("%s: status %d, want %d", typ, status, want)
		}
	}
	if _, ok := StatusOf("nope"); ok {
		t.Fatal("unknown err_type has a status")
	}
}

func TestEnvelope(t *testing.T) {
	b := envelope(ErrTypeBadRequestParams, "quote \" and <tag>")
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil || len(m) != 2 || m["err_type"] != ErrTypeBadRequestParams || m["err_msg"] != "quote \" and <tag>" {
		t.Fatalf("%s %v", b, err)
	}
	if !strings.HasPrefix(string(b), `{"err_type":`) {
		t.Fatalf("field order: %s", b)
	}
}
