package authtest

import (
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// A browser's side of the authorization-code flow against the provider's
// development login pages, with plain net/http: the caller's client keeps
// the cookies (give it a cookiejar), these helpers follow the redirects and
// submit the forms. They stop at the redirect back to the client's
// callback, which the test then requests itself (or tampers with).

var (
	formAction  = regexp.MustCompile(`<form[^>]*action="([^"]+)"[^>]*method="post"`)
	hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`)
	abortLink   = regexp.MustCompile(`href="([^"]*/abort)"`)
)

// Begin requests a client's sign-in start URL (such as the gateway's
// /ui/login/start) and returns the provider's authorization URL it
// redirects to; the start's cookies stay in c's jar.
func (p *Provider) Begin(t testing.TB, c *http.Client, startURL string) *url.URL {
	t.Helper()
	resp := p.send(t, c, http.MethodGet, startURL, nil)
	resp.Body.Close()
	loc := location(t, resp)
	if !p.owns(loc) {
		t.Fatalf("GET %s answered %s, redirecting to %v, not to the provider %s", startURL, resp.Status, loc, p.Issuer)
	}
	return loc
}

// SignIn continues at the authorization URL: it signs in as user (any name
// and password pass), consents, and returns the callback URL the provider
// sends the browser back to, without requesting it.
func (p *Provider) SignIn(t testing.TB, c *http.Client, authURL *url.URL, user string) *url.URL {
	t.Helper()
	next, page := p.follow(t, c, http.MethodGet, authURL.String(), nil)
	for step := 0; next == nil; step++ {
		if step > 4 {
			t.Fatalf("the provider's sign-in did not end after %d pages; last page:\n%s", step, page)
		}
		action, fields := form(t, page)
		switch fields.Get("prompt") {
		case "login":
			fields.Set("login", user)
			fields.Set("password", "any password")
		case "consent":
		default:
			t.Fatalf("the provider shows a page this helper does not know:\n%s", page)
		}
		next, page = p.follow(t, c, http.MethodPost, action, fields)
	}
	return next
}

// Decline continues at the authorization URL and cancels at the provider's
// login page; it returns the callback URL with the provider's error.
func (p *Provider) Decline(t testing.TB, c *http.Client, authURL *url.URL) *url.URL {
	t.Helper()
	next, page := p.follow(t, c, http.MethodGet, authURL.String(), nil)
	if next != nil {
		t.Fatalf("the provider sent the browser back at once (%v) instead of showing its login page", next)
	}
	m := abortLink.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no cancel link on the provider's page:\n%s", page)
	}
	next, page = p.follow(t, c, http.MethodGet, html.UnescapeString(m[1]), nil)
	if next == nil {
		t.Fatalf("cancelling did not send the browser back; page:\n%s", page)
	}
	return next
}

// follow sends a request and follows redirects while they stay on the
// provider. It returns the first redirect that leaves the provider (the
// callback), or else the page where the redirects end.
func (p *Provider) follow(t testing.TB, c *http.Client, method, target string, form url.Values) (*url.URL, string) {
	t.Helper()
	for hops := 0; hops < 10; hops++ {
		resp := p.send(t, c, method, target, form)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 300 || resp.StatusCode > 399 {
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s %s: the provider answered %s:\n%s", method, target, resp.Status, body)
			}
			return nil, string(body)
		}
		loc := location(t, resp)
		if !p.owns(loc) {
			return loc, ""
		}
		method, target, form = http.MethodGet, loc.String(), nil
	}
	t.Fatalf("more than 10 redirects from %s", target)
	return nil, ""
}

func (p *Provider) send(t testing.TB, c *http.Client, method, target string, form url.Values) *http.Response {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept", "text/html")
	nc := *c // the same jar and transport, but redirects are ours to follow
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := nc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	return resp
}

func (p *Provider) owns(u *url.URL) bool {
	iss, _ := url.Parse(p.Issuer)
	return u != nil && u.Scheme == iss.Scheme && u.Host == iss.Host
}

func location(t testing.TB, resp *http.Response) *url.URL {
	t.Helper()
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("%s %s answered %s without a usable Location: %v", resp.Request.Method, resp.Request.URL, resp.Status, err)
	}
	return loc
}

// form reads the one form of a provider page: its action and hidden fields.
func form(t testing.TB, page string) (string, url.Values) {
	t.Helper()
	m := formAction.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no form on the provider's page:\n%s", page)
	}
	fields := url.Values{}
	for _, h := range hiddenInput.FindAllStringSubmatch(page, -1) {
		fields.Set(html.UnescapeString(h[1]), html.UnescapeString(h[2]))
	}
	return html.UnescapeString(m[1]), fields
}
