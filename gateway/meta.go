package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/registry"
)

// adminTools are the meta tools that change the registry; they are absent
// from tools/list for callers who may not administer and refused on call.
var adminTools = map[string]bool{
	"register_service": true, "remove_service": true, "toggle_service": true, "refresh_service": true,
}

const servicePathSchema = `{"type":"object","properties":{"service_path":{"type":"string","description":"The service's path, e.g. /customer-support-assistant (leading and trailing slashes optional)"}},"required":["service_path"]}`

const registerSchema = `{"type":"object","properties":{
 "server_name":{"type":"string","description":"Display name, 1-128 characters"},
 "description":{"type":"string"},
 "path":{"type":"string","description":"Path the service is reached under, e.g. /weather"},
 "proxy_pass_url":{"type":"string","description":"Absolute http(s) URL of the upstream MCP endpoint"},
 "auth_provider":{"type":"string","description":"e.g. bedrock-agentcore, keycloak, cognito, entra, none"},
 "auth_type":{"type":"string","enum":["none","oauth","api-key","passthrough"]},
 "supported_transports":{"type":"array","items":{"type":"string","enum":["streamable-http","sse"]}},
 "tags":{"type":"array","items":{"type":"string"}},
 "headers":{"type":"array","items":{"type":"object","additionalProperties":{"type":"string"}},"description":"Egress headers; $VAR is expanded from the gateway's environment when sending"},
 "tool_list":{"type":"array","items":{"type":"object"}},
 "num_tools":{"type":"integer"},"num_stars":{"type":"integer"},"is_python":{"type":"boolean"},"license":{"type":"string"},
 "overwrite":{"type":"boolean","description":"Replace a service already registered at this path"}
},"required":["server_name","path","proxy_pass_url"]}`

func (g *Gateway) newMetaServer() http.Handler {
	s := server.NewMCPServer("mcpgw", g.opts.Version,
		server.WithToolCapabilities(true),
		server.WithInstructions("mcpgw is an MCP gateway and registry. Use list_services to see the registered MCP servers, get_server_details for one server's tools, and healthcheck for their health. Use intelligent_tool_finder to find the right tool by describing what you need, and invoke_tool to call it through this connection."),
		server.WithToolFilter(func(ctx context.Context, tools []mcp.Tool) []mcp.Tool {
			p := auth.FromContext(ctx)
			out := tools[:0:0]
			for _, t := range tools {
				if !adminTools[t.Name] || g.policy.Allowed(p, "*", auth.ActionAdmin, "") {
					out = append(out, t)
				}
			}
			return out
		}),
	)
	readOnly := mcp.WithReadOnlyHintAnnotation(true)
	s.AddTool(mcp.NewTool("list_services",
		mcp.WithDescription("List the MCP services registered in the gateway that you may use: name, path, description, tags, enabled, health and number of tools."),
		readOnly, mcp.WithDestructiveHintAnnotation(false)), g.toolListServices)
	s.AddTool(mcp.NewToolWithRawSchema("get_server_details",
		"Show one registered service with its full tool list (names, descriptions and input schemas).",
		json.RawMessage(servicePathSchema)), g.toolServerDetails)
	s.AddTool(mcp.NewTool("healthcheck",
		mcp.WithDescription("Health of every registered service you may see: status, last check time and number of tools."),
		readOnly, mcp.WithDestructiveHintAnnotation(false)), g.toolHealthcheck)
	s.AddTool(mcp.NewToolWithRawSchema("register_service",
		"Admin: register an upstream MCP server (the registration format of gateway-config.json).",
		json.RawMessage(registerSchema)), g.toolRegister)
	s.AddTool(mcp.NewToolWithRawSchema("remove_service", "Admin: remove a registered service.",
		json.RawMessage(servicePathSchema)), g.toolRemove)
	s.AddTool(mcp.NewToolWithRawSchema("toggle_service", "Admin: enable a disabled service or disable an enabled one.",
		json.RawMessage(servicePathSchema)), g.toolToggle)
	s.AddTool(mcp.NewToolWithRawSchema("refresh_service", "Admin: re-read a service's tool list from its upstream now; approve: true also approves changed tool definitions of a server with pin_tools.",
		json.RawMessage(refreshServiceSchema)), g.toolRefresh)
	g.addFinderTool(s)
	g.addInvokeTool(s)

	g.metaMCP = s
	// metaHandler adds what the tools need of the exchange: large results
	// written in place, and the session's progress accounting.
	return &metaHandler{mcp: server.NewStreamableHTTPServer(s,
		server.WithEndpointPath("/mcpgw/mcp"),
		server.WithSessionIdManagerResolver(metaSessionIDs{sealer: g.sealer}),
		server.WithSessionIdleTTL(metaSessionIdleTTL),
		// The gateway applies its own DNS-rebinding check to every path.
		server.WithDisableLocalhostProtection(true),
		server.WithHTTPContextFunc(func(ctx context.Context, r *http.Request) context.Context {
			return withCallerHeaders(auth.WithPrincipal(ctx, auth.FromContext(r.Context())), r.Header)
		}),
	)}
}

