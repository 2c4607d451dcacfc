package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/registry"
)

// callMeta calls a meta tool and returns the result with its JSON text
// decoded. It fails the test when the text and structuredContent disagree,
// since SPEC 4.1 promises both hold the same object.
func callMeta(t *testing.T, c *client.Client, name string, args map[string]any) (*mcp.CallToolResult, map[string]any) {
	t.Helper()
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	res, err := c.CallTool(context.Background(), req)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(res.Content) != 1 {
		t.Fatalf("%s: %d contents, want one text", name, len(res.Content))
	}
	text, ok := res.Content[0].(mcp.TextContent)
	if !ok {
		t.Fatalf("%s: content is %T, want text", name, res.Content[0])
	}
	var fromText map[string]any
	if err := json.Unmarshal([]byte(text.Text), &fromText); err != nil {
		t.Fatalf("%s: text is not a JSON object: %q", name, text.Text)
	}
	if res.IsError {
		return res, fromText
	}
	sb, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	var fromStructured map[string]any
	if err := json.Unmarshal(sb, &fromStructured); err != nil {
		t.Fatalf("%s: structuredContent is not an object: %s", name, sb)
	}
	if !reflect.DeepEqual(fromText, fromStructured) {
		t.Errorf("%s: text and structuredContent differ:\n%s\n%s", name, text.Text, sb)
	}
	return res, fromText
}

func toolNames(t *testing.T, c *client.Client) []string {
	t.Helper()
	res, err := c.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	sort.Strings(names)
	return names
}

func sortedKeys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestMetaListServicesShape(t *testing.T) {
	env := newEnv(t, Options{})
	env.register(t, map[string]any{
		"server_name": "Customer support", "path": "/customer-support-assistant", "description": "Warranty lookups",
		"proxy_pass_url": "https://gw-1.gateway.bedrock-agentcore.us-east-1.amazonaws.com/mcp/", "auth_provider": "bedrock-agentcore",
		"auth_type": "oauth", "tags": []string{"Support", "warranty"},
		"headers":   []any{map[string]any{"Authorization": "Bearer meta-secret-77a1"}},
		"tool_list": []any{map[string]any{"name": "check_warranty", "schema": map[string]any{"type": "object"}}, map[string]any{"name": "profile"}},
	})
	env.register(t, map[string]any{"server_name": "Weather", "path": "/weather", "proxy_pass_url": "http://127.0.0.1:9/mcp"})
	if _, err := env.reg.SetEnabled(context.Background(), "/weather", false); err != nil {
		t.Fatal(err)
	}
	c := connect(t, env.srv.URL+"/mcpgw/mcp", nil, "")

	_, out := callMeta(t, c, "list_services", nil)
	if got := sortedKeys(out); !reflect.DeepEqual(got, []string{"services", "total_count"}) {
		t.Fatalf("list_services keys %q", got)
	}
	services := out["services"].([]any)
	if out["total_count"] != float64(2) || len(services) != 2 {
		t.Fatalf("list_services = %v", out)
	}
	first := services[0].(map[string]any)
	want := []string{"auth_provider", "auth_type", "description", "enabled", "health_status", "last_checked_iso",
		"num_tools", "path", "server_name", "supported_transports", "tags"}
	if got := sortedKeys(first); !reflect.DeepEqual(got, want) {
		t.Errorf("service keys %q\nwant %q", got, want)
	}
	if first["path"] != "/customer-support-assistant/" || first["server_name"] != "Customer support" || first["enabled"] != true ||
		first["health_status"] != "unknown" || first["num_tools"] != float64(2) || first["auth_provider"] != "bedrock-agentcore" ||
		first["auth_type"] != "oauth" || first["last_checked_iso"] != "" ||
		!reflect.DeepEqual(first["tags"], []any{"support", "warranty"}) ||
		!reflect.DeepEqual(first["supported_transports"], []any{"streamable-http"}) {
		t.Errorf("first service = %v", first)
	}
	second := services[1].(map[string]any)
	if second["path"] != "/weather" || second["enabled"] != false || second["health_status"] != "disabled" {
		t.Errorf("second service = %v", second)
	}

	// get_server_details: with or without slashes; headers redacted.
	for _, p := range []string{"customer-support-assistant", "/customer-support-assistant/", "/customer-support-assistant"} {
		res, d := callMeta(t, c, "get_server_details", map[string]any{"service_path": p})
		if res.IsError {
			t.Fatalf("get_server_details(%q): %v", p, d)
		}
		tools, _ := d["tool_list"].([]any)
		if d["path"] != "/customer-support-assistant/" || len(tools) != 2 || d["num_tools"] != float64(2) {
			t.Errorf("get_server_details(%q) = %v", p, d)
		}
		b, _ := json.Marshal(d)
		if strings.Contains(string(b), "meta-secret-77a1") || !strings.Contains(string(b), `"Authorization":"***"`) {
			t.Errorf("get_server_details shows the header: %s", b)
		}
	}
	for name, args := range map[string]map[string]any{
		"unknown path": {"service_path": "/nope"},
		"no path":      {},
		"empty path":   {"service_path": "/"},
	} {
		res, d := callMeta(t, c, "get_server_details", args)
		if !res.IsError || d["error"] == nil || d["error"] == "" {
			t.Errorf("get_server_details %s: isError=%v %v", name, res.IsError, d)
		}
		if name == "unknown path" && !strings.Contains(d["error"].(string), "/nope") {
			t.Errorf("the error does not name the path: %v", d)
		}
	}

	// healthcheck: one entry per path.
	_, h := callMeta(t, c, "healthcheck", nil)
	cs, _ := h["/customer-support-assistant/"].(map[string]any)
	w, _ := h["/weather"].(map[string]any)
	if len(h) != 2 || cs["status"] != "unknown" || cs["num_tools"] != float64(2) || w["status"] != "disabled" {
		t.Errorf("healthcheck = %v", h)
	}
	if got := sortedKeys(cs); !reflect.DeepEqual(got, []string{"last_checked_iso", "num_tools", "status"}) {
		t.Errorf("healthcheck entry keys %q", got)
	}
}

