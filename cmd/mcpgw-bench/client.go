package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// newLoadClient returns the load generator's HTTP client: keep-alive with
// room for every concurrent client, so the generator itself opens no
// connection per call.
func newLoadClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: 90 * time.Second,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext, DisableCompression: true,
	}, Timeout: 60 * time.Second}
}

// mcpConn is a minimal raw MCP client: it sends exactly the bytes a client
// would and reads whole responses, so the measurement holds no client-side
// SDK overhead beyond HTTP itself.
type mcpConn struct {
	url    string
	hc     *http.Client
	sid    string
	modern bool
	id     atomic.Int64
}

const (
	sessionVersion = "2025-11-25"
	modernVersion  = "2026-07-28"
)

func (m *mcpConn) post(ctx context.Context, body []byte, method, name string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json, text/event-stream")
	if m.modern {
		h.Set("MCP-Protocol-Version", modernVersion)
		h.Set("Mcp-Method", method)
		if name != "" {
			h.Set("Mcp-Name", name)
		}
	} else {
		h.Set("MCP-Protocol-Version", sessionVersion)
		if m.sid != "" {
			h.Set("Mcp-Session-Id", m.sid)
		}
	}
	resp, err := m.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode >= 300 {
		return b, resp.Header, fmt.Errorf("status %d: %.200s", resp.StatusCode, b)
	}
	return b, resp.Header, nil
}

func (m *mcpConn) meta() string {
	if !m.modern {
		return ""
	}
	return `,"_meta":{"io.modelcontextprotocol/protocolVersion":"` + modernVersion + `","io.modelcontextprotocol/clientInfo":{"name":"mcpgw-bench","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}`
}

// init opens a session (session-based) or does nothing (stateless).
func (m *mcpConn) init(ctx context.Context) error {
	if m.modern {
		return nil
	}
	body := `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"` + sessionVersion + `","capabilities":{},"clientInfo":{"name":"mcpgw-bench","version":"1"}}}`
	_, h, err := m.post(ctx, []byte(body), "initialize", "")
	if err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	m.sid = h.Get("Mcp-Session-Id")
	if _, _, err := m.post(ctx, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`), "notifications/initialized", ""); err != nil {
		return fmt.Errorf("initialized: %w", err)
	}
	return nil
}

// callTool calls a tool and checks the answer holds want.
func (m *mcpConn) callTool(ctx context.Context, tool, args, want string) error {
	id := m.id.Add(1)
	body := `{"jsonrpc":"2.0","id":` + strconv.FormatInt(id, 10) + `,"method":"tools/call","params":{"name":"` + tool + `","arguments":` + args + m.meta() + `}}`
	b, _, err := m.post(ctx, []byte(body), "tools/call", tool)
	if err != nil {
		return err
	}
	if !bytes.Contains(b, []byte(want)) {
		return fmt.Errorf("unexpected answer: %.200s", b)
	}
	return nil
}

func (m *mcpConn) echo(ctx context.Context) error {
	return m.callTool(ctx, "echo", `{"message":"hello"}`, `Echo: hello`)
}

// progressLatencies calls the progress tool and returns, for each progress
// notification, the time from the upstream sending it (its timestamp in the
// message) to this client reading it off the stream.
func (m *mcpConn) progressLatencies(ctx context.Context, steps int) ([]time.Duration, error) {
	id := m.id.Add(1)
	meta := `"_meta":{"progressToken":"p` + strconv.FormatInt(id, 10) + `"`
	if m.modern {
		meta += `,"io.modelcontextprotocol/protocolVersion":"` + modernVersion + `","io.modelcontextprotocol/clientInfo":{"name":"mcpgw-bench","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}`
	}
	meta += "}"
	body := `{"jsonrpc":"2.0","id":` + strconv.FormatInt(id, 10) + `,"method":"tools/call","params":{"name":"stamped_progress","arguments":{"steps":` + strconv.Itoa(steps) + `},` + meta + `}}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", sessionVersion)
	if m.sid != "" {
		req.Header.Set("Mcp-Session-Id", m.sid)
	}
	resp, err := m.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []time.Duration
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data:") {
			continue
		}
		now := time.Now()
		var msg struct {
			Method string `json:"method"`
			Params struct {
				Message string `json:"message"`
			} `json:"params"`
		}
		if json.Unmarshal([]byte(strings.TrimSpace(line[5:])), &msg) != nil || msg.Method != "notifications/progress" {
			continue
		}
		ns, err := strconv.ParseInt(msg.Params.Message, 10, 64)
		if err == nil {
			out = append(out, now.Sub(time.Unix(0, ns)))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no progress notifications arrived")
	}
	return out, sc.Err()
}

// newBenchUpstream is the echo upstream: mcp-go over streamable HTTP, with
// a progress tool that stamps each notification with its send time.
func newBenchUpstream() *server.MCPServer {
	s := server.NewMCPServer("bench-upstream", "1.0.0", server.WithToolCapabilities(false))
	s.AddTool(mcp.NewTool("echo", mcp.WithDescription("Echoes the message"), mcp.WithString("message", mcp.Required())),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText("Echo: " + req.GetString("message", "")), nil
		})
	s.AddTool(mcp.NewTool("stamped_progress", mcp.WithDescription("Sends progress notifications stamped with their send time"), mcp.WithNumber("steps")),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			steps := int(req.GetFloat("steps", 5))
			var token any
			if req.Params.Meta != nil {
				token = req.Params.Meta.ProgressToken
			}
			srv := server.ServerFromContext(ctx)
			for i := 1; i <= steps; i++ {
				if token != nil && srv != nil {
					_ = srv.SendNotificationToClient(ctx, "notifications/progress", map[string]any{
						"progressToken": token, "progress": i, "total": steps,
						"message": strconv.FormatInt(time.Now().UnixNano(), 10),
					})
				}
				time.Sleep(2 * time.Millisecond)
			}
			return mcp.NewToolResultText("done"), nil
		})
	return s
}
