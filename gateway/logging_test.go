package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/upstream/upstreamtest"
)

// logEvents parses the gateway's JSON log lines.
func logEvents(t *testing.T, text string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("a log line is not JSON: %q", sc.Text())
		}
		out = append(out, ev)
	}
	return out
}

// TestLogsNeverHoldSecrets runs a gateway flow that handles every kind of
// credential — the admin key on REST, MCP and UI sign-in, a caller's
// passthrough Authorization, configured header values (literal and
// $VAR-expanded), tokens that fail to verify — with debug logging on, and
// greps everything logged for them.
func TestLogsNeverHoldSecrets(t *testing.T) {
	const (
		passthroughToken = "passthrough-secret-a1b2c3d4"
		literalHeader    = "literal-header-secret-3f9a"
		envHeader        = "env-header-secret-77c1"
		badKey           = "mcpgw_invalid-secret-9d2e"
		metaHeader       = "meta-registered-secret-5b1c"
		downHeader       = "down-secret-0a0a"
	)
	t.Setenv("UPSTREAM_LOGTEST_TOKEN", envHeader)
	e := newUIEnv(t, Options{})
	ctx := context.Background()
	secrets := []string{e.admin, passthroughToken, literalHeader, envHeader, badKey, metaHeader, downHeader, upstreamtest.AgentCoreToken}

	// A passthrough server whose upstream demands the caller's token.
	ac := upstreamtest.NewAgentCore(t, passthroughToken)
	e.register(t, map[string]any{"server_name": "support-two", "path": "/support-two", "proxy_pass_url": ac.Base + "/mcp/", "auth_provider": "bedrock-agentcore"})
	// A server reached with configured headers; its upstream checks the
	// expanded one, so the test fails if expansion does not happen.
	echo := upstreamtest.New(t, upstreamtest.Options{Name: "keyed", Token: envHeader})
	regBody, _ := json.Marshal(map[string]any{"server_name": "keyed", "path": "/keyed", "proxy_pass_url": echo.URL,
		"headers": []map[string]string{{"X-Api-Key": literalHeader}, {"Authorization": "Bearer $UPSTREAM_LOGTEST_TOKEN"}}})
	admin := map[string]string{"Authorization": "Bearer " + e.admin, "Content-Type": "application/json"}
	if resp, body := e.do(t, "POST", "/api/v1/servers", regBody, admin); resp.StatusCode != http.StatusCreated {
		t.Fatalf("register keyed: %d %s", resp.StatusCode, body)
	}
	downBody, _ := json.Marshal(map[string]any{"server_name": "down", "path": "/down", "proxy_pass_url": "http://127.0.0.1:1/mcp",
		"headers": []map[string]string{{"Authorization": "Bearer " + downHeader}}})
	e.do(t, "POST", "/api/v1/servers", downBody, admin)

	// Relayed calls with every kind of credential.
	ingress := map[string]string{"X-Authorization": "Bearer " + e.admin, "X-Request-Id": "trace-abc-123"}
	call := mcpExchange(t, e.testEnv, "/customer-support-assistant/mcp", map[string]string{"Authorization": "Bearer " + upstreamtest.AgentCoreToken, "X-Authorization": ingress["X-Authorization"], "X-Request-Id": ingress["X-Request-Id"]})
	warrantyResp, body := call(toolCall(2, "LambdaUsingSDK___check_warranty_status", `{"serial_number":"MNO33333333"}`))
	if warrantyResp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Warranty") {
		t.Fatalf("warranty call: %d %s", warrantyResp.StatusCode, body)
	}
	call2 := mcpExchange(t, e.testEnv, "/support-two/mcp", map[string]string{"Authorization": "Bearer " + passthroughToken})
	if resp, body := call2(toolCall(3, "LambdaUsingSDK___get_customer_profile", `{"customer_id":"CUST001"}`)); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "John Smith") {
		t.Fatalf("passthrough call: %d %s", resp.StatusCode, body)
	}
	call3 := mcpExchange(t, e.testEnv, "/keyed/mcp", ingress)
	if resp, body := call3(toolCall(4, "echo", `{"message":"hi"}`)); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Echo: hi") {
		t.Fatalf("configured-header call: %d %s", resp.StatusCode, body)
	}
	if resp, _ := e.do(t, "POST", "/down/mcp", []byte(initializeBody), map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("unreachable upstream: %d", resp.StatusCode)
	}
	e.do(t, "POST", "/api/v1/servers/keyed/refresh", nil, admin)

	// Tokens that fail, on every surface.
	e.do(t, "GET", "/api/v1/servers", nil, map[string]string{"Authorization": "Bearer " + badKey})
	e.do(t, "POST", "/keyed/mcp", []byte(initializeBody), map[string]string{"X-Authorization": "Bearer " + badKey, "Content-Type": "application/json"})
	e.do(t, "POST", "/mcpgw/mcp", []byte(initializeBody), map[string]string{"Authorization": "Bearer " + badKey, "Content-Type": "application/json"})
	e.do(t, "POST", "/ui/login", []byte(`{"token":"`+badKey+`"}`), map[string]string{"Content-Type": "application/json"})

	// The admin key through the meta server and the UI.
	meta := mcpExchange(t, e.testEnv, "/mcpgw/mcp", map[string]string{"Authorization": "Bearer " + e.admin})
	meta(toolCall(5, "register_service", `{"server_name":"via-meta","path":"/via-meta","proxy_pass_url":"http://127.0.0.1:1/mcp","headers":[{"X-Token":"`+metaHeader+`"}]}`))
	if _, err := e.reg.Get(ctx, "via-meta"); err != nil {
		t.Fatalf("register_service did not store the server, so its header never reached the gateway: %v", err)
	}
	cookie, csrf := e.signIn(t, e.admin)
	e.do(t, "POST", "/api/v1/servers/keyed/disable", nil, map[string]string{"Cookie": cookie.String(), csrfHeader: csrf})
	e.do(t, "GET", "/", nil, map[string]string{"Cookie": cookie.String(), "Accept": "text/html"})

	logs := e.logText()
	events := logEvents(t, logs)
	if len(events) < 20 {
		t.Fatalf("only %d log events; the flow should log far more:\n%s", len(events), logs)
	}
	// The flow reached the places where a careless log would leak.
	for _, want := range []string{`"message":"upstream error"`, `"message":"server registered"`, `"server":"/keyed"`, `"status":401`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the logs lack %s, so the flow did not go where the test means it to", want)
		}
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the logs hold the secret %q", s)
		}
	}
	if t.Failed() {
		t.Logf("logs:\n%s", logs)
	}

	t.Run("one info event per relayed request", func(t *testing.T) {
		var found []map[string]any
		for _, ev := range events {
			if ev["message"] == "http request" && ev["request_id"] == "trace-abc-123" {
				found = append(found, ev)
			}
		}
		rid := warrantyResp.Header.Get("X-Request-Id")
		if rid != "trace-abc-123" {
			t.Fatalf("X-Request-Id = %q, want the caller's", rid)
		}
		var ev map[string]any
		for _, f := range found {
			if f["tool"] == "LambdaUsingSDK___check_warranty_status" {
				if ev != nil {
					t.Fatal("two events for one request")
				}
				ev = f
			}
		}
		if ev == nil {
			t.Fatalf("no event for the tool call among %v", found)
		}
		want := map[string]any{"level": "info", "server": seedServerPath, "method": "tools/call", "subject": "apikey:local-admin",
			"status": float64(200), "http_method": "POST", "path": "/customer-support-assistant/mcp"}
		for k, v := range want {
			if ev[k] != v {
				t.Errorf("%s = %v, want %v (event %v)", k, ev[k], v, ev)
			}
		}
		for _, k := range []string{"duration", "upstream_latency"} {
			if d, ok := ev[k].(float64); !ok || d <= 0 {
				t.Errorf("%s = %v, want a positive duration", k, ev[k])
			}
		}
	})

	t.Run("the REST API and the UI log at debug", func(t *testing.T) {
		for _, ev := range events {
			if ev["message"] == "http request" && ev["level"] == "info" {
				if p, _ := ev["path"].(string); strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/ui/") || p == "/" {
					t.Errorf("an info request event for %s", p)
				}
			}
		}
	})
}
