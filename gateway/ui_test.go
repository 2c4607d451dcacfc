package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/upstream/upstreamtest"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write the UI test's screenshot of the main page to docs/screenshot.png")

// fakeHealth is a HealthSource whose answers a test sets.
type fakeHealth struct {
	mu sync.Mutex
	m  map[string]registry.Health
}

func (f *fakeHealth) Health(key string) registry.Health {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h, ok := f.m[key]; ok {
		return h
	}
	return registry.Health{Status: registry.HealthUnknown}
}

func (f *fakeHealth) set(key string, h registry.Health) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]registry.Health{}
	}
	f.m[key] = h
}

// uiEnv is a full gateway as `mcpgw serve` wires it (SQLite, the finder
// index, a settable health source) on httptest at 127.0.0.1, with the seed's
// customer-support-assistant registered against a fake AgentCore Gateway.
type uiEnv struct {
	*testEnv
	health    *fakeHealth
	policy    *auth.Policy
	agentcore *upstreamtest.Server
	logw      *syncWriter
	logBuf    *bytes.Buffer
}

// logText is everything the gateway has logged so far.
func (e *uiEnv) logText() string {
	e.logw.mu.Lock()
	defer e.logw.mu.Unlock()
	return e.logBuf.String()
}

const seedServerPath = "/customer-support-assistant/"

func newUIEnv(t *testing.T, opts Options, mods ...func(*Deps)) *uiEnv {
	t.Helper()
	f := newFixture(t)
	f.withFinder(t)
	health := &fakeHealth{}
	policy := auth.NewPolicy()
	logBuf := &bytes.Buffer{}
	logs := &syncWriter{w: logBuf}
	f.deps.Health, f.deps.Policy, f.deps.Log = health, policy, zerolog.New(logs)
	for _, m := range mods {
		m(&f.deps)
	}
	env := f.serve(t, opts, func(gw *Gateway) {
		gw.uiPoll = 300 * time.Millisecond // the page polls fast so the test sees live health quickly
	})
	e := &uiEnv{testEnv: env, health: health, policy: policy, logw: logs, logBuf: logBuf}
	e.agentcore = upstreamtest.NewAgentCore(t, "")
	e.registerSeed(t)
	return e
}

// registerSeed registers testdata/gateway-config.json, the seed guide's file
// verbatim, with its placeholder gateway id pointed at the fake AgentCore.
func (e *uiEnv) registerSeed(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile("../testdata/gateway-config.json")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(string(b), "https://<YOUR-GATEWAY-ID>.gateway.bedrock-agentcore.us-east-1.amazonaws.com/mcp/", e.agentcore.Base+"/mcp/", 1)
	if doc == string(b) {
		t.Fatal("the seed's proxy_pass_url placeholder was not found in testdata/gateway-config.json")
	}
	if _, _, err := e.reg.Register(context.Background(), []byte(doc), false); err != nil {
		t.Fatalf("register the seed: %v", err)
	}
}

// hostile is a registration whose every text field tries to run script.
var hostile = map[string]any{
	"server_name":    `Evil <img src=x onerror="window.__pwned='name'">`,
	"description":    `<script>window.__pwned='description';document.title='pwned'</script><b>not bold</b>`,
	"path":           "/evil",
	"proxy_pass_url": "http://127.0.0.1:9/mcp",
	"tags":           []string{`<svg onload="window.__pwned='tag'">`},
	"tool_list": []any{map[string]any{
		"name":               `x<script>window.__pwned='tool'</script>`,
		"parsed_description": map[string]any{"main": `<img src=x onerror="window.__pwned='tooldesc'">`},
		"schema":             map[string]any{"type": "object", "description": `</pre><script>window.__pwned='schema'</script>`},
	}},
}

// chromiumPath finds Debian's chromium (or another Chrome) for the browser
// tests.
func chromiumPath() string {
	if p := os.Getenv("MCPGW_CHROMIUM"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "" // a browser named but not there is no browser
		}
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile. Without a
// browser the test fails in CI and is skipped elsewhere.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		msg := "no Chromium found (install the Debian package chromium, or set MCPGW_CHROMIUM); the browser tests of the web UI cannot run"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium (%s): %v", path, err)
	}
	return ctx
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// waitJS waits until the JavaScript expression is true. It evaluates again
// when a navigation (a reload after sign-in) interrupts an evaluation.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, err := chromedp.Run(c, chromedp.Evaluate[bool]("!!("+expr+")"))
		cancel()
		if err == nil && ok {
			return
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: timed out (last error: %v)\npage text:\n%s", what, last, pageText(ctx))
}

