package daemon

import (
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/quorumd/quorumd/internal/apispec"
	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/policy"
)

// repoRoot is the module root.
func repoRoot(t testing.TB) string { return testkit.ModuleRoot(t) }

var paramSeg = regexp.MustCompile(`:([a-z_]+)`)

// sharedResponses are the components.responses every error answer refers
// to, by status: each carries the envelope whose err_type enum is DESIGN
// §2's list for that status, so the e2e validation checks err_type too.
var sharedResponses = map[string][]string{
	"400": {"BadRequest"},
	"401": {"Unauthorized"},
	"404": {"NotFound"},
	"500": {"Internal"},
	"503": {"Overloaded", "NotReady"},
}

// TestOpenAPIMatchesRouter, on the document as kin-openapi loads and
// validates it: every route is documented and every documented operation
// routed, request bodies and query and path parameters agree with the
// decoders, every error answer is a shared envelope response, and the
// envelopes' err_type enums are errors.go's table, status by status.
func TestOpenAPIMatchesRouter(t *testing.T) {
	doc, err := apispec.Load()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(testConfig(), Backends{Auth: newMemPolicy(), Admin: newMemPolicy(), Keys: newMemKeys(), Rooms: newMemNet(nil), Ceremonies: newMemNet(nil)}, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	routed := map[string]*route{}
	for _, r := range srv.table {
		routed[r.method+" "+paramSeg.ReplaceAllString(r.pattern, "{$1}")] = r
	}
	documented := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			documented[method+" "+path] = op
		}
	}
	for k := range routed {
		if documented[k] == nil {
			t.Errorf("route %s is not in docs/openapi.yaml", k)
		}
	}
	for k := range documented {
		if routed[k] == nil {
			t.Errorf("docs/openapi.yaml documents %s, which is not routed", k)
		}
	}

	bodies := map[string][]field{
		"POST /bip340/import/key-importer":               importFields(&importRequest{}, &importAux{}, true),
		"POST /bip340/import/import-key-share-recipient": importFields(&importRequest{}, &importAux{}, false),
		"POST /bip340/sign":                              signFields(&signRequest{}, &textAux{}),
		"POST /bip340/batch-sign":                        batchSignFields(new([]json.RawMessage)),
		"POST /bip340/derive-tweak-pubkey":               deriveFields(&deriveRequest{}, &textAux{}),
		"POST /create-room":                              createRoomFields(new(int)),
		"DELETE /admin/revoke-api-key":                   revokeFields(&revokeRequest{}),
		"POST /batch-create-rooms":                       batchRoomsFields(&batchRoomsRequest{}),
		"POST /admin/policies/create-policy":             createPolicyFields(&createPolicyRequest{}),
		"POST /admin/policies/add-rule":                  policyRuleFields(&policyRuleRequest{}),
		"POST /admin/policies/remove-rule":               policyRuleFields(&policyRuleRequest{}),
		"POST /admin/policies/assign-policy":             assignPolicyFields(&assignPolicyRequest{}),
		"POST /admin/policies/create-rule":               createRuleFields(&policy.Rule{}),
		"POST /admin/policies/add-external-rule":         externalRuleFields(&policy.Rule{}, &policy.ExternalRule{}),
		"POST /bip340/recover":                           recoverFields(new(string), new(string)),
		"POST /bip340/keygen":                            importFields(&importRequest{}, &importAux{}, false),
		"POST /bip340/backup/import-key-share":           backupImportFields(new(string), new([]byte)),
		"POST /bip340/refresh":                           refreshFields(&RefreshParams{}),
		"POST /bip340/reshare/existing-party":            reshareFields(&ReshareParams{}, &importAux{}, new(string), true),
		"POST /bip340/reshare/new-party":                 reshareFields(&ReshareParams{}, &importAux{}, new(string), false),
	}
	for k, op := range documented {
		r := routed[k]
		if r == nil {
			continue
		}
		if op.OperationID == "" || op.Responses.Status(200) == nil {
			t.Errorf("%s: needs an operationId and a 200 response", k)
		}
		want := []string{"500"}
		if r.class != classOpen {
			want = []string{"400", "401", "500", "503"}
		}
		for _, code := range want {
			if op.Responses.Value(code) == nil {
				t.Errorf("%s: no %s response", k, code)
			}
		}
		for code, ref := range op.Responses.Map() {
			if code == "200" {
				continue
			}
			name := strings.TrimPrefix(ref.Ref, "#/components/responses/")
			if !slices.Contains(sharedResponses[code], name) {
				t.Errorf("%s: response %s is %q, want a $ref to one of components.responses %v", k, code, ref.Ref, sharedResponses[code])
			}
		}

		if ok := op.Responses.Status(200); ok != nil {
			for _, mt := range ok.Value.Content {
				if mt.Schema != nil {
					checkClosed(t, k+" 200", mt.Schema.Value, map[*openapi3.Schema]bool{})
				}
			}
		}

		fs, hasBody := bodies[k]
		switch {
		case hasBody && op.RequestBody == nil:
			t.Errorf("%s: request body not documented", k)
		case !hasBody && op.RequestBody != nil:
			t.Errorf("%s: documents a body the route does not take", k)
		case hasBody:
			s := op.RequestBody.Value.Content.Get("application/json").Schema.Value
			props := slices.Sorted(func(yield func(string) bool) {
				for p := range s.Properties {
					if !yield(p) {
						return
					}
				}
			})
			req := slices.Clone(s.Required)
			sort.Strings(req)
			names, required := fieldNames(fs)
			if !slices.Equal(props, names) || !slices.Equal(req, required) {
				t.Errorf("%s: documented %v required %v; decoder takes %v required %v", k, props, req, names, required)
			}
			if s.AdditionalProperties.Has == nil || *s.AdditionalProperties.Has {
				t.Errorf("%s: the request body must say additionalProperties: false (unknown members are refused)", k)
			}
		}

		var query, pathParams []string
		for _, p := range op.Parameters {
			switch p.Value.In {
			case "query":
				query = append(query, p.Value.Name)
			case "path":
				pathParams = append(pathParams, p.Value.Name)
			}
		}
		sort.Strings(query)
		wantQuery := slices.Clone(r.query)
		sort.Strings(wantQuery)
		if !slices.Equal(query, wantQuery) {
			t.Errorf("%s: query parameters %v, route takes %v", k, query, wantQuery)
		}
		var wantPath []string
		for _, m := range paramSeg.FindAllStringSubmatch(r.pattern, -1) {
			wantPath = append(wantPath, m[1])
		}
		if !slices.Equal(pathParams, wantPath) {
			t.Errorf("%s: path parameters %v, pattern has %v", k, pathParams, wantPath)
		}
	}

	// The envelopes, status by status, against errors.go's table.
	byStatus := map[int][]string{}
	for _, typ := range ErrTypes() {
		st, _ := StatusOf(typ)
		byStatus[st] = append(byStatus[st], typ)
	}
	for code, names := range sharedResponses {
		st, _ := strconv.Atoi(code)
		if st == statusBusy {
			st = statusInternal // 503 carries internal_problem
		}
		wantTypes := slices.Sorted(slices.Values(byStatus[st]))
		for _, name := range names {
			ref := doc.Components.Responses[name]
			if ref == nil {
				t.Errorf("components.responses.%s is missing", name)
				continue
			}
			s := ref.Value.Content.Get("application/json").Schema.Value
			got := make([]string, 0, len(s.Properties["err_type"].Value.Enum))
			for _, v := range s.Properties["err_type"].Value.Enum {
				got = append(got, v.(string))
			}
			sort.Strings(got)
			if !slices.Equal(got, wantTypes) {
				t.Errorf("components.responses.%s (%s): err_type enum %v, errors.go has %v", name, code, got, wantTypes)
			}
			if s.AdditionalProperties.Has == nil || *s.AdditionalProperties.Has || !slices.Equal(slices.Sorted(slices.Values(s.Required)), []string{"err_msg", "err_type"}) {
				t.Errorf("components.responses.%s: the envelope must be exactly {err_type, err_msg}", name)
			}
		}
	}
	if h := doc.Components.Responses["Overloaded"].Value.Headers["Retry-After"]; h == nil || !h.Value.Required {
		t.Error("the 503 Overloaded response must require Retry-After")
	}
	// A rule grants the operations a policy can (the admin ones come with
	// the admin flag), in the request and in the stored record alike.
	var userOps []string
	for _, op := range policy.Operations() {
		if !op.IsAdmin() {
			userOps = append(userOps, string(op))
		}
	}
	sort.Strings(userOps)
	for _, name := range []string{"CreateRuleRequest", "Rule"} {
		var got []string
		for _, v := range doc.Components.Schemas[name].Value.Properties["allowed_operations"].Value.Items.Value.Enum {
			got = append(got, v.(string))
		}
		sort.Strings(got)
		if !slices.Equal(got, userOps) {
			t.Errorf("%s.allowed_operations enum %v, policy has %v", name, got, userOps)
		}
	}

	all := slices.Sorted(slices.Values(ErrTypes()))
	var generic []string
	for _, v := range doc.Components.Schemas["Error"].Value.Properties["err_type"].Value.Enum {
		generic = append(generic, v.(string))
	}
	sort.Strings(generic)
	if !slices.Equal(generic, all) {
		t.Errorf("Error.err_type enum %v, errors.go has %v", generic, all)
	}
}

