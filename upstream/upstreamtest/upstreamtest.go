// Package upstreamtest runs real in-process MCP servers (mark3labs/mcp-go
// over HTTP on 127.0.0.1) for tests of the relay, the meta server and the
// upstream client: an echo server with progress, header recording and a
// fake Amazon Bedrock AgentCore Gateway that demands its own bearer token.
package upstreamtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// Options shape one test upstream.
type Options struct {
	// Name is the server name reported by initialize.
	Name string
	// Token, when set, is the bearer token every request must carry in
	// Authorization; others get 401 with a WWW-Authenticate challenge.
	Token string
	// Path is where the MCP endpoint is served; default "/mcp".
	Path string
	// Stateless serves without sessions (no Mcp-Session-Id).
	Stateless bool
	// SSE serves the legacy HTTP+SSE transport at Path (GET) and
	// Path+"/message" (POST) instead of streamable HTTP.
	SSE bool
	// Tools adds tools besides the defaults.
	Tools []server.ServerTool
}

// Server is a running test upstream.
type Server struct {
	// URL is the MCP endpoint (base URL + Path).
	URL string
	// Base is the server's base URL without a path.
	Base string
	MCP  *server.MCPServer

	mu      sync.Mutex
	headers []http.Header
}

// Headers returns the request headers the upstream has received, in order.
func (s *Server) Headers() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.headers...)
}

// LastHeader returns the given header of the most recent request.
func (s *Server) LastHeader(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.headers) == 0 {
		return ""
	}
	return s.headers[len(s.headers)-1].Get(name)
}