func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func pageText(ctx context.Context) string {
	c, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, _ := chromedp.Run(c, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
	return s
}

func browse(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		t.Fatalf("browser: %v\npage text:\n%s", err, pageText(ctx))
	}
}

// clearInput empties a text field.
func clearInput(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void]("document.querySelector(" + jsString(sel) + ").value = ''")
}

// rowExpr is a JavaScript expression for the services table row of path.
func rowExpr(path string) string {
	return "document.querySelector('#services tr[data-path=' + JSON.stringify(" + jsString(path) + ") + ']')"
}

// notPwned asserts that no injected script or handler ran.
func notPwned(t *testing.T, ctx context.Context) {
	t.Helper()
	if v := evalJS[string](t, ctx, "String(window.__pwned)"); v != "undefined" {
		t.Fatalf("injected script ran: window.__pwned = %q", v)
	}
	if title := evalJS[string](t, ctx, "document.title"); title == "pwned" {
		t.Fatalf("injected script set the title: %q", title)
	}
}

// TestUIInBrowser drives the web UI in a real headless Chromium: the seed's
// service listed with its health, health changing live, the finder, a
// registration with a validation error next to its field and then a good
// one, disable and remove, and untrusted text that stays text.
func TestUIInBrowser(t *testing.T) {
	e := newUIEnv(t, Options{})
	e.health.set("customer-support-assistant", registry.Health{Status: registry.HealthAuthRequired, LastChecked: time.Now()})
	e.register(t, hostile)
	echo := upstreamtest.New(t, upstreamtest.Options{Name: "weather"})
	ctx := newBrowser(t)
	seedRow := rowExpr(seedServerPath)

	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow() // later steps build on this one
		}
	}

	step("the seed's service is listed with its health", func(t *testing.T) {
		browse(t, ctx, chromedp.Navigate(e.srv.URL+"/"))
		waitJS(t, ctx, "the seed's row", seedRow)
		if got := evalJS[string](t, ctx, seedRow+".querySelector('.name a').textContent"); got != "customer-support-assistant" {
			t.Fatalf("name cell = %q", got)
		}
		if got := evalJS[string](t, ctx, seedRow+".querySelector('.health .badge').textContent"); got != registry.HealthAuthRequired {
			t.Fatalf("health = %q, want %q", got, registry.HealthAuthRequired)
		}
		if got := evalJS[string](t, ctx, seedRow+".querySelector('.tools').textContent"); got != "2" {
			t.Fatalf("tools = %q, want 2", got)
		}
		if got := evalJS[string](t, ctx, seedRow+".querySelector('.health .checked').textContent"); !strings.HasSuffix(got, "ago") {
			t.Fatalf("last check = %q, want a relative time", got)
		}
		if got := evalJS[string](t, ctx, seedRow+".querySelector('.tags').textContent"); !strings.Contains(got, "warranty") {
			t.Fatalf("tags = %q", got)
		}
		if evalJS[bool](t, ctx, "!document.querySelector('#register-open').hidden") {
			t.Fatal("an anonymous visitor sees the register button")
		}
	})

	step("health updates live", func(t *testing.T) {
		e.health.set("customer-support-assistant", registry.Health{Status: registry.HealthUnhealthy, Reason: "connection refused", LastChecked: time.Now()})
		waitJS(t, ctx, "the row to show unhealthy", seedRow+".querySelector('.health .badge').textContent === 'unhealthy'")
		if got := evalJS[string](t, ctx, seedRow+".querySelector('.health .reason').textContent"); got != "connection refused" {
			t.Fatalf("reason = %q", got)
		}
		e.health.set("customer-support-assistant", registry.Health{Status: registry.HealthAuthRequired, LastChecked: time.Now()})
		waitJS(t, ctx, "the row to recover", seedRow+".querySelector('.health .badge').textContent === 'healthy-auth-required'")
	})

	step("untrusted text in the list stays text", func(t *testing.T) {
		row := rowExpr("/evil")
		waitJS(t, ctx, "the hostile row", row)
		if got := evalJS[string](t, ctx, row+".querySelector('.name a').textContent"); got != hostile["server_name"] {
			t.Fatalf("name rendered as %q", got)
		}
		if got := evalJS[string](t, ctx, row+".querySelector('.desc').textContent"); got != hostile["description"] {
			t.Fatalf("description rendered as %q", got)
		}
		if n := evalJS[int](t, ctx, row+".querySelectorAll('img, script, svg, b').length"); n != 0 {
			t.Fatalf("the row holds %d elements built from data", n)
		}
		notPwned(t, ctx)
	})

	step("tag chips filter the table", func(t *testing.T) {
		browse(t, ctx, chromedp.Click(chromedp.CSS(`#tags .chip[data-tag="warranty"]`)))
		waitJS(t, ctx, "the filter", "document.querySelectorAll('#services tbody tr').length === 1 && "+seedRow)
		browse(t, ctx, chromedp.Click(chromedp.CSS(`#tags .chip[data-tag="warranty"]`)))
		waitJS(t, ctx, "the filter to clear", "document.querySelectorAll('#services tbody tr').length === 2")
	})

	step("search finds the warranty tool", func(t *testing.T) {
		browse(t, ctx, chromedp.SendKeys(chromedp.CSS("#search-q"), "warranty"), chromedp.Click(chromedp.CSS("#search-form button")))
		waitJS(t, ctx, "the search result", `document.querySelector('#search-results li.result[data-tool="LambdaUsingSDK___check_warranty_status"]')`)
		first := evalJS[string](t, ctx, "document.querySelector('#search-results li.result').dataset.tool")
		if first != "LambdaUsingSDK___check_warranty_status" {
			t.Fatalf("best result = %q", first)
		}
		if got := evalJS[string](t, ctx, "document.querySelector('#search-results li.result a').textContent"); got != "customer-support-assistant" {
			t.Fatalf("result's service = %q", got)
		}
	})

	step("detail view shows tools, schemas and client snippets", func(t *testing.T) {
		browse(t, ctx, chromedp.Navigate(e.srv.URL+"/ui/servers/customer-support-assistant"))
		waitJS(t, ctx, "the tools", `document.querySelector('.tool[data-tool="LambdaUsingSDK___get_customer_profile"]')`)
		if got := evalJS[string](t, ctx, "document.querySelector('#detail-name').textContent"); got != "customer-support-assistant" {
			t.Fatalf("name = %q", got)
		}
		schema := evalJS[string](t, ctx, `document.querySelector('.tool[data-tool="LambdaUsingSDK___check_warranty_status"] pre.schema').textContent`)
		if !strings.Contains(schema, `"serial_number"`) {
			t.Fatalf("schema = %q", schema)
		}
		facts := evalJS[string](t, ctx, "document.querySelector('dl.facts').textContent")
		if !strings.Contains(facts, "Authorization: ***") || strings.Contains(facts, "CUSTOMER_SUPPORT_AUTH_TOKEN") || strings.Contains(facts, "[object") {
			t.Fatalf("facts = %q, want the header name with its value redacted", facts)
		}
		snippets := evalJS[string](t, ctx, "Array.from(document.querySelectorAll('pre.snippet')).map(p => p.textContent).join('\\n')")
		for _, want := range []string{e.srv.URL + "/customer-support-assistant/mcp", e.srv.URL + "/mcpgw/mcp", "mcp-remote", "X-Authorization", "UPSTREAM_AUTH"} {
			if !strings.Contains(snippets, want) {
				t.Errorf("client snippets lack %q:\n%s", want, snippets)
			}
		}
		for _, tab := range []string{"VS Code", "Cursor"} {
			ok := evalJS[bool](t, ctx, `(() => { const b = Array.from(document.querySelectorAll('.snippet-card .tabs button')).find(b => b.textContent === `+jsString(tab)+`); b.click(); return b.getAttribute('aria-selected') === 'true'; })()`)
			if !ok {
				t.Fatalf("the %s tab did not open", tab)
			}
		}
		var vscode map[string]any
		browse(t, ctx, chromedp.Click(chromedp.CSS(".snippet-card .tabs button:nth-child(2)")))
		text := evalJS[string](t, ctx, "document.querySelector('pre.snippet').textContent")
		if err := json.Unmarshal([]byte(text), &vscode); err != nil || vscode["servers"] == nil {
			t.Fatalf("the VS Code snippet is not mcp.json: %v\n%s", err, text)
		}
	})

	step("untrusted text in the detail view stays text", func(t *testing.T) {
		browse(t, ctx, chromedp.Navigate(e.srv.URL+"/ui/servers/evil"))
		waitJS(t, ctx, "the hostile detail", "document.querySelector('#detail-description')")
		if got := evalJS[string](t, ctx, "document.querySelector('#detail-description').textContent"); got != hostile["description"] {
			t.Fatalf("description = %q", got)
		}
		if n := evalJS[int](t, ctx, "document.querySelectorAll('#detail img, #detail script, #detail svg, #detail b').length"); n != 0 {
			t.Fatalf("the detail holds %d elements built from data", n)
		}
		if got := evalJS[string](t, ctx, "document.querySelector('.tool pre.schema').textContent"); !strings.Contains(got, "</pre><script>") {
			t.Fatalf("schema = %q", got)
		}
		notPwned(t, ctx)
	})

	step("sign in with the admin key", func(t *testing.T) {
		browse(t, ctx, chromedp.Navigate(e.srv.URL+"/"))
		waitJS(t, ctx, "the page", seedRow)
		browse(t, ctx, chromedp.Click(chromedp.CSS("#signin-open")), chromedp.SendKeys(chromedp.CSS("#signin-token"), "not-a-key"),
			chromedp.Click(chromedp.CSS("#signin-form button[type=submit]")))
		waitJS(t, ctx, "the sign-in error", `document.querySelector('#signin .field[data-field="token"] .field-error').textContent.includes('not valid')`)
		browse(t, ctx, clearInput("#signin-token"), chromedp.SendKeys(chromedp.CSS("#signin-token"), e.admin),
			chromedp.Click(chromedp.CSS("#signin-form button[type=submit]")))
		waitJS(t, ctx, "the admin controls", "!document.querySelector('#register-open').hidden && "+seedRow)
		if got := evalJS[string](t, ctx, "document.querySelector('#subject').textContent"); got != "apikey:local-admin" {
			t.Fatalf("subject = %q", got)
		}
		if evalJS[bool](t, ctx, "document.cookie.includes('mcpgw_session')") {
			t.Fatal("the session cookie is readable from script; it must be HttpOnly")
		}
		if strings.Contains(evalJS[string](t, ctx, "document.documentElement.outerHTML"), e.admin) {
			t.Fatal("the API key is in the page")
		}
	})

	step("registration errors are shown next to their fields", func(t *testing.T) {
		browse(t, ctx, chromedp.Click(chromedp.CSS("#register-open")),
			chromedp.SendKeys(chromedp.CSS("#f-server_name"), "weather"),
			chromedp.SendKeys(chromedp.CSS("#f-path"), "/Weather Tools"),
			chromedp.SendKeys(chromedp.CSS("#f-proxy_pass_url"), "ftp://example.com/mcp"),
			chromedp.Click(chromedp.CSS("#register-form button[type=submit]")))
		pathErr := `document.querySelector('#register .field[data-field="path"] .field-error').textContent`
		waitJS(t, ctx, "the path error", pathErr+" !== ''")
		if got := evalJS[string](t, ctx, `document.querySelector('#register .field[data-field="proxy_pass_url"] .field-error').textContent`); got == "" {
			t.Fatal("no error next to proxy_pass_url")
		}
		if got := evalJS[string](t, ctx, `document.querySelector('#register .field[data-field="server_name"] .field-error').textContent`); got != "" {
			t.Fatalf("an error next to the valid name: %q", got)
		}
		if !evalJS[bool](t, ctx, `document.querySelector('#register .field[data-field="path"]').classList.contains('invalid')`) {
			t.Fatal("the path field is not marked invalid")
		}
		if _, err := e.reg.Get(context.Background(), "weather"); err == nil {
			t.Fatal("an invalid registration was stored")
		}
	})

	step("register through the form", func(t *testing.T) {
		browse(t, ctx, clearInput("#f-path"), chromedp.SendKeys(chromedp.CSS("#f-path"), "/weather"),
			clearInput("#f-proxy_pass_url"), chromedp.SendKeys(chromedp.CSS("#f-proxy_pass_url"), echo.URL),
			chromedp.SendKeys(chromedp.CSS("#f-tags"), "weather, forecast"),
			chromedp.SendKeys(chromedp.CSS("#f-headers"), "X-Api-Key: $WEATHER_KEY"),
			chromedp.Click(chromedp.CSS("#register-form button[type=submit]")))
		waitJS(t, ctx, "the new row", rowExpr("/weather"))
		s, err := e.reg.Get(context.Background(), "weather")
		if err != nil {
			t.Fatal(err)
		}
		if s.ServerName != "weather" || s.ProxyPassURL != echo.URL || len(s.Tags) != 2 || len(s.Headers) != 1 || s.Headers[0].Value.Reveal() != "$WEATHER_KEY" {
			t.Fatalf("stored %+v", s)
		}
		if !evalJS[bool](t, ctx, "document.querySelector('#register').hidden") {
			t.Fatal("the form stayed open after a successful registration")
		}
	})

	step("paste JSON with an error", func(t *testing.T) {
		browse(t, ctx, chromedp.Click(chromedp.CSS("#register-open")), chromedp.Click(chromedp.CSS(`#register .tabs [data-mode="json"]`)),
			chromedp.SendKeys(chromedp.CSS("#f-json"), `{"server_name": "x", "path": "/mcpgw", "proxy_pass_url": "http://127.0.0.1:1/mcp"}`),
			chromedp.Click(chromedp.CSS("#register-form button[type=submit]")))
		waitJS(t, ctx, "the JSON problems", `document.querySelector('#register .problems li[data-problem-field="path"]')`)
		browse(t, ctx, chromedp.Click(chromedp.CSS("#register-cancel")))
	})

	step("disable and see the state change", func(t *testing.T) {
		row := rowExpr("/weather")
		browse(t, ctx, chromedp.Click(chromedp.CSS(`#services tr[data-path="/weather"] button[data-action="disable"]`)))
		waitJS(t, ctx, "the row to show disabled", row+".querySelector('.enabled .badge').textContent === 'no' && "+row+".querySelector('.health .badge').textContent === 'disabled'")
		s, err := e.reg.Get(context.Background(), "weather")
		if err != nil || s.Enabled {
			t.Fatalf("stored enabled=%v err=%v", s != nil && s.Enabled, err)
		}
		browse(t, ctx, chromedp.Click(chromedp.CSS(`#services tr[data-path="/weather"] button[data-action="enable"]`)))
		waitJS(t, ctx, "the row to show enabled", row+".querySelector('.enabled .badge').textContent === 'yes'")
	})

	step("remove with confirmation", func(t *testing.T) {
		browse(t, ctx, chromedp.Click(chromedp.CSS(`#services tr[data-path="/weather"] button[data-action="remove"]`)))
		waitJS(t, ctx, "the confirmation", "document.querySelector('#confirm').open")
		browse(t, ctx, chromedp.Click(chromedp.CSS(`#confirm button[value="cancel"]`)))
		waitJS(t, ctx, "the dialog to close", "!document.querySelector('#confirm').open")
		if _, err := e.reg.Get(context.Background(), "weather"); err != nil {
			t.Fatalf("cancel removed the server: %v", err)
		}
		browse(t, ctx, chromedp.Click(chromedp.CSS(`#services tr[data-path="/weather"] button[data-action="remove"]`)),
			chromedp.Click(chromedp.CSS("#confirm-ok")))
		waitJS(t, ctx, "the row to go", "!"+rowExpr("/weather"))
		if _, err := e.reg.Get(context.Background(), "weather"); err == nil {
			t.Fatal("the server is still registered")
		}
		notPwned(t, ctx)
	})

	step("screenshot", func(t *testing.T) {
		e.reg.Remove(context.Background(), "evil") //nolint:errcheck // the picture shows a plain registry
		e.health.set("customer-support-assistant", registry.Health{Status: registry.HealthAuthRequired, LastChecked: time.Now()})
		e.register(t, map[string]any{"server_name": "weather", "path": "/weather", "proxy_pass_url": echo.URL,
			"description": "Forecasts and current conditions by city", "tags": []string{"weather", "forecast"},
			"tool_list": []any{map[string]any{"name": "get_forecast"}, map[string]any{"name": "get_conditions"}}})
		e.health.set("weather", registry.Health{Status: registry.HealthHealthy, LastChecked: time.Now()})
		e.register(t, map[string]any{"server_name": "github", "path": "/github", "proxy_pass_url": "http://127.0.0.1:9/mcp",
			"description": "Issues and pull requests", "tags": []string{"code", "github"}})
		e.health.set("github", registry.Health{Status: registry.HealthUnhealthy, Reason: "connection refused", LastChecked: time.Now()})
		browse(t, ctx, chromedp.Navigate(e.srv.URL+"/"))
		waitJS(t, ctx, "the rows", "document.querySelectorAll('#services tbody tr').length === 3")
		browse(t, ctx, chromedp.SendKeys(chromedp.CSS("#search-q"), "check warranty"), chromedp.Click(chromedp.CSS("#search-form button")))
		waitJS(t, ctx, "the results", "document.querySelector('#search-results li.result')")
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "main.png")
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot of the main page: %s", out)
		browse(t, ctx, chromedp.Navigate(e.srv.URL+"/ui/servers/customer-support-assistant"))
		waitJS(t, ctx, "the detail", "document.querySelector('.tool pre.schema')")
		browse(t, ctx, chromedp.Click(chromedp.CSS(".tool details summary")))
		detail, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(filepath.Dir(out), "detail.png"), detail, 0o644); err != nil {
			t.Fatal(err)
		}
		if *updateScreenshot {
			if err := os.WriteFile("../docs/screenshot.png", png, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile("../docs/screenshot-detail.png", detail, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// signIn posts key to /ui/login and returns the session cookie and the CSRF
// token.
func (e *uiEnv) signIn(t *testing.T, key string) (*http.Cookie, string) {
	t.Helper()
	resp, body := e.do(t, "POST", "/ui/login", []byte(`{"token":`+jsString(key)+`}`), map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, body)
	}
	var r signInResponse
	if err := json.Unmarshal(body, &r); err != nil || r.CSRF == "" {
		t.Fatalf("sign-in answer %s: %v", body, err)
	}
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			return c, r.CSRF
		}
	}
	t.Fatal("sign-in set no session cookie")
	return nil, ""
}

