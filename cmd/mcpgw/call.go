package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/spf13/cobra"
)

// callOpts are the flags of `mcpgw call`, a minimal MCP client.
type callOpts struct {
	url              string
	tokenFile        string
	ingressTokenFile string
	transport        string
	protocolVersion  string
	timeout          time.Duration
	initResult       *mcp.InitializeResult
	// last is the HTTP exchange the MCP client made most recently, so that
	// a failure can say what the server answered (401 and its challenge).
	last *lastResponse
}

// callResult is what `mcpgw call call` prints: the CallToolResult's fields
// in the order of the seed guide's output.
type callResult struct {
	IsError           bool          `json:"isError"`
	Content           []mcp.Content `json:"content"`
	StructuredContent any           `json:"structuredContent,omitempty"`
}

func newCallCmd() *cobra.Command {
	var o callOpts
	cmd := &cobra.Command{
		Use:   "call --url URL [--token-file F] [--ingress-token-file F] (ping | init | list | call --tool NAME --args JSON)",
		Short: "A minimal MCP client (streamable HTTP and SSE)",
		Long: "A minimal MCP client. --token-file sends Authorization: Bearer (the upstream's token for passthrough servers); " +
			"--ingress-token-file sends X-Authorization: Bearer and defaults to the token the other commands use when that file exists.",
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.url, "url", "", "MCP endpoint URL, e.g. http://127.0.0.1:7860/mcpgw/mcp")
	pf.StringVar(&o.tokenFile, "token-file", "", "file with the token sent as Authorization: Bearer")
	pf.StringVar(&o.ingressTokenFile, "ingress-token-file", "", "file with the gateway token sent as X-Authorization: Bearer (default: MCPGW_TOKEN_FILE, else the local admin token, when present)")
	pf.StringVar(&o.transport, "transport", "auto", "streamable-http, sse, or auto (streamable HTTP, falling back to SSE for a legacy server)")
	pf.StringVar(&o.protocolVersion, "protocol-version", "", "MCP protocol version to ask for (default: the newest, falling back to the session-based handshake)")
	pf.DurationVar(&o.timeout, "timeout", 60*time.Second, "give up after this long")

	run := func(fn func(ctx context.Context, c *client.Client, cmd *cobra.Command) (any, error)) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			c, err := o.connect(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			o.last.reset()
			out, err := fn(ctx, c, cmd)
			if out != nil {
				if perr := printJSON(cmd.OutOrStdout(), out); perr != nil {
					return failed(perr)
				}
			}
			return err
		}
	}
	cmd.AddCommand(&cobra.Command{
		Use: "ping", Short: "Check that the server answers", Args: cobra.NoArgs,
		RunE: run(func(ctx context.Context, c *client.Client, _ *cobra.Command) (any, error) {
			if err := c.Ping(ctx); err != nil {
				return nil, o.failure("ping", err)
			}
			return map[string]bool{"ok": true}, nil
		}),
	})
	cmd.AddCommand(&cobra.Command{
		Use: "init", Short: "Initialize and print the server's answer", Args: cobra.NoArgs,
		RunE: run(func(ctx context.Context, c *client.Client, _ *cobra.Command) (any, error) {
			return o.initResult, nil
		}),
	})
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List the server's tools", Args: cobra.NoArgs,
		RunE: run(func(ctx context.Context, c *client.Client, _ *cobra.Command) (any, error) {
			res, err := c.ListTools(ctx, mcp.ListToolsRequest{})
			if err != nil {
				return nil, o.failure("tools/list", err)
			}
			return map[string]any{"tools": res.Tools}, nil
		}),
	})
	var toolName, args string
	callCmd := &cobra.Command{
		Use: "call --tool NAME --args JSON", Short: "Call one tool and print its result", Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			if toolName == "" {
				return usageErr("--tool NAME is required")
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(args), &m); err != nil || m == nil {
				return usageErr("--args must be a JSON object, e.g. '{\"serial_number\":\"MNO33333333\"}'")
			}
			return nil
		},
		RunE: run(func(ctx context.Context, c *client.Client, _ *cobra.Command) (any, error) {
			var m map[string]any
			_ = json.Unmarshal([]byte(args), &m)
			req := mcp.CallToolRequest{}
			req.Params.Name = toolName
			req.Params.Arguments = m
			res, err := c.CallTool(ctx, req)
			if err != nil {
				return nil, o.failure("tools/call "+toolName, err)
			}
			out := callResult{IsError: res.IsError, Content: res.Content, StructuredContent: res.StructuredContent}
			if out.Content == nil {
				out.Content = []mcp.Content{}
			}
			if res.IsError {
				return out, failed(errors.New("the tool reported an error (isError: true)"))
			}
			return out, nil
		}),
	}
	callCmd.Flags().StringVar(&toolName, "tool", "", "tool name")
	callCmd.Flags().StringVar(&args, "args", "{}", "tool arguments as a JSON object")
	cmd.AddCommand(callCmd)
	return cmd
}