// serveMeta authenticates the caller and hands the request to the meta MCP
// server with the principal in its context.
func (g *Gateway) serveMeta(w http.ResponseWriter, r *http.Request) {
	p, ok := g.principal(w, r)
	if !ok {
		return
	}
	if r.Method == http.MethodPost {
		// Read the body here so that an oversized one is a 413 with a
		// JSON-RPC error, not mcp-go's generic parse error.
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.opts.MaxBodyBytes))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeRPCError(w, r, http.StatusRequestEntityTooLarge, nil, rpcInvalidRequest, "request body is larger than the limit of "+humanBytes(mbe.Limit))
				return
			}
			writeRPCError(w, r, http.StatusBadRequest, nil, rpcParseError, "could not read the request body")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if msgs, err := parseRPC(body); err == nil {
			noteRPC(r.Context(), method(msgs), tool(msgs)) // for the request's log event and metrics
		}
	}
	g.meta.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
}

// jsonResult is the meta tools' result shape: one text content holding the
// JSON, plus the same object as structuredContent.
func jsonResult(v any) (*mcp.CallToolResult, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return mcp.NewToolResultStructured(json.RawMessage(b), string(b)), nil
}

// errorResult reports a failed tool call as an isError result with the same
// {"error","details"} body the REST API uses.
func errorResult(err error) *mcp.CallToolResult {
	msg, details := errorBody(err)
	b, _ := json.Marshal(apiError{Error: msg, Details: details})
	res := mcp.NewToolResultError(string(b))
	return res
}

func servicePath(req mcp.CallToolRequest) (string, error) {
	p := req.GetString("service_path", "")
	if registry.PathKey(p) == "" {
		return "", &registry.ValidationError{Problems: []registry.Problem{{Field: "service_path", Reason: "is required"}}}
	}
	return p, nil
}

func (g *Gateway) toolListServices(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	l, err := g.listServices(ctx, auth.FromContext(ctx))
	if err != nil {
		return errorResult(err), nil
	}
	raw, text := l.encodeBoth()
	return jsonBytesResult(ctx, raw, text), nil
}

func (g *Gateway) toolServerDetails(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	path, err := servicePath(req)
	if err != nil {
		return errorResult(err), nil
	}
	p := auth.FromContext(ctx)
	s, err := g.visibleServer(ctx, p, path)
	if err != nil {
		return errorResult(err), nil
	}
	d, err := g.details(p, s)
	if err != nil {
		return errorResult(err), nil
	}
	return jsonResultCtx(ctx, d)
}

func (g *Gateway) toolHealthcheck(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	m, err := g.healthMap(ctx, auth.FromContext(ctx))
	if err != nil {
		return errorResult(err), nil
	}
	return jsonResultCtx(ctx, m)
}

// mayAdmin is the call-time check of the admin tools (the tool filter hides
// them from tools/list; this refuses a call made anyway).
func (g *Gateway) mayAdmin(ctx context.Context, server string) error {
	if !g.policy.Allowed(auth.FromContext(ctx), server, auth.ActionAdmin, "") {
		return errors.New("this tool needs an admin token")
	}
	return nil
}

func (g *Gateway) toolRegister(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	if err := g.mayAdmin(ctx, "*"); err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	args := req.GetArguments()
	overwrite, _ := args["overwrite"].(bool)
	doc := make(map[string]any, len(args))
	for k, v := range args {
		if k != "overwrite" {
			doc[k] = v
		}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return errorResult(err), nil
	}
	s, warnings, err := g.reg.Register(ctx, b, overwrite)
	if err != nil {
		return errorResult(err), nil
	}
	if warnings == nil {
		warnings = []string{}
	}
	return jsonResult(map[string]any{"registered": s.Path, "server": s, "warnings": warnings})
}

func (g *Gateway) toolRemove(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	path, err := servicePath(req)
	if err != nil {
		return errorResult(err), nil
	}
	if err := g.mayAdmin(ctx, path); err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	if err := g.reg.Remove(ctx, path); err != nil {
		return errorResult(err), nil
	}
	return jsonResult(map[string]any{"removed": "/" + registry.PathKey(path)})
}

func (g *Gateway) toolToggle(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	path, err := servicePath(req)
	if err != nil {
		return errorResult(err), nil
	}
	if err := g.mayAdmin(ctx, path); err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	s, err := g.reg.Toggle(ctx, path)
	if err != nil {
		return errorResult(err), nil
	}
	return jsonResult(g.summarize(auth.FromContext(ctx), s))
}

func (g *Gateway) toolRefresh(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	path, err := servicePath(req)
	if err != nil {
		return errorResult(err), nil
	}
	if err := g.mayAdmin(ctx, path); err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	res, err := g.refreshTools(ctx, path, req.GetBool("approve", false))
	if err != nil {
		return errorResult(err), nil
	}
	return jsonResult(res)
}
