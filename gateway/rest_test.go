package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/registry"
)

const restSecret = "rest-secret-3c1e7a-never-shown"

// restDoc is a valid registration at path, with changes applied (a nil
// value deletes the field).
func restDoc(path string, changes map[string]any) []byte {
	m := map[string]any{
		"server_name":    "Weather " + path,
		"description":    "Forecasts",
		"path":           path,
		"proxy_pass_url": "http://127.0.0.1:9/mcp",
		"tags":           []string{"Weather", "weather", " forecast "},
		"headers":        []any{map[string]any{"Authorization": "Bearer " + restSecret}},
		"tool_list":      []any{map[string]any{"name": "forecast", "parsed_description": map[string]any{"main": "Forecast"}, "schema": map[string]any{"type": "object"}}},
		"owner":          "sre",
	}
	for k, v := range changes {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return b
}

// snapshot is the stored registry in its storage form: any change to any
// server (document, enabled state, timestamps) changes it.
func (e *testEnv) snapshot(t *testing.T) string {
	t.Helper()
	list, err := e.store.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, s := range list {
		doc, _ := s.MarshalStorage()
		b.Write(doc)
		b.WriteString(" enabled=" + boolStr(s.Enabled) + " " + s.CreatedAt.String() + " " + s.UpdatedAt.String() + "\n")
	}
	return b.String()
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

type restError struct {
	Error   string             `json:"error"`
	Details []registry.Problem `json:"details"`
}

func decodeErr(t *testing.T, body []byte) restError {
	t.Helper()
	var e restError
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Fatalf("error body is not {\"error\": ...}: %s", body)
	}
	return e
}

func TestRESTLifecycle(t *testing.T) {
	env := newEnv(t, Options{})
	admin := env.adminHeaders()

	// Register: 201 with the stored server and the warnings.
	resp, body := env.do(t, http.MethodPost, "/api/v1/servers", restDoc("/weather", nil), admin)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %d %s", resp.StatusCode, body)
	}
	var reg struct {
		Server   map[string]any `json:"server"`
		Warnings []string       `json:"warnings"`
	}
	if err := json.Unmarshal(body, &reg); err != nil {
		t.Fatal(err)
	}
	if reg.Server["path"] != "/weather" || len(reg.Warnings) != 1 || !strings.Contains(reg.Warnings[0], `"owner"`) {
		t.Errorf("POST answer: path %v, warnings %q; want /weather and one warning about owner", reg.Server["path"], reg.Warnings)
	}
	if bytes.Contains(body, []byte(restSecret)) {
		t.Errorf("POST answer shows the header value: %s", body)
	}

	// List: the SPEC 4.1 summary.
	resp, body = env.do(t, http.MethodGet, "/api/v1/servers", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET list: %d %s", resp.StatusCode, body)
	}
	var list serviceList
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	if list.TotalCount != 1 || len(list.Services) != 1 {
		t.Fatalf("list = %s", body)
	}
	s := list.Services[0]
	if s.Path != "/weather" || !s.Enabled || s.NumTools != 1 || strings.Join(s.Tags, ",") != "weather,forecast" || s.HealthStatus != "unknown" || s.AuthType != "none" {
		t.Errorf("list entry = %+v", s)
	}

	// Get: details, header values as ***.
	for _, p := range []string{"/api/v1/servers/weather", "/api/v1/servers/weather/", "/api/v1/servers//weather"} {
		resp, body = env.do(t, http.MethodGet, p, nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, resp.StatusCode, body)
		}
		if bytes.Contains(body, []byte(restSecret)) || !bytes.Contains(body, []byte(`"Authorization": "***"`)) {
			t.Errorf("GET %s does not redact the header: %s", p, body)
		}
	}
	var details map[string]any
	_ = json.Unmarshal(body, &details)
	if details["server_name"] != "Weather /weather" || details["owner"] != "sre" || details["health_status"] != "unknown" {
		t.Errorf("details = %v", details)
	}

	// Put: replaces, keeps the creation time, 200.
	before, _ := env.store.Get(context.Background(), "weather")
	resp, body = env.do(t, http.MethodPut, "/api/v1/servers/weather", restDoc("/weather", map[string]any{"description": "v2", "owner": nil}), admin)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	after, _ := env.store.Get(context.Background(), "weather")
	if after.Description != "v2" || !after.CreatedAt.Equal(before.CreatedAt) || after.Extra != nil {
		t.Errorf("after PUT: description %q, created %v (was %v), extra %v", after.Description, after.CreatedAt, before.CreatedAt, after.Extra)
	}
	// Put on a new path creates it: 201.
	resp, body = env.do(t, http.MethodPut, "/api/v1/servers/news", restDoc("/news", nil), admin)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT new: %d %s", resp.StatusCode, body)
	}
	// POST with ?overwrite=true replaces too.
	resp, body = env.do(t, http.MethodPost, "/api/v1/servers?overwrite=true", restDoc("/news", map[string]any{"description": "v3"}), admin)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST overwrite: %d %s", resp.StatusCode, body)
	}

	// Disable, enable: the state and the relay route follow at once.
	resp, body = env.do(t, http.MethodPost, "/api/v1/servers/weather/disable", nil, admin)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"enabled": false`) {
		t.Fatalf("disable: %d %s", resp.StatusCode, body)
	}
	if got, _ := env.store.Get(context.Background(), "weather"); got.Enabled {
		t.Error("disable did not reach the store")
	}
	if resp, body = env.do(t, http.MethodGet, "/api/v1/servers/weather", nil, nil); !strings.Contains(string(body), `"health_status": "disabled"`) {
		t.Errorf("a disabled server's details: %s", body)
	}
	if resp, body = env.do(t, http.MethodPost, "/weather/mcp", []byte(`{}`), nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("relay of a disabled server: %d %s, want 404", resp.StatusCode, body)
	}
	resp, body = env.do(t, http.MethodPost, "/api/v1/servers/weather/enable", nil, admin)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"enabled": true`) {
		t.Fatalf("enable: %d %s", resp.StatusCode, body)
	}
	if _, ok := env.gw.routes.Load().byKey["weather"]; !ok {
		t.Error("enable did not restore the route")
	}

	// Delete: 200, then 404 everywhere.
	resp, body = env.do(t, http.MethodDelete, "/api/v1/servers/weather/", nil, admin)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"removed": "/weather"`) {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	if resp, body = env.do(t, http.MethodGet, "/api/v1/servers/weather", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET after DELETE: %d %s", resp.StatusCode, body)
	}
	if _, ok := env.gw.routes.Load().byKey["weather"]; ok {
		t.Error("DELETE left the route")
	}
	if got := env.snapshot(t); strings.Count(got, "\n") != 1 || !strings.Contains(got, `"path":"/news"`) {
		t.Errorf("store after the lifecycle:\n%s", got)
	}
}

// TestRESTBadInputChangesNothing sends bad requests of every kind and checks
// each gets a clear JSON error with the right status and leaves the store
// exactly as it was.
func TestRESTBadInputChangesNothing(t *testing.T) {
	env := newEnv(t, Options{MaxBodyBytes: 2048})
	admin := env.adminHeaders()
	for _, p := range []string{"/weather", "/news"} {
		if resp, body := env.do(t, http.MethodPost, "/api/v1/servers", restDoc(p, nil), admin); resp.StatusCode != http.StatusCreated {
			t.Fatalf("setup %s: %d %s", p, resp.StatusCode, body)
		}
	}
	if _, err := env.reg.SetEnabled(context.Background(), "/news", false); err != nil {
		t.Fatal(err)
	}
	huge := restDoc("/huge", map[string]any{"description": strings.Repeat("x", 4000)})

	tests := []struct {
		name, method, path string
		body               []byte
		status             int
		// want is a piece of the error sentence; fields are the problem
		// fields the details must name.
		want   string
		fields []string
	}{
		{"malformed JSON", "POST", "/api/v1/servers", []byte(`{"server_name": "x",`), 400, "not a JSON object", []string{""}},
		{"empty body", "POST", "/api/v1/servers", []byte{}, 400, "body is empty", []string{""}},
		{"not an object", "POST", "/api/v1/servers", []byte(`["/weather"]`), 400, "an array", []string{""}},
		{"wrong types", "POST", "/api/v1/servers", []byte(`{"server_name": 1, "path": true, "proxy_pass_url": [], "tags": {}}`), 400,
			"server_name: must be a string", []string{"server_name", "path", "proxy_pass_url", "tags"}},
		{"missing fields", "POST", "/api/v1/servers", []byte(`{"description": "d"}`), 400, "is required", []string{"server_name", "path", "proxy_pass_url"}},
		{"body over the limit", "POST", "/api/v1/servers", huge, 413, "larger than the limit of 2 KiB", nil},
		{"body over the limit on PUT", "PUT", "/api/v1/servers/weather", restDoc("/weather", map[string]any{"description": strings.Repeat("y", 4000)}), 413, "2 KiB", nil},
		{"reserved path", "POST", "/api/v1/servers", restDoc("/api", nil), 400, `"/api" is reserved`, []string{"path"}},
		{"reserved mcpgw", "POST", "/api/v1/servers", restDoc("/mcpgw", nil), 400, "reserved", []string{"path"}},
		{"root path", "POST", "/api/v1/servers", restDoc("/", nil), 400, "reserved", []string{"path"}},
		{"uppercase path", "POST", "/api/v1/servers", restDoc("/Weather2", nil), 400, "lowercase", []string{"path"}},
		{"duplicate path", "POST", "/api/v1/servers", restDoc("/weather", map[string]any{"description": "dup"}), 409, "already registered at /weather", nil},
		{"duplicate with other slashes", "POST", "/api/v1/servers", restDoc("weather/", nil), 409, "already registered", nil},
		{"ftp URL", "POST", "/api/v1/servers", restDoc("/f", map[string]any{"proxy_pass_url": "ftp://example.com/mcp"}), 400, "http:// or https://", []string{"proxy_pass_url"}},
		{"file URL", "POST", "/api/v1/servers", restDoc("/f", map[string]any{"proxy_pass_url": "file:///etc/passwd"}), 400, "http:// or https://", []string{"proxy_pass_url"}},
		{"javascript URL", "PUT", "/api/v1/servers/weather", restDoc("/weather", map[string]any{"proxy_pass_url": "javascript:alert(1)"}), 400, "http:// or https://", []string{"proxy_pass_url"}},
		{"PUT path disagrees", "PUT", "/api/v1/servers/weather", restDoc("/news", nil), 400, "does not match", []string{"path"}},
		{"PUT invalid over existing", "PUT", "/api/v1/servers/news", []byte(`{"server_name": "n"}`), 400, "is required", []string{"path", "proxy_pass_url"}},
		{"GET unknown", "GET", "/api/v1/servers/nope", nil, 404, "no service is registered at /nope", nil},
		{"DELETE unknown", "DELETE", "/api/v1/servers/nope", nil, 404, "/nope", nil},
		{"enable unknown", "POST", "/api/v1/servers/nope/enable", nil, 404, "/nope", nil},
		{"disable unknown", "POST", "/api/v1/servers/nope/disable", nil, 404, "/nope", nil},
		{"unknown action", "POST", "/api/v1/servers/weather/explode", nil, 404, `unknown action "explode"`, nil},
		{"unknown endpoint", "GET", "/api/v1/nothing", nil, 404, `"/api/v1/nothing"`, nil},
		{"method not allowed", "PATCH", "/api/v1/servers/weather", []byte(`{}`), 405, "PATCH is not allowed", nil},
		{"method not allowed on list", "DELETE", "/api/v1/servers", nil, 405, "not allowed", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := env.snapshot(t)
			resp, body := env.do(t, tc.method, tc.path, tc.body, admin)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s: %d, want %d: %s", tc.method, tc.path, resp.StatusCode, tc.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			e := decodeErr(t, body)
			if !strings.Contains(e.Error, tc.want) {
				t.Errorf("error %q does not say %q", e.Error, tc.want)
			}
			got := map[string]bool{}
			for _, p := range e.Details {
				got[p.Field] = true
			}
			for _, f := range tc.fields {
				if !got[f] {
					t.Errorf("details %v do not name field %q", e.Details, f)
				}
			}
			if tc.fields == nil && len(e.Details) != 0 {
				t.Errorf("unexpected details %v", e.Details)
			}
			if after := env.snapshot(t); after != before {
				t.Errorf("the store changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	if !strings.Contains(env.snapshot(t), `"path":"/news"`) || strings.Count(env.snapshot(t), "\n") != 2 {
		t.Errorf("store after bad input:\n%s", env.snapshot(t))
	}
}

func TestRESTAdminAuth(t *testing.T) {
	env := newEnv(t, Options{})
	// A valid key that is not an admin.
	if err := env.store.PutAPIKey(context.Background(), registry.APIKey{Name: "reader", Hash: auth.HashKey("mcpgw_reader-key")}); err != nil {
		t.Fatal(err)
	}
	writes := []struct{ method, path string }{
		{"POST", "/api/v1/servers"},
		{"PUT", "/api/v1/servers/weather"},
		{"DELETE", "/api/v1/servers/weather"},
		{"POST", "/api/v1/servers/weather/enable"},
		{"POST", "/api/v1/servers/weather/disable"},
		{"POST", "/api/v1/servers/weather/refresh"},
	}
	env.register(t, map[string]any{"server_name": "w", "path": "/weather", "proxy_pass_url": "http://127.0.0.1:9/mcp"})
	callers := []struct {
		name    string
		headers map[string]string
		status  int
		want    string
	}{
		{"no token", nil, 401, "a valid gateway token is required"},
		{"wrong token", map[string]string{"Authorization": "Bearer mcpgw_wrong"}, 401, "invalid or expired"},
		{"not a bearer", map[string]string{"Authorization": "Basic " + env.admin}, 401, "a valid gateway token is required"},
		{"not an API key", map[string]string{"X-Authorization": "Bearer eyJhbGciOi.x.y"}, 401, "invalid or expired"},
		{"wrong X-Authorization wins over a good Authorization", map[string]string{"X-Authorization": "Bearer mcpgw_wrong", "Authorization": "Bearer " + env.admin}, 401, "invalid"},
		{"reader key", map[string]string{"Authorization": "Bearer mcpgw_reader-key"}, 403, "needs an admin token"},
	}
	for _, c := range callers {
		for _, w := range writes {
			t.Run(c.name+" "+w.method+" "+w.path, func(t *testing.T) {
				before := env.snapshot(t)
				h := map[string]string{"Content-Type": "application/json"}
				for k, v := range c.headers {
					h[k] = v
				}
				resp, body := env.do(t, w.method, w.path, restDoc("/weather", map[string]any{"description": "changed"}), h)
				if resp.StatusCode != c.status {
					t.Fatalf("%d, want %d: %s", resp.StatusCode, c.status, body)
				}
				if c.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("401 without WWW-Authenticate: Bearer (got %q)", resp.Header.Get("WWW-Authenticate"))
				}
				if e := decodeErr(t, body); !strings.Contains(e.Error, c.want) {
					t.Errorf("error %q does not say %q", e.Error, c.want)
				}
				if env.snapshot(t) != before {
					t.Error("a refused request changed the store")
				}
			})
		}
	}
	// The admin key works as Authorization and as X-Authorization; reads
	// need no token in local mode.
	for _, h := range []map[string]string{
		{"Authorization": "Bearer " + env.admin},
		{"X-Authorization": "Bearer " + env.admin},
		{"X-Authorization": "bearer  " + env.admin + " "},
	} {
		resp, body := env.do(t, http.MethodPost, "/api/v1/servers/weather/disable", nil, h)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("admin key as %v: %d %s", h, resp.StatusCode, body)
		}
	}
	if resp, body := env.do(t, http.MethodGet, "/api/v1/servers", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("anonymous list: %d %s", resp.StatusCode, body)
	}
	// A bad token is refused even where no token is needed: a caller who
	// sends one wants to be that identity.
	if resp, body := env.do(t, http.MethodGet, "/api/v1/servers", nil, map[string]string{"Authorization": "Bearer mcpgw_wrong"}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("list with a bad token: %d %s", resp.StatusCode, body)
	}
}

func TestReadiness(t *testing.T) {
	env := newEnv(t, Options{})
	env.register(t, map[string]any{"server_name": "w", "path": "/weather", "proxy_pass_url": "http://127.0.0.1:9/mcp"})
	resp, body := env.do(t, http.MethodGet, "/healthz", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ok"`) {
		t.Errorf("/healthz: %d %s", resp.StatusCode, body)
	}
	resp, body = env.do(t, http.MethodGet, "/readyz", nil, nil)
	var ready struct {
		Status string `json:"status"`
		Routes int    `json:"routes"`
	}
	if err := json.Unmarshal(body, &ready); resp.StatusCode != http.StatusOK || err != nil || ready.Status != "ready" || ready.Routes != 1 {
		t.Errorf("/readyz: %d %s", resp.StatusCode, body)
	}
	// With the store gone the gateway is alive but not ready.
	env.store.Close()
	resp, body = env.do(t, http.MethodGet, "/readyz", nil, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || decodeErr(t, body).Error != "store is not reachable" {
		t.Errorf("/readyz with a closed store: %d %s", resp.StatusCode, body)
	}
	if resp, _ = env.do(t, http.MethodGet, "/healthz", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz with a closed store: %d", resp.StatusCode)
	}
}