func fieldNames(fs []field) (names, required []string) {
	for _, f := range fs {
		names = append(names, f.name)
		if f.required {
			required = append(required, f.name)
		}
	}
	sort.Strings(names)
	sort.Strings(required)
	return
}

// checkClosed: every object with named members in an answer says
// additionalProperties: false, so a member the document does not name
// fails the e2e validation instead of passing unnoticed.
func checkClosed(t *testing.T, where string, s *openapi3.Schema, seen map[*openapi3.Schema]bool) {
	t.Helper()
	if s == nil || seen[s] {
		return
	}
	seen[s] = true
	if len(s.Properties) > 0 && (s.AdditionalProperties.Has == nil || *s.AdditionalProperties.Has) {
		t.Errorf("%s: an object with members %v is not closed (additionalProperties: false)", where, slices.Sorted(maps.Keys(s.Properties)))
	}
	for _, p := range s.Properties {
		checkClosed(t, where, p.Value, seen)
	}
	if s.Items != nil {
		checkClosed(t, where, s.Items.Value, seen)
	}
	if s.AdditionalProperties.Schema != nil {
		checkClosed(t, where, s.AdditionalProperties.Schema.Value, seen)
	}
	for _, set := range []openapi3.SchemaRefs{s.OneOf, s.AnyOf, s.AllOf} {
		for _, r := range set {
			checkClosed(t, where, r.Value, seen)
		}
	}
}