func TestUISignInCookie(t *testing.T) {
	e := newUIEnv(t, Options{})
	resp, body := e.do(t, "POST", "/ui/login", []byte(`{"token":`+jsString(e.admin)+`}`), map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, body)
	}
	var c *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == sessionCookie {
			c = k
		}
	}
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure || c.MaxAge <= 0 {
		t.Fatalf("session cookie = %+v", c)
	}
	if strings.Contains(c.Value, e.admin) || strings.Contains(resp.Header.Get("Set-Cookie"), e.admin) {
		t.Fatal("the cookie holds the API key in clear")
	}

	t.Run("secure when the public URL is https", func(t *testing.T) {
		e2 := newUIEnv(t, Options{PublicURL: "https://gw.example.com"})
		resp, body := e2.do(t, "POST", "/ui/login", []byte(`{"token":`+jsString(e2.admin)+`}`), map[string]string{"Content-Type": "application/json"})
		set := resp.Header.Get("Set-Cookie")
		// __Host-: browsers keep it only from this host, Secure, Path=/,
		// so no sibling subdomain can plant a session of its own.
		if !strings.HasPrefix(set, "__Host-"+sessionCookie+"=") || !strings.Contains(set, "Secure") || !strings.Contains(set, "Path=/") || strings.Contains(set, "Domain=") {
			t.Fatalf("Set-Cookie = %q", set)
		}
		var in signInResponse
		if err := json.Unmarshal(body, &in); err != nil {
			t.Fatal(err)
		}
		cookie := strings.SplitN(set, ";", 2)[0]
		disable := "/api/v1/servers/x/disable"
		if r, b := e2.do(t, "POST", disable, nil, map[string]string{"Cookie": cookie, csrfHeader: in.CSRF}); r.StatusCode == http.StatusUnauthorized || r.StatusCode == http.StatusForbidden {
			t.Errorf("the __Host- session cookie was not read back: %d %s", r.StatusCode, b)
		}
		plain := sessionCookie + "=" + strings.SplitN(cookie, "=", 2)[1]
		if r, _ := e2.do(t, "POST", disable, nil, map[string]string{"Cookie": plain, csrfHeader: in.CSRF}); r.StatusCode != http.StatusUnauthorized && r.StatusCode != http.StatusForbidden {
			t.Errorf("a session cookie without the prefix was accepted over HTTPS: %d", r.StatusCode)
		}
	})

	refusals := []struct {
		name    string
		body    string
		headers map[string]string
		status  int
	}{
		{"bad key", `{"token":"mcpgw_not-a-key"}`, map[string]string{"Content-Type": "application/json"}, http.StatusUnauthorized},
		{"no key", `{"token":""}`, map[string]string{"Content-Type": "application/json"}, http.StatusBadRequest},
		{"form post (cross-site forms cannot send JSON)", "token=" + e.admin, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
		{"other origin", `{"token":` + jsString(e.admin) + `}`, map[string]string{"Content-Type": "application/json", "Origin": "http://127.0.0.1:1"}, http.StatusForbidden},
		{"cross-site fetch", `{"token":` + jsString(e.admin) + `}`, map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.do(t, "POST", "/ui/login", []byte(tc.body), tc.headers)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if resp.Header.Get("Set-Cookie") != "" {
				t.Fatal("a refused sign-in set a cookie")
			}
		})
	}
}

