package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/search"
)

// withFinder gives e's gateway a finder index that follows its registry,
// wired as `mcpgw serve` wires it.
func withFinder(t *testing.T, e *testEnv) *search.Index {
	t.Helper()
	x, err := search.New(search.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	e.reg.Subscribe(x.Apply)
	if err := x.Load(context.Background(), e.reg.List); err != nil {
		t.Fatal(err)
	}
	e.gw.finder = x
	return x
}

// registerCatalog registers every file of testdata/catalog.
func registerCatalog(t *testing.T, e *testEnv) {
	t.Helper()
	files, err := filepath.Glob("../testdata/catalog/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("catalog: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.reg.Register(context.Background(), b, false); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
}

// findMCP calls intelligent_tool_finder and returns the list, checking the
// result's shape: one text content holding the JSON list, and the same list
// as structuredContent {"results": [...]}.
func findMCP(t *testing.T, e *testEnv, headers map[string]string, args map[string]any) []finderResult {
	t.Helper()
	c := connect(t, e.srv.URL+"/mcpgw/mcp", headers, "2025-06-18")
	res, err := callTool(c, "intelligent_tool_finder", args)
	if err != nil {
		t.Fatalf("intelligent_tool_finder: %v", err)
	}
	if res.IsError {
		t.Fatalf("intelligent_tool_finder failed: %s", resultText(t, res))
	}
	var fromText []finderResult
	if err := json.Unmarshal([]byte(resultText(t, res)), &fromText); err != nil {
		t.Fatalf("text is not a JSON list: %v", err)
	}
	// Compare as generic JSON: the client decoded structuredContent into
	// maps, so object keys come back sorted.
	sb, _ := json.Marshal(res.StructuredContent)
	var structured struct {
		Results []any `json:"results"`
	}
	var text []any
	if err := json.Unmarshal(sb, &structured); err != nil || structured.Results == nil {
		t.Fatalf("structuredContent is not {\"results\": [...]}: %s", sb)
	}
	_ = json.Unmarshal([]byte(resultText(t, res)), &text)
	if !reflect.DeepEqual(text, structured.Results) {
		t.Errorf("text and structuredContent differ:\n%s\n%s", resultText(t, res), sb)
	}
	return fromText
}

func names(rs []finderResult) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ServicePath + " " + r.ToolName
	}
	return out
}

func TestFinderOverMCP(t *testing.T) {
	e := newEnv(t, Options{})
	withFinder(t, e)
	registerCatalog(t, e)
	hdr := map[string]string{"Authorization": "Bearer " + e.admin}

	got := findMCP(t, e, hdr, map[string]any{"natural_language_query": "is the product with this serial number still under warranty?"})
	if len(got) != search.DefaultTop {
		t.Fatalf("%d results, want the default %d", len(got), search.DefaultTop)
	}
	top := got[0]
	if top.ToolName != "LambdaUsingSDK___check_warranty_status" || top.ServicePath != "/customer-support-assistant/" ||
		top.ServiceName != "customer-support-assistant" || top.AuthProvider != "bedrock-agentcore" ||
		!reflect.DeepEqual(top.SupportedTransports, []string{"streamable-http"}) ||
		top.ToolParsedDescription.Main == nil || len(top.ToolSchema) < 10 {
		t.Errorf("first result %+v", top)
	}
	for i, r := range got {
		if r.OverallSimilarityScore < 0 || r.OverallSimilarityScore > 1 || i > 0 && r.OverallSimilarityScore > got[i-1].OverallSimilarityScore {
			t.Errorf("scores not in 0..1 best first: %v", got)
		}
	}

	// Tags only lists the tagged services' tools; top_n and the older
	// top_n_tools name both set the size; tags may be one string.
	got = findMCP(t, e, hdr, map[string]any{"tags": []any{"Payments"}, "top_n": 50})
	if len(got) != 22 {
		t.Errorf("tag payments: %d tools, want stripe's 22", len(got))
	}
	for _, r := range got {
		if r.ServicePath != "/stripe" || r.OverallSimilarityScore != 1 {
			t.Errorf("tag payments gave %s %s (%v)", r.ServicePath, r.ToolName, r.OverallSimilarityScore)
		}
	}
	got = findMCP(t, e, hdr, map[string]any{"natural_language_query": "create an issue", "tags": "git, ISSUES", "top_n_tools": 3})
	if len(got) != 3 {
		t.Fatalf("top_n_tools 3: %d results", len(got))
	}
	for _, r := range got {
		if r.ServicePath != "/github" && r.ServicePath != "/gitlab" {
			t.Errorf("tags git+issues gave %s", r.ServicePath)
		}
	}
	got = findMCP(t, e, hdr, map[string]any{"natural_language_query": "create", "top_n": 10, "top_k_services": 1})
	servers := map[string]bool{}
	for _, r := range got {
		servers[r.ServicePath] = true
	}
	if len(servers) != 1 {
		t.Errorf("top_k_services 1 gave services %v", servers)
	}

	// Bad input is an isError result naming the parameter.
	c := connect(t, e.srv.URL+"/mcpgw/mcp", hdr, "2025-06-18")
	for _, args := range []map[string]any{
		{},
		{"natural_language_query": "  "},
		{"natural_language_query": "x", "top_n": 0},
		{"natural_language_query": "x", "top_n": 51},
		{"natural_language_query": "x", "top_n": 2.5},
		{"tags": []any{1, 2}},
		{"natural_language_query": 7},
		{"natural_language_query": strings.Repeat("warranty ", maxFindQuery/9+1)},
	} {
		res, err := callTool(c, "intelligent_tool_finder", args)
		if err != nil || !res.IsError {
			t.Errorf("args %v: %v, %v; want an isError result", args, res, err)
		}
	}
}

