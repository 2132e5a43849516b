package vaulttest

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxVersions is how many versions a KV v2 key keeps (Vault's default).
const maxVersions = 10

type kvMount struct {
	entries map[string]*kvEntry
}

type kvEntry struct {
	created, updated time.Time
	current, oldest  int
	versions         map[int]*kvVersion
}

type kvVersion struct {
	data      map[string]any
	created   time.Time
	deleted   time.Time
	destroyed bool
}

func newKV() *kvMount { return &kvMount{entries: map[string]*kvEntry{}} }

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func (v *kvVersion) metadata(n int) map[string]any {
	return map[string]any{
		"created_time": ts(v.created), "custom_metadata": nil,
		"deletion_time": ts(v.deleted), "destroyed": v.destroyed, "version": n,
	}
}

// kvRoute splits "<mount>/<rest>" for the longest KV v2 mount matching.
func (s *Server) kvRoute(path string) (*kvMount, string, bool) {
	best := ""
	for m := range s.kv {
		if strings.HasPrefix(path, m+"/") && len(m) > len(best) {
			best = m
		}
	}
	if best == "" {
		return nil, "", false
	}
	return s.kv[best], strings.TrimPrefix(path, best+"/"), true
}

func (s *Server) kvHandle(q *request, m *kvMount, rest string) {
	switch {
	case strings.HasPrefix(rest, "data/"):
		s.kvData(q, m, strings.TrimPrefix(rest, "data/"))
	case strings.HasPrefix(rest, "metadata/") || rest == "metadata":
		s.kvMetadata(q, m, strings.TrimPrefix(strings.TrimPrefix(rest, "metadata"), "/"))
	default:
		writeErrors(q.w, http.StatusNotFound, []string{"1 error occurred:\n\t* unsupported path\n\n"})
	}
}

func (s *Server) kvData(q *request, m *kvMount, key string) {
	now := time.Now()
	e := m.entries[key]
	switch q.method {
	case http.MethodGet:
		if !s.authorize(q, "read") {
			return
		}
		if e == nil || key == "" {
			writeErrors(q.w, http.StatusNotFound, []string{})
			return
		}
		n := e.current
		if v := q.r.URL.Query().Get("version"); v != "" && v != "0" {
			x, err := strconv.Atoi(v)
			if err != nil {
				writeErrors(q.w, http.StatusBadRequest, []string{"invalid version"})
				return
			}
			n = x
		}
		ver := e.versions[n]
		if ver == nil {
			writeErrors(q.w, http.StatusNotFound, []string{})
			return
		}
		if !ver.deleted.IsZero() || ver.destroyed {
			writeJSON(q.w, http.StatusNotFound, envelope(map[string]any{"data": nil, "metadata": ver.metadata(n)}, nil, nil))
			return
		}
		writeData(q.w, map[string]any{"data": ver.data, "metadata": ver.metadata(n)})
	case http.MethodPost, http.MethodPut:
		want := "update"
		if e == nil {
			want = "create"
		}
		if !s.authorize(q, want) {
			return
		}
		if key == "" || strings.HasSuffix(key, "/") {
			writeErrors(q.w, http.StatusBadRequest, []string{"invalid key"})
			return
		}
		data, ok := q.body["data"].(map[string]any)
		if !ok {
			writeErrors(q.w, http.StatusBadRequest, []string{"no data provided"})
			return
		}
		if o, ok := q.body["options"].(map[string]any); ok {
			if c, has := o["cas"]; has {
				cas, ok := c.(float64)
				cur := 0
				if e != nil {
					cur = e.current
				}
				if !ok || int(cas) != cur {
					writeErrors(q.w, http.StatusBadRequest, []string{"check-and-set parameter did not match the current version"})
					return
				}
			}
		}
		if e == nil {
			e = &kvEntry{created: now, versions: map[int]*kvVersion{}, oldest: 1}
			m.entries[key] = e
		}
		e.current++
		e.updated = now
		v := &kvVersion{data: data, created: now}
		e.versions[e.current] = v
		for len(e.versions) > maxVersions {
			delete(e.versions, e.oldest)
			e.oldest++
		}
		writeData(q.w, v.metadata(e.current))
	case http.MethodDelete:
		if !s.authorize(q, "delete") {
			return
		}
		if e != nil {
			if v := e.versions[e.current]; v != nil && v.deleted.IsZero() {
				v.deleted = now
			}
		}
		q.w.WriteHeader(http.StatusNoContent)
	default:
		writeErrors(q.w, http.StatusMethodNotAllowed, []string{"unsupported operation"})
	}
}

func (s *Server) kvMetadata(q *request, m *kvMount, key string) {
	switch q.method {
	case "LIST":
		if !s.authorize(q, "list") {
			return
		}
		prefix := key
		if prefix != "" && !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		seen := map[string]struct{}{}
		for k := range m.entries {
			if !strings.HasPrefix(k, prefix) {
				continue
			}
			rest := strings.TrimPrefix(k, prefix)
			if i := strings.Index(rest, "/"); i >= 0 {
				rest = rest[:i+1]
			}
			seen[rest] = struct{}{}
		}
		if len(seen) == 0 {
			writeErrors(q.w, http.StatusNotFound, []string{})
			return
		}
		writeData(q.w, map[string]any{"keys": sortedKeys(seen)})
	case http.MethodGet:
		if !s.authorize(q, "read") {
			return
		}
		e := m.entries[key]
		if e == nil {
			writeErrors(q.w, http.StatusNotFound, []string{})
			return
		}
		versions := map[string]any{}
		for n, v := range e.versions {
			versions[strconv.Itoa(n)] = map[string]any{
				"created_time": ts(v.created), "deletion_time": ts(v.deleted), "destroyed": v.destroyed,
			}
		}
		writeData(q.w, map[string]any{
			"cas_required": false, "created_time": ts(e.created), "current_version": e.current,
			"custom_metadata": nil, "delete_version_after": "0s", "max_versions": 0,
			"oldest_version": e.oldest, "updated_time": ts(e.updated), "versions": versions,
		})
	case http.MethodDelete:
		if !s.authorize(q, "delete") {
			return
		}
		delete(m.entries, key)
		q.w.WriteHeader(http.StatusNoContent)
	default:
		writeErrors(q.w, http.StatusMethodNotAllowed, []string{"unsupported operation"})
	}
}