// TestUICSRF proves that a state-changing request carried by the session
// cookie needs the session's CSRF token, and that the cookie is ingress only
// for the UI's own calls.
func TestUICSRF(t *testing.T) {
	e := newUIEnv(t, Options{})
	cookie, csrf := e.signIn(t, e.admin)
	withCookie := func(h map[string]string) map[string]string {
		out := map[string]string{"Cookie": cookie.String()}
		for k, v := range h {
			out[k] = v
		}
		return out
	}
	disable := "/api/v1/servers/customer-support-assistant/disable"

	cases := []struct {
		name    string
		method  string
		path    string
		headers map[string]string
		status  int
	}{
		{"read with the cookie", "GET", "/api/v1/servers", withCookie(nil), http.StatusOK},
		{"POST without the token is refused", "POST", disable, withCookie(nil), http.StatusForbidden},
		{"POST with a wrong token is refused", "POST", disable, withCookie(map[string]string{csrfHeader: csrf + "x"}), http.StatusForbidden},
		{"DELETE without the token is refused", "DELETE", "/api/v1/servers/customer-support-assistant", withCookie(nil), http.StatusForbidden},
		{"POST from another origin is refused", "POST", disable, withCookie(map[string]string{csrfHeader: csrf, "Origin": "http://127.0.0.1:1"}), http.StatusForbidden},
		{"sign-out without the token is refused", "POST", "/ui/logout", withCookie(nil), http.StatusForbidden},
		{"a tampered cookie is refused", "POST", disable, map[string]string{"Cookie": sessionCookie + "=AAAA" + cookie.Value[4:], csrfHeader: csrf}, http.StatusForbidden},
		{"the cookie alone is not an admin token for a bearer-less script", "POST", disable, map[string]string{csrfHeader: csrf}, http.StatusUnauthorized},
		{"POST with the token works", "POST", disable, withCookie(map[string]string{csrfHeader: csrf}), http.StatusOK},
		{"a bearer token needs no CSRF token", "POST", "/api/v1/servers/customer-support-assistant/enable", withCookie(map[string]string{"Authorization": "Bearer " + e.admin}), http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.do(t, tc.method, tc.path, nil, tc.headers)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
		})
	}
	s, err := e.reg.Get(context.Background(), "customer-support-assistant")
	if err != nil || !s.Enabled {
		t.Fatalf("after the cases the seed should be enabled again: %v", err)
	}

	t.Run("the cookie is not ingress for the meta server", func(t *testing.T) {
		hdr := withCookie(map[string]string{csrfHeader: csrf})
		if tools := metaToolNames(t, e.testEnv, hdr); strings.Contains(tools, "register_service") {
			t.Fatalf("the cookie made the meta server see an admin: %s", tools)
		}
		hdr["Authorization"] = "Bearer " + e.admin
		if tools := metaToolNames(t, e.testEnv, hdr); !strings.Contains(tools, "register_service") {
			t.Fatalf("the admin token does not show admin tools, so the check above proves nothing: %s", tools)
		}
	})

	t.Run("the relay drops the cookie", func(t *testing.T) {
		resp, body := e.do(t, "POST", "/customer-support-assistant/mcp", []byte(initializeBody), withCookie(map[string]string{
			"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
			"Authorization": "Bearer " + upstreamtest.AgentCoreToken,
		}))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("relay: %d %s", resp.StatusCode, body)
		}
		if got := e.agentcore.LastHeader("Cookie"); got != "" {
			t.Fatalf("the upstream received Cookie %q", got)
		}
	})

	t.Run("sign-out clears the cookie", func(t *testing.T) {
		resp, body := e.do(t, "POST", "/ui/logout", nil, withCookie(map[string]string{csrfHeader: csrf}))
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Set-Cookie"), "Max-Age=0") {
			t.Fatalf("sign-out: %d %q %s", resp.StatusCode, resp.Header.Get("Set-Cookie"), body)
		}
	})
}

