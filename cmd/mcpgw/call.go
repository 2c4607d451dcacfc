package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
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
	pf.StringVar(&o.transport, "transport", "streamable-http", "streamable-http or sse")
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
				return nil, failed(fmt.Errorf("ping: %v", err))
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
				return nil, failed(fmt.Errorf("tools/list: %v", err))
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
				return nil, failed(fmt.Errorf("tools/call %s: %v", toolName, err))
			}
			out := map[string]any{"isError": res.IsError, "content": res.Content}
			if res.StructuredContent != nil {
				out["structuredContent"] = res.StructuredContent
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
	if ingress == "" {
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
	var opts []client.ClientOption
	if o.protocolVersion != "" {
		opts = append(opts, client.WithProtocolVersion(o.protocolVersion))
	}
	var tr transport.Interface
	var err error
	switch o.transport {
	case "streamable-http", "":
		tr, err = transport.NewStreamableHTTP(o.url, transport.WithHTTPHeaders(headers))
	case "sse":
		tr, err = transport.NewSSE(o.url, transport.WithHeaders(headers))
	default:
		return nil, usageErr("--transport %q is not streamable-http or sse", o.transport)
	}
	if err != nil {
		return nil, usageErr("--url: %v", err)
	}
	c := client.NewClient(tr, opts...)
	if err := c.Start(ctx); err != nil {
		return nil, failed(fmt.Errorf("connect %s: %v", o.url, err))
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "mcpgw-call", Version: version}
	init.Params.ProtocolVersion = o.protocolVersion
	res, err := c.Initialize(ctx, init)
	if err != nil {
		c.Close()
		return nil, failed(fmt.Errorf("initialize %s: %v", o.url, err))
	}
	o.initResult = res
	return c, nil
}

func fileExists(f string) bool {
	st, err := os.Stat(f)
	return err == nil && !st.IsDir()
}