func readTokenFile(f string) (string, error) {
	b, err := os.ReadFile(f)
	if err != nil {
		return "", usageErr("cannot read token file %s: %v", f, err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", usageErr("token file %s is empty", f)
	}
	return t, nil
}

// connect opens and initializes an MCP session with the configured headers.
// gatewayURL reports whether u is on the gateway the other commands talk
// to (MCPGW_REGISTRY_URL's origin, by default http://127.0.0.1:7860) or on
// a loopback host: only there does call send the gateway token by default.
// `mcpgw call` is a general MCP client too, and the local admin key must
// not reach a third-party server because it was handy.
func gatewayURL(u string) bool {
	target, err := url.Parse(u)
	if err != nil {
		return false
	}
	if loopbackHost(target.Hostname()) {
		return true
	}
	reg, err := url.Parse(envOr("MCPGW_REGISTRY_URL", "http://127.0.0.1:7860"))
	return err == nil && strings.EqualFold(reg.Scheme, target.Scheme) && strings.EqualFold(reg.Host, target.Host)
}

// keepTokenHome is the client's CheckRedirect: Go drops Authorization on a
// redirect to another host but keeps custom headers, so the gateway token
// (X-Authorization) is dropped here.
func keepTokenHome(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if !strings.EqualFold(req.URL.Host, via[0].URL.Host) || req.URL.Scheme != via[0].URL.Scheme {
		req.Header.Del("X-Authorization")
	}
	return nil
}

func (o *callOpts) connect(ctx context.Context) (*client.Client, error) {
	if o.url == "" {
		return nil, usageErr("--url is required, e.g. --url http://127.0.0.1:7860/mcpgw/mcp")
	}
	if u, err := url.Parse(o.url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageErr("--url %q is not an absolute http(s) URL", o.url)
	}
	headers := map[string]string{}
	if o.tokenFile != "" {
		t, err := readTokenFile(o.tokenFile)
		if err != nil {
			return nil, err
		}
		headers["Authorization"] = "Bearer " + t
	}
	ingress := o.ingressTokenFile
	if ingress == "" && gatewayURL(o.url) {
		if f := defaultTokenFile(); fileExists(f) {
			ingress = f
		}
	}
	if ingress != "" {
		t, err := readTokenFile(ingress)
		if err != nil {
			return nil, err
		}
		headers["X-Authorization"] = "Bearer " + t
	}
	o.last = &lastResponse{}
	hc := &http.Client{Transport: &recordingTransport{base: http.DefaultTransport, last: o.last}, CheckRedirect: keepTokenHome}
	switch o.transport {
	case "auto", "":
		c, err := o.start(ctx, "streamable-http", headers, hc)
		if errors.Is(err, transport.ErrLegacySSEServer) {
			// MCP backwards compatibility: a 4xx to the initialize POST
			// means a legacy HTTP+SSE server; try its GET stream.
			return o.start(ctx, "sse", headers, hc)
		}
		return c, err
	case "streamable-http", "sse":
		return o.start(ctx, o.transport, headers, hc)
	default:
		return nil, usageErr("--transport %q is not streamable-http, sse or auto", o.transport)
	}
}

// start opens and initializes a session over one transport.
func (o *callOpts) start(ctx context.Context, kind string, headers map[string]string, hc *http.Client) (*client.Client, error) {
	var opts []client.ClientOption
	if o.protocolVersion != "" {
		opts = append(opts, client.WithProtocolVersion(o.protocolVersion))
	}
	var tr transport.Interface
	var err error
	if kind == "sse" {
		tr, err = transport.NewSSE(o.url, transport.WithHeaders(headers), transport.WithHTTPClient(hc))
	} else {
		tr, err = transport.NewStreamableHTTP(o.url, transport.WithHTTPHeaders(headers), transport.WithHTTPBasicClient(hc))
	}
	if err != nil {
		return nil, usageErr("--url: %v", err)
	}
	o.last.reset()
	c := client.NewClient(tr, opts...)
	if err := c.Start(ctx); err != nil {
		return nil, o.failure("connect "+o.url, err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "mcpgw-call", Version: version}
	init.Params.ProtocolVersion = o.protocolVersion
	res, err := c.Initialize(ctx, init)
	if err != nil {
		c.Close()
		if errors.Is(err, transport.ErrLegacySSEServer) && o.transport == "auto" {
			return nil, err // the caller falls back to SSE
		}
		return nil, o.failure("initialize "+o.url, err)
	}
	o.initResult = res
	return c, nil
}

// failure is the exit error of a failed MCP operation. When the server's
// last HTTP answer was an error, it says what the server answered (status,
// message, and the WWW-Authenticate challenge of a 401), which is what a
// user needs to fix a token; otherwise the MCP client's own error.
func (o *callOpts) failure(op string, err error) error {
	if h := o.last.failure(); h != "" {
		return failed(fmt.Errorf("%s: %s", op, h))
	}
	return failed(fmt.Errorf("%s: %v", op, err))
}

// lastResponse remembers the most recent HTTP answer of the MCP client.
type lastResponse struct {
	mu        sync.Mutex
	status    int
	message   string
	challenge string
}

func (l *lastResponse) reset() {
	l.mu.Lock()
	l.status, l.message, l.challenge = 0, "", ""
	l.mu.Unlock()
}

// failure describes the last answer if it was an HTTP error, else "".
func (l *lastResponse) failure() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.status < 400 {
		return ""
	}
	s := fmt.Sprintf("the server answered %d %s", l.status, http.StatusText(l.status))
	if l.message != "" {
		s += ": " + l.message
	}
	if l.challenge != "" {
		s += " (WWW-Authenticate: " + l.challenge + ")"
	}
	if l.status == http.StatusUnauthorized {
		s += "; check the token in --token-file (the upstream's) or --ingress-token-file (the gateway's)"
	}
	return s
}

// recordingTransport records each answer's status and, for errors, the
// message of its body; it leaves the body readable for the MCP client.
type recordingTransport struct {
	base http.RoundTripper
	last *lastResponse
}

func (t *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	var msg string
	if resp.StatusCode >= 400 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		msg = errorMessage(b)
	}
	t.last.mu.Lock()
	t.last.status, t.last.message, t.last.challenge = resp.StatusCode, msg, resp.Header.Get("WWW-Authenticate")
	t.last.mu.Unlock()
	return resp, nil
}

// errorMessage finds the message in an error body: a gateway REST error
// ({"error": "..."}), a JSON-RPC error, {"message": "..."}, or short text.
func errorMessage(b []byte) string {
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(b, &v) == nil {
		var s string
		var rpc struct {
			Message string `json:"message"`
		}
		switch {
		case json.Unmarshal(v.Error, &s) == nil && s != "":
			return s
		case json.Unmarshal(v.Error, &rpc) == nil && rpc.Message != "":
			return rpc.Message
		case v.Message != "":
			return v.Message
		}
	}
	t := strings.TrimSpace(string(b))
	if len(t) > 200 || strings.ContainsAny(t, "\n\r") {
		return ""
	}
	return t
}

func fileExists(f string) bool {
	st, err := os.Stat(f)
	return err == nil && !st.IsDir()
}
