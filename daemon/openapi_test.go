package daemon

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/policy"
)

// repoRoot is the module root.
func repoRoot(t testing.TB) string { return testkit.ModuleRoot(t) }

type oaSchema struct {
	Ref        string               `yaml:"$ref"`
	Required   []string             `yaml:"required"`
	Properties map[string]*oaSchema `yaml:"properties"`
	Enum       []string             `yaml:"enum"`
}

type oaParam struct {
	Ref  string `yaml:"$ref"`
	Name string `yaml:"name"`
	In   string `yaml:"in"`
}

type oaOperation struct {
	OperationID string    `yaml:"operationId"`
	Parameters  []oaParam `yaml:"parameters"`
	RequestBody *struct {
		Content map[string]struct {
			Schema oaSchema `yaml:"schema"`
		} `yaml:"content"`
	} `yaml:"requestBody"`
	Responses map[string]any `yaml:"responses"`
}

type oaDoc struct {
	OpenAPI    string                             `yaml:"openapi"`
	Paths      map[string]map[string]*oaOperation `yaml:"paths"`
	Components struct {
		Schemas    map[string]*oaSchema `yaml:"schemas"`
		Parameters map[string]oaParam   `yaml:"parameters"`
	} `yaml:"components"`
}

func (d *oaDoc) resolve(t *testing.T, s *oaSchema) *oaSchema {
	for s != nil && s.Ref != "" {
		name := strings.TrimPrefix(s.Ref, "#/components/schemas/")
		s = d.Components.Schemas[name]
		if s == nil {
			t.Fatalf("dangling $ref %s", name)
		}
	}
	return s
}

func loadOpenAPI(t *testing.T) *oaDoc {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var d oaDoc
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d.OpenAPI, "3.0") {
		t.Fatalf("openapi version %q", d.OpenAPI)
	}
	return &d
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

var paramSeg = regexp.MustCompile(`:([a-z_]+)`)

// TestOpenAPIMatchesRouter: every route is documented, every documented
// operation is routed, and bodies, query and path parameters and the error
// vocabulary agree with the code.
func TestOpenAPIMatchesRouter(t *testing.T) {
	doc := loadOpenAPI(t)
	srv, err := New(testConfig(), Backends{Auth: newMemPolicy(), Admin: newMemPolicy(), Keys: newMemKeys(), Rooms: newMemNet(nil), Ceremonies: newMemNet(nil)}, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	routed := map[string]*route{}
	for _, r := range srv.table {
		routed[strings.ToLower(r.method)+" "+paramSeg.ReplaceAllString(r.pattern, "{$1}")] = r
	}
	documented := map[string]*oaOperation{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
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
		"post /bip340/import/key-importer":               importFields(&importRequest{}, &importAux{}, true),
		"post /bip340/import/import-key-share-recipient": importFields(&importRequest{}, &importAux{}, false),
		"post /bip340/sign":                              signFields(&signRequest{}, &textAux{}),
		"post /bip340/batch-sign":                        batchSignFields(new([]json.RawMessage)),
		"post /bip340/derive-tweak-pubkey":               deriveFields(&deriveRequest{}, &textAux{}),
		"post /create-room":                              createRoomFields(new(int)),
		"delete /admin/revoke-api-key":                   revokeFields(&revokeRequest{}),
		"post /batch-create-rooms":                       batchRoomsFields(&batchRoomsRequest{}),
		"post /admin/policies/create-policy":             createPolicyFields(&createPolicyRequest{}),
		"post /admin/policies/add-rule":                  policyRuleFields(&policyRuleRequest{}),
		"post /admin/policies/remove-rule":               policyRuleFields(&policyRuleRequest{}),
		"post /admin/policies/assign-policy":             assignPolicyFields(&assignPolicyRequest{}),
		"post /admin/policies/create-rule":               createRuleFields(&policy.Rule{}),
		"post /admin/policies/add-external-rule":         externalRuleFields(&policy.Rule{}, &policy.ExternalRule{}),
		"post /bip340/recover":                           recoverFields(new(string), new(string)),
		"post /bip340/refresh":                           refreshFields(&RefreshParams{}),
		"post /bip340/reshare/existing-party":            reshareFields(&ReshareParams{}, &importAux{}, new(string), true),
		"post /bip340/reshare/new-party":                 reshareFields(&ReshareParams{}, &importAux{}, new(string), false),
	}
	for k, op := range documented {
		r := routed[k]
		if r == nil {
			continue
		}
		if op.OperationID == "" || op.Responses["200"] == nil {
			t.Errorf("%s: needs an operationId and a 200 response", k)
		}
		if r.class != classOpen {
			for _, code := range []string{"400", "401", "500", "503"} {
				if op.Responses[code] == nil {
					t.Errorf("%s: no %s response", k, code)
				}
			}
		}
		// Request bodies.
		fs, hasBody := bodies[k]
		switch {
		case hasBody && op.RequestBody == nil:
			t.Errorf("%s: request body not documented", k)
		case !hasBody && op.RequestBody != nil:
			t.Errorf("%s: documents a body the route does not take", k)
		case hasBody:
			body := op.RequestBody.Content["application/json"].Schema
			s := doc.resolve(t, &body)
			var props []string
			for p := range s.Properties {
				props = append(props, p)
			}
			sort.Strings(props)
			req := slices.Clone(s.Required)
			sort.Strings(req)
			names, required := fieldNames(fs)
			if !slices.Equal(props, names) || !slices.Equal(req, required) {
				t.Errorf("%s: documented %v required %v; decoder takes %v required %v", k, props, req, names, required)
			}
		}
		// Query and path parameters.
		var query, pathParams []string
		for _, p := range op.Parameters {
			if p.Ref != "" {
				p = doc.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
			}
			switch p.In {
			case "query":
				query = append(query, p.Name)
			case "path":
				pathParams = append(pathParams, p.Name)
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

	errSchema := doc.Components.Schemas["Error"]
	if errSchema == nil || errSchema.Properties["err_type"] == nil {
		t.Fatal("no Error schema")
	}
	enum := slices.Clone(errSchema.Properties["err_type"].Enum)
	sort.Strings(enum)
	types := ErrTypes()
	sort.Strings(types)
	if !slices.Equal(enum, types) {
		t.Errorf("Error.err_type enum %v, code has %v", enum, types)
	}
}
