package gateway

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestRelayJudgesWhatTheUpstreamRuns sends messages that a lax reading
// would judge as one operation while a Go upstream (encoding/json: member
// names match case-insensitively, the last duplicate wins) or one routing
// on the 2026-07-28 headers runs another. The caller may call only the
// warranty tool; the profile tool must never run.
func TestRelayJudgesWhatTheUpstreamRuns(t *testing.T) {
	env, base, _ := supportSession(t, nil)
	const path = "/customer-support-assistant/mcp"
	const args = `"arguments":{"customer_id":"CUST001","serial_number":"MNO33333333"}`
	b64 := func(s string) string { return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?=" }

	for _, tc := range []struct {
		name   string
		body   string
		header map[string]string
		status int
		code   int    // the JSON-RPC error code; 0 for a result
		want   string // in the answer
	}{
		{name: "allowed tool", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + warrantyTool + `",` + args + `}}`,
			status: 200, want: "Warranty"},
		{name: "tool name in upper case", body: `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"NAME":"` + profileTool + `",` + args + `}}`,
			status: 200, code: rpcForbidden, want: "access denied"},
		{name: "method in mixed case", body: `{"jsonrpc":"2.0","id":3,"mEthod":"tools/call","params":{"name":"` + profileTool + `",` + args + `}}`,
			status: 200, code: rpcForbidden, want: "access denied"},
		{name: "second tool name in another case", body: `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"` + warrantyTool + `","Name":"` + profileTool + `",` + args + `}}`,
			status: 400, code: rpcParseError, want: `duplicate \"params.name\"`},
		{name: "method given twice", body: `{"jsonrpc":"2.0","id":5,"method":"tools/list","method":"tools/call","params":{"name":"` + profileTool + `",` + args + `}}`,
			status: 400, code: rpcParseError, want: `duplicate \"method\"`},
		{name: "second params spelled with a long s", body: `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"` + warrantyTool + `",` + args + `},"paramſ":{"name":"` + profileTool + `",` + args + `}}`,
			status: 400, code: rpcParseError, want: `duplicate \"params\"`},
		{name: "Mcp-Name names an allowed tool, body another", body: `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"` + profileTool + `",` + args + `}}`,
			header: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": warrantyTool}, status: 400, code: rpcHeaderMismatch, want: "header mismatch"},
		{name: "Mcp-Method says tools/list", body: `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"` + warrantyTool + `",` + args + `}}`,
			header: map[string]string{"Mcp-Method": "tools/list"}, status: 400, code: rpcHeaderMismatch, want: "header mismatch"},
		{name: "Mcp-Name without a name in the body", body: `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{` + args + `}}`,
			header: map[string]string{"Mcp-Name": profileTool}, status: 400, code: rpcHeaderMismatch, want: "header mismatch"},
		{name: "matching headers pass", body: `{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"` + warrantyTool + `",` + args + `}}`,
			header: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": warrantyTool}, status: 200, want: "Warranty"},
		{name: "Base64-encoded Mcp-Name passes", body: `{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"` + warrantyTool + `",` + args + `}}`,
			header: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": b64(warrantyTool)}, status: 200, want: "Warranty"},
		{name: "Mcp-Method on a body of responses only", body: `{"jsonrpc":"2.0","id":13,"result":{}}`,
			header: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": profileTool}, status: 400, code: rpcHeaderMismatch, want: "no request"},
		{name: "Base64-encoded Mcp-Name of another tool", body: `{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"` + profileTool + `",` + args + `}}`,
			header: map[string]string{"Mcp-Name": b64(warrantyTool)}, status: 400, code: rpcHeaderMismatch, want: "header mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			for _, m := range []map[string]string{base, tc.header} {
				for k, v := range m {
					hdr[k] = v
				}
			}
			resp, body := env.do(t, http.MethodPost, path, []byte(tc.body), hdr)
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
				t.Fatalf("%d %s, want %d with %q", resp.StatusCode, body, tc.status, tc.want)
			}
			if strings.Contains(string(body), "John Smith") {
				t.Fatalf("the profile tool ran: %s", body)
			}
			var msg struct {
				Error *struct{ Code int } `json:"error"`
			}
			if tc.code != 0 {
				if err := json.Unmarshal(rpcPayload(body), &msg); err != nil || msg.Error == nil || msg.Error.Code != tc.code {
					t.Fatalf("want JSON-RPC error %d: %s", tc.code, body)
				}
			}
		})
	}
}

// rpcPayload is the JSON-RPC message of an answer, sent as JSON or as the
// last data line of an event stream.
func rpcPayload(body []byte) []byte {
	s := strings.TrimSpace(string(body))
	if i := strings.LastIndex(s, "data: "); i >= 0 && !strings.HasPrefix(s, "{") {
		s, _, _ = strings.Cut(s[i+len("data: "):], "\n")
	}
	return []byte(s)
}