// TestUIPolicy checks that a signed-in user sees only what the policy lets
// them see, and no admin controls without admin rights.
func TestUIPolicy(t *testing.T) {
	e := newUIEnv(t, Options{})
	e.register(t, map[string]any{"server_name": "internal", "path": "/internal", "proxy_pass_url": "http://127.0.0.1:9/mcp"})
	doc := `{"group_mappings":{"support-team":["support"]},"scopes":{"support":[{"server":"customer-support-assistant","methods":["*"],"tools":["*"]}]}}`
	servers, _ := e.reg.List(context.Background())
	if _, err := e.policy.Replace(context.Background(), []byte(doc), servers); err != nil {
		t.Fatal(err)
	}
	key, err := auth.NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.PutAPIKey(context.Background(), registry.APIKey{Name: "alice", Hash: auth.HashKey(key), Groups: []string{"support-team"}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	cookie, csrf := e.signIn(t, key)
	hdr := map[string]string{"Cookie": cookie.String()}

	_, body := e.do(t, "GET", "/api/v1/servers", nil, hdr)
	var l serviceList
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Services) != 1 || l.Services[0].Path != seedServerPath {
		t.Fatalf("alice sees %s", body)
	}
	resp, _ := e.do(t, "GET", "/api/v1/servers/internal", nil, hdr)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("alice's GET of a hidden server: %d", resp.StatusCode)
	}
	resp, _ = e.do(t, "POST", "/api/v1/servers/customer-support-assistant/disable", nil, map[string]string{"Cookie": cookie.String(), csrfHeader: csrf})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("alice's disable: %d", resp.StatusCode)
	}
	resp, page := e.do(t, "GET", "/", nil, map[string]string{"Cookie": cookie.String(), "Accept": "text/html"})
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), `data-admin="false"`) || !strings.Contains(string(page), `data-subject="apikey:alice"`) {
		t.Fatalf("page for alice: %d\n%s", resp.StatusCode, page)
	}
}

