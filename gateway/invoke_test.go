package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/upstream/upstreamtest"
)

const (
	warrantyToolName = "LambdaUsingSDK___check_warranty_status"
	profileToolName  = "LambdaUsingSDK___get_customer_profile"
)

// handshakes counts the session handshakes an upstream received: the
// requests that open a session (initialize, or server/discover for the
// stateless protocol), told apart by the Mcp-Method header the client sends
// or, for the session-based protocol, by carrying no Mcp-Session-Id.
func handshakes(up *upstreamtest.Server) int {
	n := 0
	for _, h := range up.Headers() {
		switch m := h.Get("Mcp-Method"); {
		case m == "initialize" || m == "server/discover":
			n++
		case m == "" && h.Get("Mcp-Session-Id") == "" && h.Get("Mcp-Protocol-Version") == "":
			n++ // a legacy initialize carries neither header yet
		}
	}
	return n
}

func invoke(t *testing.T, c *client.Client, path, tool string, args any) (*mcp.CallToolResult, error) {
	t.Helper()
	a := map[string]any{"service_path": path, "tool_name": tool}
	if args != nil {
		a["arguments"] = args
	}
	return callTool(c, "invoke_tool", a)
}

func mustInvoke(t *testing.T, c *client.Client, path, tool string, args any) *mcp.CallToolResult {
	t.Helper()
	res, err := invoke(t, c, path, tool, args)
	if err != nil {
		t.Fatalf("invoke_tool %s %s: %v", path, tool, err)
	}
	return res
}

// TestInvokeToolConfiguredHeaders calls a tool of a non-passthrough server:
// the upstream gets the configured header (expanded from the environment
// when sent) and never the caller's gateway token, and the result comes
// back unchanged over one pooled session.
func TestInvokeToolConfiguredHeaders(t *testing.T) {
	t.Setenv("ECHO_UPSTREAM_KEY", "k-123")
	e := newEnv(t, Options{})
	up := upstreamtest.New(t, upstreamtest.Options{})
	e.register(t, map[string]any{"server_name": "echo", "path": "/echo", "proxy_pass_url": up.URL,
		"headers": []map[string]string{{"X-Api-Key": "$ECHO_UPSTREAM_KEY"}}})
	c := connect(t, e.srv.URL+"/mcpgw/mcp", map[string]string{"Authorization": "Bearer " + e.admin}, "2025-06-18")

	for i, msg := range []string{"one", "two", "three"} {
		res := mustInvoke(t, c, "echo/", "echo", map[string]any{"message": msg})
		if res.IsError || resultText(t, res) != "Echo: "+msg {
			t.Fatalf("call %d: %+v", i, res)
		}
	}
	if n := handshakes(up); n != 1 {
		t.Errorf("%d session handshakes for 3 calls with the same credentials, want 1 (pooled)", n)
	}
	for _, h := range up.Headers() {
		if h.Get("X-Api-Key") != "k-123" {
			t.Errorf("upstream got X-Api-Key %q, want the configured, expanded value", h.Get("X-Api-Key"))
		}
		for k, vs := range h {
			for _, v := range vs {
				if strings.Contains(v, e.admin) {
					t.Fatalf("the caller's gateway token reached the upstream in %s", k)
				}
			}
		}
	}

	// Arguments may come as a JSON string; a progress tool's result too
	// comes back whole.
	res := mustInvoke(t, c, "/echo", "echo", `{"message":"as a string"}`)
	if resultText(t, res) != "Echo: as a string" {
		t.Errorf("string arguments: %q", resultText(t, res))
	}
	res = mustInvoke(t, c, "/echo", "progress", map[string]any{"steps": 2, "delay_ms": 1})
	if res.IsError || resultText(t, res) != "done" {
		t.Errorf("progress: %+v", res)
	}
}

// TestInvokeToolPassthrough calls the fake AgentCore gateway through
// invoke_tool with the two-token flow of the seed guide: the gateway token
// in X-Authorization, the upstream's own token in Authorization.
func TestInvokeToolPassthrough(t *testing.T) {
	e := newEnv(t, Options{})
	ac := upstreamtest.NewAgentCore(t, "")
	e.register(t, map[string]any{"server_name": "customer-support-assistant", "path": "/customer-support-assistant",
		"proxy_pass_url": ac.Base + "/mcp/", "auth_provider": "bedrock-agentcore",
		"tool_list": []map[string]any{{"name": warrantyToolName}, {"name": profileToolName}}})
	twoTokens := map[string]string{"X-Authorization": "Bearer " + e.admin, "Authorization": "Bearer " + upstreamtest.AgentCoreToken}
	c := connect(t, e.srv.URL+"/mcpgw/mcp", twoTokens, "2025-06-18")

	res := mustInvoke(t, c, "/customer-support-assistant", warrantyToolName, map[string]any{"serial_number": "MNO33333333"})
	if res.IsError || !strings.Contains(resultText(t, res), "Serial Number: MNO33333333") {
		t.Fatalf("warranty: %+v", res)
	}
	if got := ac.LastHeader("Authorization"); got != "Bearer "+upstreamtest.AgentCoreToken {
		t.Errorf("upstream Authorization %q, want the caller's upstream token", got)
	}
	// The upstream's own isError result passes unchanged.
	res = mustInvoke(t, c, "/customer-support-assistant/", profileToolName, map[string]any{"customer_id": "NOPE"})
	if !res.IsError || resultText(t, res) != "customer NOPE not found" {
		t.Errorf("upstream isError result changed: %+v", res)
	}
	// A JSON-RPC error of the upstream comes back as a JSON-RPC error.
	if _, err := invoke(t, c, "/customer-support-assistant", "no_such_tool", nil); err == nil || !strings.Contains(err.Error(), "no_such_tool") {
		t.Errorf("unknown upstream tool: err %v, want the upstream's JSON-RPC error", err)
	}
	before := handshakes(ac)

	// A wrong upstream token: the upstream refuses it, the caller learns so.
	wrong := connect(t, e.srv.URL+"/mcpgw/mcp", map[string]string{"X-Authorization": "Bearer " + e.admin, "Authorization": "Bearer wrong"}, "2025-06-18")
	res = mustInvoke(t, wrong, "/customer-support-assistant", warrantyToolName, map[string]any{"serial_number": "X"})
	if !res.IsError || !strings.Contains(resultText(t, res), "401") {
		t.Errorf("wrong upstream token: %+v", res)
	}
	// Only the gateway token in Authorization: it is ingress, never sent on.
	ingressOnly := connect(t, e.srv.URL+"/mcpgw/mcp", map[string]string{"Authorization": "Bearer " + e.admin}, "2025-06-18")
	res = mustInvoke(t, ingressOnly, "/customer-support-assistant", warrantyToolName, map[string]any{"serial_number": "X"})
	if !res.IsError || !strings.Contains(resultText(t, res), "X-Authorization") {
		t.Errorf("gateway token only: %+v", res)
	}
	for _, h := range ac.Headers() {
		if strings.Contains(h.Get("Authorization"), e.admin) || h.Get("X-Authorization") != "" {
			t.Fatal("the gateway token reached the upstream")
		}
	}
	// The good credentials still use their pooled session.
	mustInvoke(t, c, "/customer-support-assistant", warrantyToolName, map[string]any{"serial_number": "Y"})
	if after := handshakes(ac); after <= before {
		t.Errorf("no handshakes for the other credentials (%d then %d)", before, after)
	}
	n := handshakes(ac)
	mustInvoke(t, c, "/customer-support-assistant", warrantyToolName, map[string]any{"serial_number": "Z"})
	if handshakes(ac) != n {
		t.Errorf("a call with pooled credentials opened a new session")
	}
}

