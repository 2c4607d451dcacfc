package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/search"
)

// Finder searches the tools of the registered servers (the search index).
type Finder interface {
	Search(ctx context.Context, q search.Query) ([]search.Hit, error)
}

var _ Finder = (*search.Index)(nil)

// errNoFinder is answered when the gateway was built without a finder
// (only embedders and tests do that; `mcpgw serve` always has one).
var errNoFinder = kinded(registry.ErrNotFound, "the tool finder is not configured on this gateway")

// finderResult is one entry of intelligent_tool_finder's answer (SPEC 4.1).
type finderResult struct {
	ToolName               string                     `json:"tool_name"`
	ServicePath            string                     `json:"service_path"`
	ServiceName            string                     `json:"service_name"`
	ToolParsedDescription  registry.ParsedDescription `json:"tool_parsed_description"`
	ToolSchema             json.RawMessage            `json:"tool_schema"`
	SupportedTransports    []string                   `json:"supported_transports"`
	AuthProvider           string                     `json:"auth_provider"`
	OverallSimilarityScore float64                    `json:"overall_similarity_score"`
}

// finderResults is the object form of the answer: the structuredContent of
// intelligent_tool_finder (which must be an object, so the list is wrapped)
// and the body of GET /api/v1/search.
type finderResults struct {
	Results []finderResult `json:"results"`
}

// findParams are the finder's inputs, whichever surface they came from.
type findParams struct {
	Query      string
	Tags       []string
	Top        int
	MaxServers int
}

// find runs a finder query as p: only servers p may read and tools p may
// call are candidates, so the top N are the best of what p can use.
func (g *Gateway) find(ctx context.Context, p *auth.Principal, fp findParams) ([]finderResult, error) {
	if g.finder == nil {
		return nil, errNoFinder
	}
	readable := map[string]bool{}
	allow := func(path, tool string) bool {
		ok, seen := readable[path]
		if !seen {
			ok = g.policy.Allowed(p, path, auth.ActionRead, "")
			readable[path] = ok
		}
		return ok && g.policy.Allowed(p, path, "tools/call", tool)
	}
	want := fp.Top
	if want <= 0 {
		want = search.DefaultTop
	}
	q := search.Query{Text: fp.Query, Tags: fp.Tags, Top: want, MaxServers: fp.MaxServers, Allow: allow}
	hits, err := g.finder.Search(ctx, q)
	if err != nil {
		return nil, err
	}
	// Unhealthy servers stay listed (a real call may still work) but rank
	// last. When the answer holds one, ask again for more, so that healthy
	// tools further down can move up without leaving the answer short. The
	// first question asks for exactly top_n, because the number asked can
	// shape the ranking itself (the hybrid fuses that many of each ranking).
	if g.anyUnhealthy(hits) && want < search.MaxTop {
		q.Top = min(2*want, search.MaxTop)
		if hits, err = g.finder.Search(ctx, q); err != nil {
			return nil, err
		}
	}
	hits = g.healthyFirst(hits)
	if len(hits) > want {
		hits = hits[:want]
	}
	out := make([]finderResult, 0, len(hits))
	for _, h := range hits {
		schema := h.Tool.Schema
		if len(schema) == 0 {
			schema = json.RawMessage("null")
		}
		out = append(out, finderResult{
			ToolName: h.Tool.Name, ServicePath: h.ServerPath, ServiceName: h.ServerName,
			ToolParsedDescription: h.Tool.ParsedDescription, ToolSchema: schema,
			SupportedTransports: nonNil(h.Transports), AuthProvider: h.AuthProvider,
			OverallSimilarityScore: h.Score,
		})
	}
	return out, nil
}

func (g *Gateway) anyUnhealthy(hits []search.Hit) bool {
	for _, h := range hits {
		if g.health.Health(h.ServerKey).Status == registry.HealthUnhealthy {
			return true
		}
	}
	return false
}

// healthyFirst moves hits on unhealthy servers behind the others, keeping
// the order within each group.
func (g *Gateway) healthyFirst(hits []search.Hit) []search.Hit {
	out := make([]search.Hit, 0, len(hits))
	var later []search.Hit
	for _, h := range hits {
		if g.health.Health(h.ServerKey).Status == registry.HealthUnhealthy {
			later = append(later, h)
			continue
		}
		out = append(out, h)
	}
	return append(out, later...)
}

// inputError is bad input to the finder or invoke_tool: a 400 at the REST
// edge, an isError result over MCP. It matches registry.ErrInvalid.
type inputError struct{ field, reason string }

func (e *inputError) Error() string { return e.field + " " + e.reason }
func (e *inputError) Unwrap() error { return registry.ErrInvalid }

func invalid(field, reason string) error { return &inputError{field: field, reason: reason} }

// maxFindQuery and maxFindTags bound a finder request.
const (
	maxFindQuery = 2048
	maxFindTags  = 32
)