func TestUIPagesAndStatic(t *testing.T) {
	e := newUIEnv(t, Options{Version: `1.0 "<b>"`})
	cases := []struct {
		name, path, accept string
		status             int
		contentType        string
		contains           string
	}{
		{"page for browsers", "/", "text/html,application/xhtml+xml", 200, "text/html", `<script src="/static/app.js" defer></script>`},
		{"page escapes what it renders", "/", "text/html", 200, "text/html", `data-version="1.0 &#34;&lt;b&gt;&#34;"`},
		{"JSON index for API clients", "/", "application/json", 200, "application/json", `"mcp":`},
		{"detail page", "/ui/servers/customer-support-assistant/", "text/html", 200, "text/html", `data-path="/customer-support-assistant"`},
		{"script", "/static/app.js", "", 200, "text/javascript", "textContent"},
		{"stylesheet", "/static/app.css", "", 200, "text/css", ":root"},
		{"no file", "/static/nope.js", "", 404, "application/json", "no file"},
		{"no escape from static", "/static/../ui.go", "", 404, "application/json", ""},
		{"no page", "/ui/nope", "", 404, "application/json", "no page"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.do(t, "GET", tc.path, nil, map[string]string{"Accept": tc.accept})
			if resp.StatusCode != tc.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.contentType) || !strings.Contains(string(body), tc.contains) {
				t.Fatalf("%d %q:\n%.400s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			if tc.contentType == "text/html" {
				csp := resp.Header.Get("Content-Security-Policy")
				if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
					t.Fatalf("CSP = %q", csp)
				}
			}
		})
	}
	// Every file the page references is served.
	_, page := e.do(t, "GET", "/", nil, map[string]string{"Accept": "text/html"})
	for _, ref := range []string{"/static/app.js", "/static/app.css"} {
		if !strings.Contains(string(page), ref) {
			t.Errorf("the page does not reference %s", ref)
		}
	}
}

const initializeBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"ui-test","version":"1"}}}`

// metaToolNames initializes a session with the meta server and returns its
// tools/list answer, sending hdr on both requests.
func metaToolNames(t *testing.T, e *testEnv, hdr map[string]string) string {
	t.Helper()
	h := map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
	for k, v := range hdr {
		h[k] = v
	}
	resp, body := e.do(t, "POST", "/mcpgw/mcp", []byte(initializeBody), h)
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %d %s", resp.StatusCode, body)
	}
	h["Mcp-Session-Id"] = sid
	h["MCP-Protocol-Version"] = "2025-06-18"
	resp, body = e.do(t, "POST", "/mcpgw/mcp", []byte(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`), h)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "list_services") {
		t.Fatalf("tools/list: %d %s", resp.StatusCode, body)
	}
	return string(body)
}

// TestUIAsksToSignIn checks the page of a gateway that denies anonymous
// callers (a stored policy): it offers the sign-in instead of an empty table.
func TestUIAsksToSignIn(t *testing.T) {
	e := newUIEnv(t, Options{})
	servers, _ := e.reg.List(context.Background())
	if _, err := e.policy.Replace(context.Background(), []byte(`{"group_mappings":{},"scopes":{}}`), servers); err != nil {
		t.Fatal(err)
	}
	ctx := newBrowser(t)
	browse(t, ctx, chromedp.Navigate(e.srv.URL+"/"))
	waitJS(t, ctx, "the sign-in form", "!document.querySelector('#signin').hidden && document.querySelector('#banner').textContent.includes('sign in')")
	browse(t, ctx, chromedp.SendKeys(chromedp.CSS("#signin-token"), e.admin), chromedp.Click(chromedp.CSS("#signin-form button[type=submit]")))
	waitJS(t, ctx, "the services after sign-in", rowExpr(seedServerPath))
}

// TestUIWithoutFinder checks that search degrades with a clear message on a
// gateway built without the finder.
func TestUIWithoutFinder(t *testing.T) {
	e := newUIEnv(t, Options{}, func(d *Deps) { d.Finder = nil })
	ctx := newBrowser(t)
	browse(t, ctx, chromedp.Navigate(e.srv.URL+"/"))
	waitJS(t, ctx, "the page", rowExpr(seedServerPath))
	browse(t, ctx, chromedp.SendKeys(chromedp.CSS("#search-q"), "warranty"), chromedp.Click(chromedp.CSS("#search-form button")))
	waitJS(t, ctx, "the message", "(document.querySelector('#search-error') || {}).textContent")
	if got := evalJS[string](t, ctx, "document.querySelector('#search-error').textContent"); !strings.Contains(got, "tool finder is not available") {
		t.Fatalf("message = %q", got)
	}
	if !evalJS[bool](t, ctx, "!!"+rowExpr(seedServerPath)) {
		t.Fatal("the table went away with the failed search")
	}
}