// New starts a test upstream on 127.0.0.1 and stops it when the test ends.
func New(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Name == "" {
		o.Name = "test-upstream"
	}
	if o.Path == "" {
		o.Path = "/mcp"
	}
	s := &Server{}
	s.MCP = server.NewMCPServer(o.Name, "1.0.0", server.WithToolCapabilities(true), server.WithLogging())
	s.MCP.AddTool(mcp.NewTool("echo",
		mcp.WithDescription("Echoes back the input message"),
		mcp.WithString("message", mcp.Required(), mcp.Description("Message to echo"))),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText("Echo: " + req.GetString("message", "")), nil
		})
	s.MCP.AddTool(mcp.NewTool("progress",
		mcp.WithDescription("Sends progress notifications, one every delay_ms, then returns done"),
		mcp.WithNumber("steps", mcp.Description("How many progress notifications to send")),
		mcp.WithNumber("delay_ms", mcp.Description("Pause between notifications"))),
		progressTool)
	s.MCP.AddTool(mcp.NewTool("slow",
		mcp.WithDescription("Sleeps for ms milliseconds, then answers"),
		mcp.WithNumber("ms", mcp.Required())),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			select {
			case <-time.After(time.Duration(req.GetFloat("ms", 0)) * time.Millisecond):
				return mcp.NewToolResultText("slept"), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})
	s.MCP.AddTools(o.Tools...)

	var h http.Handler
	mux := http.NewServeMux()
	if o.SSE {
		sse := server.NewSSEServer(s.MCP, server.WithStaticBasePath(""), server.WithSSEEndpoint(o.Path), server.WithMessageEndpoint(o.Path+"/message"))
		mux.Handle(o.Path, sse.SSEHandler())
		mux.Handle(o.Path+"/message", sse.MessageHandler())
		h = mux
	} else {
		opts := []server.StreamableHTTPOption{server.WithEndpointPath(o.Path)}
		if o.Stateless {
			opts = append(opts, server.WithStateLess(true))
		}
		st := server.NewStreamableHTTPServer(s.MCP, opts...)
		mux.Handle(o.Path, st)
		if !strings.HasSuffix(o.Path, "/") {
			mux.Handle(o.Path+"/", st)
		}
		h = mux
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.headers = append(s.headers, r.Header.Clone())
		s.mu.Unlock()
		if o.Token != "" && r.Header.Get("Authorization") != "Bearer "+o.Token {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="upstream token missing or invalid"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"message":"Unauthorized"}`))
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	s.Base = ts.URL
	s.URL = ts.URL + o.Path
	return s
}

// ProgressMetaKey is the _meta member of the progress tool's notifications:
// their step number, so tests can tell that _meta came through.
const ProgressMetaKey = "example.com/step"

func progressTool(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	steps := int(req.GetFloat("steps", 3))
	delay := time.Duration(req.GetFloat("delay_ms", 50)) * time.Millisecond
	var token any
	if req.Params.Meta != nil {
		token = req.Params.Meta.ProgressToken
	}
	session := server.ClientSessionFromContext(ctx)
	for i := 1; i <= steps; i++ {
		if token != nil && session != nil {
			// Straight onto the session's queue: mcp-go's
			// SendNotificationToClient cannot send a _meta.
			n := mcp.JSONRPCNotification{JSONRPC: mcp.JSONRPC_VERSION, Notification: mcp.Notification{Method: "notifications/progress"}}
			n.Params.Meta = map[string]any{ProgressMetaKey: i}
			n.Params.AdditionalFields = map[string]any{
				"progressToken": token, "progress": i, "total": steps, "message": fmt.Sprintf("step %d of %d", i, steps),
			}
			if s, ok := session.(server.SessionWithStreamableHTTPConfig); ok {
				s.UpgradeToSSEWhenReceiveNotification()
			}
			select {
			case session.NotificationChannel() <- n:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return mcp.NewToolResultText("done"), nil
}

// AgentCoreToken is the upstream token the fake AgentCore gateway accepts
// unless another is given.
const AgentCoreToken = "cognito-test-access-token"

// NewAgentCore starts a fake Amazon Bedrock AgentCore Gateway: an MCP server
// at /mcp that demands "Authorization: Bearer <token>" and serves the
// customer-support tools of the seed guide with outputs like its own. Its
// registration URL is Base + "/mcp/", as AgentCore prints it.
func NewAgentCore(t testing.TB, token string) *Server {
	t.Helper()
	if token == "" {
		token = AgentCoreToken
	}
	warranty := mcp.NewToolWithRawSchema("LambdaUsingSDK___check_warranty_status",
		"Check the warranty status of a product using its serial number and optionally verify via email",
		json.RawMessage(`{"type":"object","properties":{"serial_number":{"type":"string","description":"Product serial number to check warranty status"},"customer_email":{"type":"string","description":"Optional customer email for verification"}},"required":["serial_number"]}`))
	profile := mcp.NewToolWithRawSchema("LambdaUsingSDK___get_customer_profile",
		"Retrieve customer profile using customer ID, email, or phone number",
		json.RawMessage(`{"type":"object","properties":{"customer_id":{"type":"string","description":"Unique customer identifier"},"email":{"type":"string","description":"Customer email address"},"phone":{"type":"string","description":"Customer phone number"}},"required":["customer_id"]}`))
	return New(t, Options{Name: "customer-support-assistant", Token: token, Path: "/mcp", Tools: []server.ServerTool{
		{Tool: warranty, Handler: func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			serial := req.GetString("serial_number", "")
			body := "🛡️ Warranty Status Information\n===============================\n📱 Product: Gaming Console Pro\n🔢 Serial Number: " + serial +
				"\n👤 Customer: Unknown\n📅 Purchase Date: 2023-11-25\n⏰ Warranty End Date: 2024-11-25\n📋 Warranty Type: Gaming Warranty\n🔍 Status: ❌ Expired"
			return lambdaResult(body), nil
		}},
		{Tool: profile, Handler: func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			id := req.GetString("customer_id", "")
			if id != "CUST001" {
				return mcp.NewToolResultError("customer " + id + " not found"), nil
			}
			body := "👤 Customer Profile Information: 👤 Customer Profile Information\n===============================\n🆔 Customer ID: CUST001\n👤 Name: John Smith\n💎 Tier: Premium"
			return lambdaResult(body), nil
		}},
	}})
}

func lambdaResult(body string) *mcp.CallToolResult {
	// A struct keeps the seed's field order: statusCode first.
	b, _ := json.Marshal(struct {
		StatusCode int    `json:"statusCode"`
		Body       string `json:"body"`
	}{200, body})
	return mcp.NewToolResultText(string(b))
}