// TestInvokeToolRefusals: bad input, unknown and disabled services, and
// what the policy does not allow.
func TestInvokeToolRefusals(t *testing.T) {
	env := newAuthEnv(t, nil, seedPolicy)
	ac := upstreamtest.NewAgentCore(t, "")
	echo := upstreamtest.New(t, upstreamtest.Options{})
	env.register(t, map[string]any{"server_name": "customer-support-assistant", "path": "/customer-support-assistant",
		"proxy_pass_url": ac.Base + "/mcp/", "auth_provider": "bedrock-agentcore"})
	env.register(t, map[string]any{"server_name": "echo", "path": "/echo", "proxy_pass_url": echo.URL})
	env.register(t, map[string]any{"server_name": "off", "path": "/off", "proxy_pass_url": echo.URL})
	if _, err := env.reg.SetEnabled(context.Background(), "/off", false); err != nil {
		t.Fatal(err)
	}
	const supportKey = "mcpgw_support-key"
	if err := env.store.PutAPIKey(context.Background(), registry.APIKey{Name: "sam", Hash: auth.HashKey(supportKey), Groups: []string{"support-team"}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	admin := connect(t, env.srv.URL+"/mcpgw/mcp", map[string]string{"X-Authorization": "Bearer " + env.admin}, "2025-06-18")
	support := connect(t, env.srv.URL+"/mcpgw/mcp", map[string]string{"X-Authorization": "Bearer " + supportKey, "Authorization": "Bearer " + upstreamtest.AgentCoreToken}, "2025-06-18")

	tests := []struct {
		name string
		c    *client.Client
		args map[string]any
		want string // in the isError text
	}{
		{"no service_path", admin, map[string]any{"tool_name": "echo"}, "service_path is required"},
		{"no tool_name", admin, map[string]any{"service_path": "/echo"}, "tool_name is required"},
		{"arguments not an object", admin, map[string]any{"service_path": "/echo", "tool_name": "echo", "arguments": 7}, "arguments must be an object"},
		{"arguments a bad string", admin, map[string]any{"service_path": "/echo", "tool_name": "echo", "arguments": "[1]"}, "arguments must be an object"},
		{"unknown service", admin, map[string]any{"service_path": "/nowhere", "tool_name": "echo"}, "no enabled service is registered at /nowhere"},
		{"disabled service", admin, map[string]any{"service_path": "/off", "tool_name": "echo"}, "service /off is disabled"},
		{"a service support may not see", support, map[string]any{"service_path": "/echo", "tool_name": "echo"}, "no enabled service is registered at /echo"},
		{"a disabled service support may not see", support, map[string]any{"service_path": "/off", "tool_name": "echo"}, "no enabled service is registered at /off"},
		{"a tool support may not call", support, map[string]any{"service_path": "/customer-support-assistant", "tool_name": profileToolName}, "access denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := callTool(tt.c, "invoke_tool", tt.args)
			if err != nil {
				t.Fatalf("JSON-RPC error %v, want an isError result", err)
			}
			if !res.IsError || !strings.Contains(resultText(t, res), tt.want) {
				t.Errorf("got %q (isError %v), want isError with %q", resultText(t, res), res.IsError, tt.want)
			}
		})
	}
	for _, h := range echo.Headers() {
		if h.Get("X-Authorization") != "" {
			t.Error("a refused call reached the upstream")
		}
	}
	if len(echo.Headers()) != 0 {
		t.Errorf("refused calls reached the echo upstream %d times", len(echo.Headers()))
	}
	// What the policy allows works for support.
	res := mustInvoke(t, support, "/customer-support-assistant", warrantyToolName, map[string]any{"serial_number": "S1"})
	if res.IsError || !strings.Contains(resultText(t, res), "S1") {
		t.Errorf("support's warranty call: %+v", res)
	}
}