func TestUnknownRelayPath(t *testing.T) {
	env := newEnv(t, Options{})
	for _, p := range []string{"/nope/mcp", "/nope/", "/nope", "/a/b/../c/mcp", "/favicon.ico"} {
		resp, body := env.do(t, http.MethodPost, p, []byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`), map[string]string{"Content-Type": "application/json"})
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s: %d, want 404: %s", p, resp.StatusCode, body)
			continue
		}
		if e := decodeErr(t, body); !strings.Contains(e.Error, `"`+p+`"`) {
			t.Errorf("POST %s: error %q does not name the path", p, e.Error)
		}
	}
}

func TestDNSRebinding(t *testing.T) {
	env := newEnv(t, Options{AllowedHosts: []string{"gw.internal"}})
	tests := []struct {
		name, host, origin string
		status             int
	}{
		{"loopback host", "", "", 200},
		{"localhost with port", "localhost:7860", "", 200},
		{"allowed extra host", "gw.internal", "", 200},
		{"loopback origin", "", "http://localhost:3000", 200},
		{"foreign host", "evil.example", "", 403},
		{"foreign host with port", "evil.example:80", "", 403},
		{"foreign origin", "", "http://evil.example", 403},
		// A sandboxed frame of any web page, or a file, sends Origin: null.
		{"opaque origin", "", "null", 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range []string{"/api/v1/servers", "/healthz", "/mcpgw/mcp"} {
				method := http.MethodGet
				if p == "/mcpgw/mcp" {
					method = http.MethodPost
				}
				req, err := http.NewRequest(method, env.srv.URL+p, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				if tc.host != "" {
					req.Host = tc.host
				}
				if tc.origin != "" {
					req.Header.Set("Origin", tc.origin)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var e restError
				_ = json.NewDecoder(resp.Body).Decode(&e)
				resp.Body.Close()
				if tc.status == 403 {
					named := tc.host
					if named == "" {
						named = tc.origin
					}
					if resp.StatusCode != http.StatusForbidden || !strings.Contains(e.Error, `"`+named+`"`) {
						t.Errorf("%s: %d %q, want 403 naming the host", p, resp.StatusCode, e.Error)
					}
				} else if resp.StatusCode == http.StatusForbidden {
					t.Errorf("%s: refused: %s", p, e.Error)
				}
			}
		})
	}
}