func TestFinderREST(t *testing.T) {
	e := newEnv(t, Options{})
	withFinder(t, e)
	registerCatalog(t, e)
	hdr := map[string]string{"Authorization": "Bearer " + e.admin}
	get := func(q url.Values) (int, finderResults, []byte) {
		resp, body := e.do(t, http.MethodGet, "/api/v1/search?"+q.Encode(), nil, hdr)
		var out finderResults
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatalf("body: %s", body)
			}
		}
		return resp.StatusCode, out, body
	}
	code, out, body := get(url.Values{"q": {"warrenty of a device"}, "top": {"2"}})
	if code != http.StatusOK || len(out.Results) != 2 || out.Results[0].ToolName != "LambdaUsingSDK___check_warranty_status" {
		t.Fatalf("typo query: %d %s", code, body)
	}
	code, out, _ = get(url.Values{"tag": {"browser", "SCRAPING"}, "top": {"50"}})
	if code != http.StatusOK || len(out.Results) != 7 {
		t.Errorf("tags browser+scraping: %d, %d results, want puppeteer's 7", code, len(out.Results))
	}
	code, out, _ = get(url.Values{"tag": {"browser,scraping"}, "top": {"50"}})
	if code != http.StatusOK || len(out.Results) != 7 {
		t.Errorf("comma-separated tags: %d, %d results", code, len(out.Results))
	}
	long := strings.Repeat("warranty ", maxFindQuery/9+1) // a text, not a need: each word costs a pass
	manyTags := url.Values{"q": {"x"}}
	for i := 0; i <= maxFindTags; i++ {
		manyTags.Add("tag", fmt.Sprint("t", i))
	}
	for _, q := range []url.Values{{}, {"q": {" "}}, {"q": {"x"}, "top": {"0"}}, {"q": {"x"}, "top": {"51"}}, {"q": {"x"}, "top": {"many"}},
		{"q": {long}}, manyTags} {
		code, _, body := get(q)
		var apiErr apiError
		if code != http.StatusBadRequest || json.Unmarshal(body, &apiErr) != nil || apiErr.Error == "" {
			t.Errorf("%v: %d %s, want 400 with an error sentence", q, code, body)
		}
	}
	if resp, _ := e.do(t, http.MethodPost, "/api/v1/search?q=x", nil, hdr); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", resp.StatusCode)
	}
	if resp, _ := e.do(t, http.MethodGet, "/api/v1/search?q=x", nil, map[string]string{"Authorization": "Bearer mcpgw_wrong"}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("bad token: %d", resp.StatusCode)
	}
}

// TestFinderFollowsRegistry registers, disables, enables, refreshes and
// removes through the REST API and checks the finder's answers at once.
func TestFinderFollowsRegistry(t *testing.T) {
	e := newEnv(t, Options{})
	withFinder(t, e)
	hdr := e.adminHeaders()
	find := func() []string {
		resp, body := e.do(t, http.MethodGet, "/api/v1/search?q=zeppelin+booking", nil, hdr)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("search: %d %s", resp.StatusCode, body)
		}
		var out finderResults
		_ = json.Unmarshal(body, &out)
		return names(out.Results)
	}
	doc := `{"server_name":"airships","path":"/airships","proxy_pass_url":"http://127.0.0.1:9/mcp","tool_list":[{"name":"book_zeppelin","parsed_description":{"main":"Book a seat on a zeppelin"}}]}`
	steps := []struct {
		method, path, body string
		want               []string
	}{
		{http.MethodPost, "/api/v1/servers", doc, []string{"/airships book_zeppelin"}},
		{http.MethodPost, "/api/v1/servers/airships/disable", "", []string{}},
		{http.MethodPost, "/api/v1/servers/airships/enable", "", []string{"/airships book_zeppelin"}},
		{http.MethodPut, "/api/v1/servers/airships", `{"server_name":"airships","path":"/airships","proxy_pass_url":"http://127.0.0.1:9/mcp","tool_list":[{"name":"cancel_zeppelin_booking","parsed_description":{"main":"Cancel a zeppelin seat"}}]}`, []string{"/airships cancel_zeppelin_booking"}},
		{http.MethodDelete, "/api/v1/servers/airships", "", []string{}},
	}
	for _, st := range steps {
		var body []byte
		if st.body != "" {
			body = []byte(st.body)
		}
		if resp, b := e.do(t, st.method, st.path, body, hdr); resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", st.method, st.path, resp.StatusCode, b)
		}
		if got := find(); !reflect.DeepEqual(got, st.want) {
			t.Errorf("after %s %s: found %q, want %q", st.method, st.path, got, st.want)
		}
	}
}

