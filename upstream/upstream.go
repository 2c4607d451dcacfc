// Package upstream talks to registered upstream MCP servers on the gateway's
// own behalf: the shared, pooled HTTP transport every upstream request uses,
// egress header expansion, and tool-list reads (refresh).
package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/registry"
)

// Options configure upstream traffic.
type Options struct {
	// Timeout bounds one gateway-initiated exchange (refresh); 0 means 30 s.
	Timeout time.Duration
	// MaxIdleConnsPerHost is the keep-alive pool per upstream; 0 means 256.
	MaxIdleConnsPerHost int
}

// Client is the gateway's connection to its upstreams: one pooled transport
// for relayed and gateway-initiated requests alike.
type Client struct {
	opts      Options
	transport *http.Transport
	relay     *H1Transport
	http      *http.Client
	version   string
}

// New returns a Client with a fresh connection pool.
func New(opts Options, version string) *Client {
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.MaxIdleConnsPerHost <= 0 {
		opts.MaxIdleConnsPerHost = 256
	}
	tr := &http.Transport{
		Proxy: nil, // upstreams are reached directly; a proxy env var must not reroute secrets
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   opts.MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Streams must reach the client as they arrive: no transparent gzip,
		// which would buffer and re-frame event streams.
		DisableCompression: true,
	}
	relay := NewH1Transport(H1Options{MaxIdlePerHost: opts.MaxIdleConnsPerHost, Fallback: tr})
	return &Client{opts: opts, transport: tr, relay: relay, http: &http.Client{Transport: tr, CheckRedirect: noRedirects}, version: version}
}

// noRedirects is the CheckRedirect of every client of upstreams: a
// redirect is answered, not followed. Configured headers are secrets for
// the registered upstream only, and an upstream must not send the gateway
// to an address of its choosing (an internal one, say).
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Transport returns the shared pooled net/http transport, used for the
// gateway's own MCP sessions and health checks.
func (c *Client) Transport() *http.Transport { return c.transport }

// RelayTransport returns the relay's round tripper: raw HTTP/1.1 over its own
// pool (see H1Transport), falling back to Transport for what it does not
// handle.
func (c *Client) RelayTransport() *H1Transport { return c.relay }

// Close drops idle upstream connections.
func (c *Client) Close() {
	c.transport.CloseIdleConnections()
	c.relay.CloseIdleConnections()
}

// Endpoint returns the upstream MCP endpoint of s. A bedrock-agentcore
// server's proxy_pass_url is normalized to the gateway's base URL ending in
// "/", so its endpoint is that base plus "mcp".
func Endpoint(s *registry.Server) string {
	if s.AuthProvider == registry.ProviderBedrockAgentCore {
		return strings.TrimSuffix(s.ProxyPassURL, "/") + "/mcp"
	}
	return s.ProxyPassURL
}

// ExpandHeaders returns the configured egress headers of s with $VAR and
// ${VAR} expanded from the environment now. The expanded values are never
// stored; callers send them and drop them.
func ExpandHeaders(s *registry.Server) map[string]string {
	if len(s.Headers) == 0 {
		return nil
	}
	out := make(map[string]string, len(s.Headers))
	for _, h := range s.Headers {
		out[h.Name] = h.Value.Expand()
	}
	return out
}

// Connect opens an initialized MCP client session to s with its configured
// headers (plus extra, which wins), over the shared pool.
func (c *Client) Connect(ctx context.Context, s *registry.Server, extra map[string]string) (*client.Client, error) {
	headers := ExpandHeaders(s)
	for k, v := range extra {
		if headers == nil {
			headers = map[string]string{}
		}
		headers[k] = v
	}
	var cl *client.Client
	var err error
	if len(s.SupportedTransports) == 1 && s.SupportedTransports[0] == registry.TransportSSE {
		cl, err = client.NewSSEMCPClient(Endpoint(s), transport.WithHeaders(headers), transport.WithHTTPClient(c.http))
	} else {
		cl, err = client.NewStreamableHttpClient(Endpoint(s), transport.WithHTTPHeaders(headers), transport.WithHTTPBasicClient(c.http))
	}
	if err != nil {
		return nil, fmt.Errorf("upstream: connect %s: %w", s.Path, err)
	}
	if err := cl.Start(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("upstream: connect %s: %w", s.Path, err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "mcpgw", Version: c.version}
	if _, err := cl.Initialize(ctx, init); err != nil {
		cl.Close()
		return nil, fmt.Errorf("upstream: initialize %s: %w", s.Path, err)
	}
	return cl, nil
}

// ListTools reads the full tool list of s (every page) with its configured
// headers and converts it to the registry's tool form.
func (c *Client) ListTools(ctx context.Context, s *registry.Server) ([]registry.Tool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	cl, err := c.Connect(ctx, s, nil)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	res, err := cl.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		return nil, fmt.Errorf("upstream: tools/list %s: %w", s.Path, err)
	}
	return ToRegistryTools(res.Tools)
}

// ToRegistryTools converts MCP tool definitions to registry tools, keeping
// each input schema as the upstream sent it.
func ToRegistryTools(tools []mcp.Tool) ([]registry.Tool, error) {
	out := make([]registry.Tool, 0, len(tools))
	for _, t := range tools {
		schema, err := json.Marshal(t.InputSchema)
		if t.RawInputSchema != nil {
			schema, err = t.RawInputSchema, nil
		}
		if err != nil {
			return nil, fmt.Errorf("upstream: tool %s schema: %w", t.Name, err)
		}
		desc := t.Description
		out = append(out, registry.Tool{Name: t.Name, ParsedDescription: registry.ParsedDescription{Main: &desc}, Schema: schema})
	}
	return out, nil
}