// checkFind validates finder inputs; field names are those of the surface.
func checkFind(fp findParams, queryField, topField string) error {
	if strings.TrimSpace(fp.Query) == "" && len(fp.Tags) == 0 {
		return invalid(queryField, "is required unless tags are given: describe the tool you need, give tags, or both")
	}
	if len(fp.Query) > maxFindQuery {
		// A need is a sentence or two; every word of a longer text would
		// cost a pass over the vocabulary (spelling corrections) under the
		// index's lock, which registrations wait for.
		return invalid(queryField, fmt.Sprintf("is longer than %d bytes: describe the need in a sentence or two", maxFindQuery))
	}
	if len(fp.Tags) > maxFindTags {
		return invalid("tags", fmt.Sprintf("must not hold more than %d tags", maxFindTags))
	}
	if fp.Top < 1 || fp.Top > search.MaxTop {
		return invalid(topField, fmt.Sprintf("must be between 1 and %d", search.MaxTop))
	}
	if fp.MaxServers < 0 {
		return invalid("top_k_services", "must not be negative")
	}
	return nil
}

const finderSchema = `{"type":"object","properties":{
 "natural_language_query":{"type":"string","description":"What you need a tool for, in plain words, e.g. \"check the warranty of a product by its serial number\""},
 "tags":{"type":"array","items":{"type":"string"},"description":"Only services carrying every one of these tags (case-insensitive)"},
 "top_n":{"type":"integer","minimum":1,"maximum":50,"description":"How many tools to return, best first (default 5)"},
 "top_n_tools":{"type":"integer","minimum":1,"maximum":50,"description":"Older name of top_n"},
 "top_k_services":{"type":"integer","minimum":1,"description":"Older parameter: at most this many distinct services in the answer"}
}}`

// addFinderTool registers intelligent_tool_finder on the meta server.
func (g *Gateway) addFinderTool(s *server.MCPServer) {
	s.AddTool(mcp.NewToolWithRawSchema("intelligent_tool_finder",
		"Find the tools best suited to a need among every service you may use, by a natural-language description and/or tags. "+
			"Returns a JSON list, best first: tool_name, service_path, service_name, tool_parsed_description, tool_schema, supported_transports, auth_provider and overall_similarity_score (0..1). "+
			"Call a tool found here with invoke_tool(service_path, tool_name, arguments), or connect to <gateway>/<service_path>/mcp. "+
			"structuredContent holds the same list as {\"results\": [...]}.",
		json.RawMessage(finderSchema)), g.toolFinder)
}

func (g *Gateway) toolFinder(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	fp, err := finderArgs(req.GetArguments())
	if err == nil {
		err = checkFind(fp, "natural_language_query", "top_n")
	}
	if err != nil {
		return errorResult(err), nil
	}
	res, err := g.find(ctx, auth.FromContext(ctx), fp)
	if err != nil {
		return errorResult(err), nil
	}
	list, err := json.Marshal(res)
	if err != nil {
		return errorResult(err), nil
	}
	return mcp.NewToolResultStructured(finderResults{Results: res}, string(list)), nil
}

// finderArgs reads the tool's arguments. tags may be a list or one
// comma-separated string; numbers may come as JSON numbers or strings.
func finderArgs(args map[string]any) (findParams, error) {
	fp := findParams{Top: search.DefaultTop}
	if v, ok := args["natural_language_query"]; ok && v != nil {
		s, ok := v.(string)
		if !ok {
			return fp, invalid("natural_language_query", "must be a string")
		}
		fp.Query = s
	}
	switch v := args["tags"].(type) {
	case nil:
	case string:
		fp.Tags = splitTags([]string{v})
	case []any:
		for _, t := range v {
			s, ok := t.(string)
			if !ok {
				return fp, invalid("tags", "must be a list of strings")
			}
			fp.Tags = append(fp.Tags, s)
		}
		fp.Tags = splitTags(fp.Tags)
	default:
		return fp, invalid("tags", "must be a list of strings")
	}
	for _, name := range []string{"top_n_tools", "top_n"} { // top_n wins over its older name
		if v, ok := args[name]; ok && v != nil {
			n, err := intArg(name, v)
			if err != nil {
				return fp, err
			}
			fp.Top = n
		}
	}
	if v, ok := args["top_k_services"]; ok && v != nil {
		n, err := intArg("top_k_services", v)
		if err != nil {
			return fp, err
		}
		fp.MaxServers = n
	}
	return fp, nil
}

func intArg(name string, v any) (int, error) {
	switch n := v.(type) {
	case float64:
		if n != float64(int(n)) {
			return 0, invalid(name, "must be a whole number")
		}
		return int(n), nil
	case string:
		i, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil {
			return 0, invalid(name, "must be a whole number")
		}
		return i, nil
	default:
		return 0, invalid(name, "must be a whole number")
	}
}

// splitTags splits comma-separated values and drops empty ones.
func splitTags(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

// handleSearch serves GET /api/v1/search?q=&tag=&top= (tag repeatable or
// comma-separated; tags is accepted as an alias).
func (g *Gateway) handleSearch(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, "GET")
		return
	}
	p, ok := g.principal(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	fp := findParams{Query: q.Get("q"), Tags: splitTags(append(q["tag"], q["tags"]...)), Top: search.DefaultTop}
	if v := q.Get("top"); v != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			writeErr(w, r, invalid("top", "must be a whole number"))
			return
		}
		fp.Top = n
	}
	if err := checkFind(fp, "q", "top"); err != nil {
		writeErr(w, r, err)
		return
	}
	res, err := g.find(r.Context(), p, fp)
	if err != nil {
		writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, finderResults{Results: res})
}
