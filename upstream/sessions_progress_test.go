package upstream

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/upstream/upstreamtest"
)

// TestSessionsProgressTokens: a call with a ProgressFunc sends the upstream
// a token of the pool's own, different for every call on the shared
// session, and receives that call's progress (token removed) in order before
// CallTool returns; a call without one sends no token.
func TestSessionsProgressTokens(t *testing.T) {
	var mu sync.Mutex
	var seen []any // progress tokens the upstream received
	record := server.ServerTool{
		Tool: mcp.NewTool("record", mcp.WithNumber("steps")),
		Handler: func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			var token any
			if req.Params.Meta != nil {
				token = req.Params.Meta.ProgressToken
			}
			mu.Lock()
			seen = append(seen, token)
			mu.Unlock()
			for i := 1; token != nil && i <= int(req.GetFloat("steps", 0)); i++ {
				_ = server.ServerFromContext(ctx).SendNotificationToClient(ctx, MethodProgress,
					map[string]any{"progressToken": token, "progress": i, "message": fmt.Sprint("step ", i)})
				time.Sleep(5 * time.Millisecond)
			}
			return mcp.NewToolResultText("ok"), nil
		},
	}
	for _, sse := range []bool{false, true} {
		t.Run(fmt.Sprintf("sse=%v", sse), func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			up := upstreamtest.New(t, upstreamtest.Options{SSE: sse, Tools: []server.ServerTool{record}})
			p := newPool(t, SessionOptions{})
			t.Cleanup(p.Close) // before the upstream waits for the SSE stream
			s := &registry.Server{Path: "/rec", ProxyPassURL: up.URL}
			if sse {
				s.SupportedTransports = []string{registry.TransportSSE}
			}
			var wg sync.WaitGroup
			got := make([][]string, 3)
			for i := range got {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var mine []string
					res, err := p.CallTool(context.Background(), s, nil, "record", map[string]any{"steps": 2 + i}, func(params map[string]any) {
						if _, ok := params["progressToken"]; ok {
							t.Errorf("ProgressFunc got the upstream token: %v", params)
						}
						mine = append(mine, fmt.Sprint(params["progress"], " ", params["message"]))
					})
					if err != nil || res.IsError {
						t.Errorf("call %d: %v %+v", i, err, res)
					}
					got[i] = mine // written before CallTool returned, or not at all
				}()
			}
			wg.Wait()
			for i, g := range got {
				var want []string
				for k := 1; k <= 2+i; k++ {
					want = append(want, fmt.Sprintf("%d step %d", k, k))
				}
				if fmt.Sprint(g) != fmt.Sprint(want) {
					t.Errorf("call %d received %v, want %v", i, g, want)
				}
			}
			if _, err := p.CallTool(context.Background(), s, nil, "record", map[string]any{"steps": 2}, nil); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			distinct := map[any]bool{}
			for _, tok := range seen[:3] {
				if tok == nil {
					t.Errorf("a call with a ProgressFunc sent no progress token")
				}
				distinct[tok] = true
			}
			if len(distinct) != 3 {
				t.Errorf("tokens sent upstream %v: want one per call", seen[:3])
			}
			if seen[3] != nil {
				t.Errorf("a call without a ProgressFunc sent token %v", seen[3])
			}
			if st := p.Stats(); st.Opened != 1 {
				t.Errorf("%d sessions opened, want the 4 calls on one", st.Opened)
			}
		})
	}
}