func TestMetaAdminTools(t *testing.T) {
	env := newEnv(t, Options{})
	anon := connect(t, env.srv.URL+"/mcpgw/mcp", nil, "")
	admin := connect(t, env.srv.URL+"/mcpgw/mcp", map[string]string{"Authorization": "Bearer " + env.admin}, "")
	adminX := connect(t, env.srv.URL+"/mcpgw/mcp", map[string]string{"X-Authorization": "Bearer " + env.admin}, "")

	if err := env.store.PutAPIKey(context.Background(), registry.APIKey{Name: "reader", Hash: auth.HashKey("mcpgw_reader-key")}); err != nil {
		t.Fatal(err)
	}
	reader := connect(t, env.srv.URL+"/mcpgw/mcp", map[string]string{"Authorization": "Bearer mcpgw_reader-key"}, "")

	adminNames := []string{"register_service", "remove_service", "toggle_service", "refresh_service"}
	anonTools := strings.Join(toolNames(t, anon), ",")
	readerTools := strings.Join(toolNames(t, reader), ",")
	for _, n := range adminNames {
		if strings.Contains(anonTools, n) {
			t.Errorf("anonymous tools/list shows %s: %s", n, anonTools)
		}
		if strings.Contains(readerTools, n) {
			t.Errorf("a non-admin key's tools/list shows %s: %s", n, readerTools)
		}
	}
	for _, n := range []string{"list_services", "get_server_details", "healthcheck"} {
		if !strings.Contains(anonTools, n) {
			t.Errorf("anonymous tools/list lacks %s: %s", n, anonTools)
		}
	}
	for _, c := range []*client.Client{admin, adminX} {
		got := strings.Join(toolNames(t, c), ",")
		for _, n := range adminNames {
			if !strings.Contains(got, n) {
				t.Errorf("admin tools/list lacks %s: %s", n, got)
			}
		}
	}

	reg := map[string]any{"server_name": "Weather", "path": "weather", "proxy_pass_url": "http://127.0.0.1:9/mcp",
		"tags": []any{"A"}, "headers": []any{map[string]any{"X-Key": "meta-admin-secret-19"}}}

	// Refused without the admin key, and nothing changes. The tool filter
	// also applies at call time, so to a caller who may not administer the
	// admin tools do not exist at all (JSON-RPC "tool not found").
	for name, args := range map[string]map[string]any{
		"register_service": reg,
		"remove_service":   {"service_path": "/weather"},
		"toggle_service":   {"service_path": "/weather"},
		"refresh_service":  {"service_path": "/weather"},
	} {
		req := mcp.CallToolRequest{}
		req.Params.Name, req.Params.Arguments = name, args
		res, err := anon.CallTool(context.Background(), req)
		if err == nil || !strings.Contains(err.Error(), "'"+name+"' not found") {
			t.Errorf("anonymous %s: %v, %+v; want a tool-not-found error", name, err, res)
		}
	}
	if s := env.snapshot(t); s != "" {
		t.Fatalf("refused admin calls changed the store:\n%s", s)
	}

	// Register through MCP; REST sees it (one registry service).
	res, d := callMeta(t, admin, "register_service", reg)
	if res.IsError {
		t.Fatalf("register_service: %v", d)
	}
	if d["registered"] != "/weather" {
		t.Errorf("register_service = %v", d)
	}
	b, _ := json.Marshal(d)
	if strings.Contains(string(b), "meta-admin-secret-19") {
		t.Errorf("register_service shows the header value: %s", b)
	}
	resp, body := env.do(t, http.MethodGet, "/api/v1/servers/weather", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"server_name": "Weather"`) {
		t.Fatalf("REST does not see the MCP registration: %d %s", resp.StatusCode, body)
	}
	if got, err := env.store.Get(context.Background(), "weather"); err != nil || got.Headers[0].Value.Reveal() != "meta-admin-secret-19" {
		t.Errorf("stored header after register_service: %v", err)
	}

	// Again without overwrite: a conflict, nothing changes; with it, replaced.
	before := env.snapshot(t)
	res, d = callMeta(t, admin, "register_service", reg)
	if !res.IsError || !strings.Contains(d["error"].(string), "already registered") {
		t.Errorf("second register_service: %v", d)
	}
	if env.snapshot(t) != before {
		t.Error("a refused register_service changed the store")
	}
	reg2 := map[string]any{}
	for k, v := range reg {
		reg2[k] = v
	}
	reg2["description"], reg2["overwrite"] = "replaced", true
	if res, d = callMeta(t, adminX, "register_service", reg2); res.IsError {
		t.Fatalf("register_service overwrite: %v", d)
	}
	if got, _ := env.store.Get(context.Background(), "weather"); got.Description != "replaced" || got.Extra != nil {
		t.Errorf("after overwrite: description %q, extra %v (overwrite must not be stored)", got.Description, got.Extra)
	}
	// An invalid registration lists its problems.
	res, d = callMeta(t, admin, "register_service", map[string]any{"server_name": "x", "path": "/api", "proxy_pass_url": "ftp://x"})
	details, _ := d["details"].([]any)
	if !res.IsError || len(details) != 2 {
		t.Errorf("invalid register_service: %v", d)
	}

	// Toggle through MCP; REST agrees.
	res, d = callMeta(t, admin, "toggle_service", map[string]any{"service_path": "/weather/"})
	if res.IsError || d["enabled"] != false {
		t.Fatalf("toggle_service: %v", d)
	}
	if _, body = env.do(t, http.MethodGet, "/api/v1/servers/weather", nil, nil); !strings.Contains(string(body), `"enabled": false`) {
		t.Errorf("REST after toggle: %s", body)
	}
	if res, d = callMeta(t, admin, "toggle_service", map[string]any{"service_path": "weather"}); d["enabled"] != true {
		t.Errorf("second toggle_service: %v", d)
	}
	// A change made through REST is seen by MCP.
	env.do(t, http.MethodPost, "/api/v1/servers/weather/disable", nil, env.adminHeaders())
	_, l := callMeta(t, anon, "list_services", nil)
	if s := l["services"].([]any)[0].(map[string]any); s["enabled"] != false {
		t.Errorf("list_services after a REST disable: %v", s)
	}

	// Remove through MCP; REST answers 404.
	if res, d = callMeta(t, admin, "remove_service", map[string]any{"service_path": "weather"}); res.IsError || d["removed"] != "/weather" {
		t.Fatalf("remove_service: %v", d)
	}
	if resp, _ = env.do(t, http.MethodGet, "/api/v1/servers/weather", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("REST after remove_service: %d", resp.StatusCode)
	}
	if res, d = callMeta(t, admin, "remove_service", map[string]any{"service_path": "weather"}); !res.IsError {
		t.Errorf("remove_service twice: %v", d)
	}
}

func TestMetaAuth(t *testing.T) {
	env := newEnv(t, Options{})
	// A wrong token is refused at the HTTP layer with 401, before MCP.
	init := []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	h := map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream", "Authorization": "Bearer mcpgw_wrong"}
	resp, body := env.do(t, http.MethodPost, "/mcpgw/mcp", init, h)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("meta server with a wrong token: %d %s", resp.StatusCode, body)
	}
	// A body over the limit is refused.
	small := newEnv(t, Options{MaxBodyBytes: 1024})
	big := []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"pad":"` + strings.Repeat("x", 4096) + `"}}`)
	delete(h, "Authorization")
	// It is a 413 with a JSON-RPC error that says why, as on the relay.
	resp, body = small.do(t, http.MethodPost, "/mcpgw/mcp", big, h)
	if resp.StatusCode != http.StatusRequestEntityTooLarge ||
		!strings.Contains(string(body), `"error"`) || !strings.Contains(string(body), "larger than the limit") {
		t.Errorf("meta server with a body over the limit: %d %s", resp.StatusCode, body)
	}
}