// TestFinderPolicy checks that the finder shows only what the caller may
// use: with the seed's policy the support group sees the warranty tool and
// nothing else, while the admin sees everything.
func TestFinderPolicy(t *testing.T) {
	env := newAuthEnv(t, nil, seedPolicy)
	withFinder(t, env.testEnv)
	registerCatalog(t, env.testEnv)
	const supportKey = "mcpgw_support-key"
	if err := env.store.PutAPIKey(context.Background(), registry.APIKey{Name: "sam", Hash: auth.HashKey(supportKey), Groups: []string{"support-team"}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	support := map[string]string{"X-Authorization": "Bearer " + supportKey}
	admin := map[string]string{"X-Authorization": "Bearer " + env.admin}

	got := names(findMCP(t, env.testEnv, support, map[string]any{"natural_language_query": "customer profile warranty create issue", "top_n": 50}))
	if want := []string{"/customer-support-assistant/ LambdaUsingSDK___check_warranty_status"}; !reflect.DeepEqual(got, want) {
		t.Errorf("support sees %q, want %q", got, want)
	}
	got = names(findMCP(t, env.testEnv, support, map[string]any{"tags": []any{"customer-support"}, "top_n": 50}))
	if want := []string{"/customer-support-assistant/ LambdaUsingSDK___check_warranty_status"}; !reflect.DeepEqual(got, want) {
		t.Errorf("support's tag listing %q, want %q", got, want)
	}
	got = names(findMCP(t, env.testEnv, admin, map[string]any{"natural_language_query": "customer profile", "top_n": 3}))
	sort.Strings(got)
	if len(got) != 3 || got[0] != "/customer-support-assistant/ LambdaUsingSDK___check_warranty_status" && got[0] != "/customer-support-assistant/ LambdaUsingSDK___get_customer_profile" {
		t.Errorf("admin sees %q", got)
	}
	resp, body := env.do(t, http.MethodGet, "/api/v1/search?q=create+issue", nil, support)
	var out finderResults
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &out) != nil || len(out.Results) != 0 {
		t.Errorf("support searching for what it may not use: %d %s", resp.StatusCode, body)
	}
}

// TestFinderNotConfigured: a gateway without a finder says so.
func TestFinderNotConfigured(t *testing.T) {
	e := newEnv(t, Options{})
	c := connect(t, e.srv.URL+"/mcpgw/mcp", map[string]string{"Authorization": "Bearer " + e.admin}, "2025-06-18")
	res, err := callTool(c, "intelligent_tool_finder", map[string]any{"natural_language_query": "anything"})
	if err != nil || !res.IsError || !strings.Contains(resultText(t, res), "not configured") {
		t.Fatalf("%v %v", res, err)
	}
}

// TestFinderScoresTellNothingOfHiddenTools: the support group sees only
// customer-support-assistant's tools. Its finder scores must not depend on
// the words of tools it may not see: the similarity once weighed query
// words by the whole index, so a word only a hidden tool holds scored
// differently from a word no tool holds, and a caller could learn, word by
// word, what hidden tools are called and described as.
func TestFinderScoresTellNothingOfHiddenTools(t *testing.T) {
	f := newFixture(t)
	f.withFinder(t)
	f.withPolicy(t, auth.PolicyOptions{Log: zerolog.Nop()}, seedPolicy)
	env := f.serve(t, Options{}, nil)
	env.register(t, map[string]any{"server_name": "customer-support-assistant", "path": "/customer-support-assistant",
		"proxy_pass_url": "http://127.0.0.1:9/mcp", "tool_list": seedTools})
	env.register(t, map[string]any{"server_name": "hr-internal", "path": "/hr-internal", "proxy_pass_url": "http://127.0.0.1:9/mcp",
		"tool_list": []map[string]any{{"name": "export_payroll_ledger", "parsed_description": map[string]any{"main": "Export the quarterly payroll ledger of executives"}}}})
	sam := &auth.Principal{Subject: "sam", Groups: []string{"support-team"}}
	score := func(q string) float64 {
		res, err := env.gw.find(context.Background(), sam, findParams{Query: q, Top: 5})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.ServicePath != "/customer-support-assistant" {
				t.Fatalf("hidden tool in results: %+v", r)
			}
		}
		if len(res) == 0 {
			return -1
		}
		return res[0].OverallSimilarityScore
	}
	base := score("check warranty status qzxvvy")
	if base <= 0 || base >= 1 {
		t.Fatalf("score %.3f of a query with one unknown word: the test compares nothing", base)
	}
	for _, probe := range []string{"payroll", "executives", "ledger", "quarterly", "payrol"} {
		if s := score("check warranty status " + probe); s != base {
			t.Errorf("the score tells that %q occurs in a tool sam may not see (%.3f, a word no tool holds %.3f)", probe, s, base)
		}
	}
}
