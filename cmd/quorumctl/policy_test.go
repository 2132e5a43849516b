package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestPolicyVerbs: every `quorumctl policy` verb and batch-create-rooms
// send the request docs/openapi.yaml documents (method, path, query, body,
// raw Authorization header), print the answer, and turn an error envelope
// into a failure naming its err_type.
func TestPolicyVerbs(t *testing.T) {
	type seen struct{ method, path, query, auth, body string }
	var mu sync.Mutex
	var last seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		last = seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), string(b)}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/00000000-0000-4000-8000-000000000000") {
			w.WriteHeader(400)
			w.Write([]byte(`{"err_type":"policy_not_found","err_msg":"policy not found"}`))
			return
		}
		// The documented answer of each route, with values the output
		// must show.
		answers := map[string]string{
			"create-policy":      `{"policy_id":"yes-policy"}`,
			"list-policies":      `{"policies":[{"policy_id":"yes-policy","name":"n","rules":[]}]}`,
			"get-policy":         `{"policy_id":"yes-policy","name":"n","rules":[]}`,
			"create-rule":        `{"rule_id":"yes-rule"}`,
			"add-external-rule":  `{"rule_id":"yes-rule"}`,
			"list-rules":         `{"rules":[{"rule_id":"yes-rule","name":"r","created_at":"2026-01-01T00:00:00Z"}]}`,
			"get-rule":           `{"rule_id":"yes-rule","name":"r","max_n":3,"created_at":"2026-01-01T00:00:00Z"}`,
			"generate-api-key":   `{"api_key":"yes-key"}`,
			"batch-create-rooms": `{"room_uuids":["11111111-1111-4111-8111-111111111111"]}`,
		}
		for route, a := range answers {
			if strings.Contains(r.URL.Path, "/"+route) {
				w.Write([]byte(a))
				return
			}
		}
		// delete-*, add-rule, remove-rule, assign-policy echo their ids.
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	dir := t.TempDir()
	ruleFile := filepath.Join(dir, "rule.json")
	os.WriteFile(ruleFile, []byte(`{"name":"r","max_n":3}`), 0o600)
	pubFile := filepath.Join(dir, "pub.pem")
	os.WriteFile(pubFile, []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), 0o600)
	env := map[string]string{"QUORUMCTL_DAEMON": srv.URL, "QUORUMCTL_ADMIN_KEY": "0123456789abcdef.secret"}
	const pid, rid, uid = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb", "cccccccc-cccc-4ccc-8ccc-cccccccccccc"
	for _, tc := range []struct {
		args []string
		want seen
	}{
		{[]string{"policy", "create", "-name", "Custody policy", "-rules", rid}, seen{"POST", "/admin/policies/create-policy", "", "", `{"name":"Custody policy","rules":["` + rid + `"]}`}},
		{[]string{"policy", "create", "-name", "empty"}, seen{"POST", "/admin/policies/create-policy", "", "", `{"name":"empty","rules":[]}`}},
		{[]string{"policy", "list"}, seen{"GET", "/admin/policies/list-policies", "", "", ""}},
		{[]string{"policy", "get", "-id", pid}, seen{"GET", "/admin/policies/get-policy/" + pid, "", "", ""}},
		{[]string{"policy", "delete", "-id", pid}, seen{"DELETE", "/admin/policies/delete-policy/" + pid, "", "", ""}},
		{[]string{"policy", "add-rule", "-policy", pid, "-rule", rid}, seen{"POST", "/admin/policies/add-rule", "", "", `{"policy_id":"` + pid + `","rule_id":"` + rid + `"}`}},
		{[]string{"policy", "remove-rule", "-policy", pid, "-rule", rid}, seen{"POST", "/admin/policies/remove-rule", "", "", `{"policy_id":"` + pid + `","rule_id":"` + rid + `"}`}},
		{[]string{"policy", "create-rule", "-file", ruleFile}, seen{"POST", "/admin/policies/create-rule", "", "", `{"name":"r","max_n":3}`}},
		{[]string{"policy", "add-external-rule", "-name", "ext", "-jwt-alg", "EdDSA", "-pubkey-file", pubFile, "-url", "https://rules.example/check"},
			seen{"POST", "/admin/policies/add-external-rule", "", "", `{"jwt_alg":"EdDSA","name":"ext","pubkey":"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----","url":"https://rules.example/check"}`}},
		{[]string{"policy", "list-rules"}, seen{"GET", "/admin/policies/list-rules", "", "", ""}},
		{[]string{"policy", "get-rule", "-id", rid}, seen{"GET", "/admin/policies/get-rule/" + rid, "", "", ""}},
		{[]string{"policy", "delete-rule", "-id", rid}, seen{"DELETE", "/admin/policies/delete-rule/" + rid, "", "", ""}},
		{[]string{"policy", "assign", "-user", uid, "-policy", pid}, seen{"POST", "/admin/policies/assign-policy", "", "", `{"policy_id":"` + pid + `","user_id":"` + uid + `"}`}},
		{[]string{"policy", "generate-api-key", "-user", uid}, seen{"GET", "/admin/generate-api-key", "user_id=" + uid, "", ""}},
		{[]string{"batch-create-rooms", "-key", "k", "-sizes", "2,3"}, seen{"POST", "/batch-create-rooms", "", "k", `{"room_sizes":[2,3]}`}},
		{[]string{"batch-create-rooms", "-key", "k", "-size", "2", "-count", "4"}, seen{"POST", "/batch-create-rooms", "", "k", `{"count":4,"room_size":2}`}},
	} {
		code, out, errOut := runCLI(t, env, tc.args...)
		if code != exitOK {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errOut)
		}
		mu.Lock()
		got := last
		mu.Unlock()
		want := tc.want
		if want.auth == "" {
			want.auth = env["QUORUMCTL_ADMIN_KEY"]
		}
		if got.body != "" {
			var a, b any
			if json.Unmarshal([]byte(got.body), &a) != nil || json.Unmarshal([]byte(want.body), &b) != nil {
				t.Fatalf("%v: body %q", tc.args, got.body)
			}
			ga, _ := json.Marshal(a)
			gb, _ := json.Marshal(b)
			got.body, want.body = string(ga), string(gb)
		}
		if got != want {
			t.Errorf("%v: sent %+v, want %+v", tc.args, got, want)
		}
		if !strings.Contains(out, "yes") && !strings.Contains(out, "11111111-1111-4111-8111-111111111111") &&
			!strings.Contains(out, `"`+pid+`"`) && !strings.Contains(out, `"`+rid+`"`) {
			t.Errorf("%v: printed %q", tc.args, out)
		}
	}
	code, _, errOut := runCLI(t, env, "policy", "get", "-id", "00000000-0000-4000-8000-000000000000")
	if code != exitFailure || !strings.Contains(errOut, "policy_not_found") {
		t.Fatalf("error envelope: exit %d, %q", code, errOut)
	}
	// A rule file with a field no rule has is refused before sending.
	os.WriteFile(ruleFile, []byte(`{"name":"r","max_m":3}`), 0o600)
	if code, _, errOut := runCLI(t, env, "policy", "create-rule", "-file", ruleFile); code != exitUsage || !strings.Contains(errOut, "max_m") {
		t.Errorf("unknown rule field: exit %d, %q", code, errOut)
	}
	for _, args := range [][]string{{"policy"}, {"policy", "fly"}, {"policy", "get"}, {"policy", "add-rule", "-policy", pid}, {"batch-create-rooms", "-key", "k"}, {"batch-create-rooms", "-key", "k", "-sizes", "2", "-count", "1"}} {
		if code, _, _ := runCLI(t, env, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want usage", args, code)
		}
	}
}
