package gateway

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/registry"
)

// The web UI is one HTML template and a little hand-written JavaScript and
// CSS, embedded in the binary: no build step, no CDN, it works offline. The
// page renders every piece of registry data with textContent, never as
// HTML, and its Content-Security-Policy allows only the embedded script, so
// a <script> in a server's description stays text.
//
//go:embed ui
var uiFiles embed.FS

var (
	uiTemplate = template.Must(template.ParseFS(uiFiles, "ui/index.html"))
	uiStatic   = func() fs.FS { s, _ := fs.Sub(uiFiles, "ui/static"); return s }()
)

// Cookies of the UI session.
const (
	sessionCookie = "mcpgw_session"
	// sessionAAD binds sealed sessions to the UI: a path key never holds
	// a NUL, so a sealed relay session id can never pass as a UI session.
	sessionAAD = "\x00mcpgw-ui-session"
	// sessionTTL is how long a UI sign-in lasts; the token inside is
	// verified again on every request, so revoking a key ends it at once.
	sessionTTL = 12 * time.Hour
	// csrfHeader carries the session's CSRF token on state-changing requests.
	csrfHeader = "X-CSRF-Token"
	// defaultUIPoll is how often the page re-reads services and health.
	defaultUIPoll = 5 * time.Second
)

// uiCSP allows the page nothing but its own embedded files and same-origin
// API calls: no inline script, no eval, no third-party origin.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// UILogin is the hook for an interactive sign-in to the web UI, such as the
// OIDC authorization-code flow with PKCE. The UI offers it next to pasting
// an API key: GET /ui/login/start calls Start, and the identity provider
// redirects back to GET /ui/callback, which calls Finish. The token Finish
// returns must be one the gateway's Verifier accepts; it is kept sealed in
// the HttpOnly session cookie and verified again on every request.
type UILogin interface {
	// Name labels the sign-in button, e.g. "Sign in with Keycloak".
	Name() string
	// Start sends the browser to the identity provider; callbackURL is
	// the gateway's /ui/callback as the browser reaches it.
	Start(w http.ResponseWriter, r *http.Request, callbackURL string)
	// Finish completes the flow from the callback request.
	Finish(r *http.Request, callbackURL string) (token string, err error)
}

// SetUILogin installs the interactive sign-in of the web UI. Call it before
// the gateway serves.
func (g *Gateway) SetUILogin(l UILogin) { g.uiLogin = l }

// uiSession is the content of the sealed session cookie.
type uiSession struct {
	Token   string `json:"t"`
	CSRF    string `json:"c"`
	Expires int64  `json:"e"`
}

// pageData is what the template renders into the page's data attributes;
// the script reads them from there (the CSP forbids inline scripts).
type pageData struct {
	View      string
	Path      string
	Version   string
	Subject   string
	SignedIn  bool
	Admin     bool
	CSRF      string
	PublicURL string
	PollMS    int64
	LoginName string
	Error     string
}

// serveUI serves the pages and endpoints under /ui/ and the page at /.
func (g *Gateway) serveUI(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/" || p == "/ui/" || p == "/ui":
		g.servePage(w, r, pageData{View: "list"})
	case strings.HasPrefix(p, "/ui/servers/"):
		key := registry.PathKey(strings.TrimPrefix(p, "/ui/servers/"))
		if key == "" {
			http.Redirect(w, r, "/", http.StatusFound)
			return
		}
		g.servePage(w, r, pageData{View: "detail", Path: "/" + key})
	case p == "/ui/login":
		g.uiSignIn(w, r)
	case p == "/ui/logout":
		g.uiSignOut(w, r)
	case p == "/ui/login/start" && g.uiLogin != nil:
		g.uiLogin.Start(w, r, g.publicURL(r)+"/ui/callback")
	case p == "/ui/callback" && g.uiLogin != nil:
		g.uiCallback(w, r)
	default:
		writeError(w, r, http.StatusNotFound, "no page at "+p, nil)
	}
}

func (g *Gateway) servePage(w http.ResponseWriter, r *http.Request, d pageData) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r, "GET")
		return
	}
	d.Version = g.opts.Version
	d.PublicURL = g.publicURL(r)
	d.PollMS = g.uiPoll.Milliseconds()
	if d.PollMS <= 0 {
		d.PollMS = defaultUIPoll.Milliseconds()
	}
	if g.uiLogin != nil {
		d.LoginName = g.uiLogin.Name()
	}
	if s, ok := g.readSession(r); ok {
		if pr, err := g.verify.Verify(r.Context(), s.Token); err == nil {
			d.SignedIn, d.Subject, d.CSRF = true, pr.Subject, s.CSRF
			d.Admin = g.policy.Allowed(pr, "*", auth.ActionAdmin, "")
		}
	}
	setPageHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := uiTemplate.Execute(w, d); err != nil {
		logFrom(r.Context()).Error().Err(err).Msg("ui: render page")
	}
}

func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// serveStatic serves the embedded script, stylesheet and icon.
func (g *Gateway) serveStatic(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r, "GET")
		return
	}
	name := strings.TrimPrefix(path.Clean(r.URL.Path), "/static/")
	b, err := fs.ReadFile(uiStatic, name)
	if err != nil {
		writeError(w, r, http.StatusNotFound, "no file at "+r.URL.Path, nil)
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// The files change only with the binary; revalidating on each load
	// keeps an upgraded gateway from serving a page with an old script.
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

type signInRequest struct {
	Token string `json:"token"`
}

type signInResponse struct {
	Subject string `json:"subject"`
	Admin   bool   `json:"admin"`
	CSRF    string `json:"csrf"`
}

// uiSignIn verifies a pasted API key (or any token the Verifier accepts)
// and keeps it in the sealed session cookie. It accepts only a JSON body
// from the same origin: a cross-site form cannot send one.
func (g *Gateway) uiSignIn(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, r, "POST")
		return
	}
	if reason := crossSite(r, g.publicURL(r)); reason != "" {
		writeError(w, r, http.StatusForbidden, reason, nil)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeError(w, r, http.StatusUnsupportedMediaType, `sign-in needs a JSON body {"token": "<API key>"}`, nil)
		return
	}
	body, ok := g.readBody(w, r)
	if !ok {
		return
	}
	var req signInRequest
	if err := json.Unmarshal(body, &req); err != nil || strings.TrimSpace(req.Token) == "" {
		writeError(w, r, http.StatusBadRequest, "paste an API key to sign in", []registry.Problem{{Field: "token", Reason: "is required"}})
		return
	}
	tok := strings.TrimSpace(req.Token)
	tok = strings.TrimSpace(strings.TrimPrefix(tok, "Bearer "))
	p, err := g.verify.Verify(r.Context(), tok)
	noteAuth(r.Context(), p, err)
	if err != nil {
		if errors.Is(err, auth.ErrInvalidToken) || errors.Is(err, auth.ErrNoToken) {
			writeError(w, r, http.StatusUnauthorized, "this API key is not valid or has expired", []registry.Problem{{Field: "token", Reason: "is not a valid API key"}})
			return
		}
		writeErr(w, r, err)
		return
	}
	s := g.setSession(w, r, tok)
	logFrom(r.Context()).Info().Str("subject", p.Subject).Msg("ui sign-in")
	writeJSON(w, http.StatusOK, signInResponse{Subject: p.Subject, Admin: g.policy.Allowed(p, "*", auth.ActionAdmin, ""), CSRF: s.CSRF})
}

// uiSignOut clears the session cookie. The CSRF gate in dispatch has
// already checked the request, so no other site can sign a user out.
func (g *Gateway) uiSignOut(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, r, "POST")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: g.sessionCookieName(r), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: g.secureCookies(r)})
	writeJSON(w, http.StatusOK, map[string]bool{"signed_out": true})
}

func (g *Gateway) uiCallback(w http.ResponseWriter, r *http.Request) {
	tok, err := g.uiLogin.Finish(r, g.publicURL(r)+"/ui/callback")
	if err == nil {
		var p *auth.Principal
		p, err = g.verify.Verify(r.Context(), tok)
		noteAuth(r.Context(), p, err)
	}
	if err != nil {
		logFrom(r.Context()).Warn().Err(err).Msg("ui sign-in failed")
		g.servePage(w, r, pageData{View: "list", Error: "Sign-in failed: " + err.Error()})
		return
	}
	g.setSession(w, r, tok)
	// The provider's redirect to this callback is a cross-site navigation,
	// and browsers send no SameSite=Strict cookie anywhere along it: a 302
	// to / would land on a page that looks signed out. This page moves on
	// to / by itself, a same-site navigation that carries the new session.
	setPageHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(signedInPage))
}

// signedInPage ends a successful OIDC sign-in (see uiCallback).
const signedInPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=/"><title>mcpgw: signed in</title></head>
<body><p>Signed in. <a href="/">Continue to mcpgw</a>.</p></body></html>
`

func (g *Gateway) setSession(w http.ResponseWriter, r *http.Request, token string) uiSession {
	var b [18]byte
	_, _ = rand.Read(b[:])
	s := uiSession{Token: token, CSRF: base64.RawURLEncoding.EncodeToString(b[:]), Expires: time.Now().Add(sessionTTL).Unix()}
	raw, _ := json.Marshal(s)
	http.SetCookie(w, &http.Cookie{
		Name: g.sessionCookieName(r), Value: g.sealer.Seal(sessionAAD, string(raw)), Path: "/",
		MaxAge: int(sessionTTL / time.Second), HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: g.secureCookies(r),
	})
	return s
}

// sessionCookieName is the session cookie's name: over HTTPS it carries
// the __Host- prefix, with which browsers refuse a cookie of that name set
// by another host (a sibling subdomain planting its own session, to sign
// the user in as someone else) or without Secure and Path=/.
func (g *Gateway) sessionCookieName(r *http.Request) string {
	if g.secureCookies(r) {
		return "__Host-" + sessionCookie
	}
	return sessionCookie
}

func (g *Gateway) secureCookies(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(strings.ToLower(g.opts.PublicURL), "https://")
}

// readSession returns the UI session of the request's cookie, if it holds
// one that this gateway sealed and that has not expired.
func (g *Gateway) readSession(r *http.Request) (uiSession, bool) {
	c, err := r.Cookie(g.sessionCookieName(r))
	if err != nil || c.Value == "" {
		return uiSession{}, false
	}
	raw, err := g.sealer.Unseal(sessionAAD, c.Value)
	if err != nil {
		return uiSession{}, false
	}
	var s uiSession
	if json.Unmarshal([]byte(raw), &s) != nil || s.Token == "" || time.Now().Unix() >= s.Expires {
		return uiSession{}, false
	}
	return s, true
}

// sessionToken is the ingress token of the UI session cookie. It counts only
// for the UI's own calls (paths under /api/ and /ui/) and only when the
// request carries no bearer header: never for the relay or the meta server,
// whose callers are not browsers on this origin.
func (g *Gateway) sessionToken(r *http.Request) string {
	if r.Header.Get("Authorization") != "" || r.Header.Get("X-Authorization") != "" {
		return ""
	}
	if p := r.URL.Path; !strings.HasPrefix(p, "/api/") && !strings.HasPrefix(p, "/ui/") {
		return ""
	}
	s, ok := g.readSession(r)
	if !ok {
		return ""
	}
	return s.Token
}

// csrfRefused answers 403 to a state-changing request that a browser could
// have been tricked into sending: one that carries the session cookie (and no
// bearer header of its own) but not the session's CSRF token, or that comes
// from another site. A token in a header is proof of same-origin script,
// since another origin can neither read the token nor set the header
// without a CORS preflight the gateway never grants.
func (g *Gateway) csrfRefused(w http.ResponseWriter, r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	if r.Header.Get("Authorization") != "" || r.Header.Get("X-Authorization") != "" {
		return false
	}
	c, err := r.Cookie(g.sessionCookieName(r))
	if err != nil || c.Value == "" {
		return false
	}
	if reason := crossSite(r, g.publicURL(r)); reason != "" {
		writeError(w, r, http.StatusForbidden, reason, nil)
		return true
	}
	s, ok := g.readSession(r)
	if !ok {
		writeError(w, r, http.StatusForbidden, "the UI session has expired; sign in again", nil)
		return true
	}
	got := r.Header.Get(csrfHeader)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.CSRF)) != 1 {
		writeError(w, r, http.StatusForbidden, "missing or wrong "+csrfHeader+" header: state-changing requests from the UI need the session's CSRF token", nil)
		return true
	}
	return false
}

// crossSite reports why a browser request comes from another site, or ""
// when it comes from this one (or from a non-browser client, which sends
// neither header).
func crossSite(r *http.Request, publicURL string) string {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return "cross-site requests are not allowed"
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return ""
	}
	u, err := url.Parse(o)
	if err == nil && u.Host != "" {
		if strings.EqualFold(u.Host, r.Host) {
			return ""
		}
		if pu, err := url.Parse(publicURL); err == nil && strings.EqualFold(u.Host, pu.Host) {
			return ""
		}
	}
	return "requests from origin " + o + " are not allowed"
}

// wantsHTML reports whether a GET of / comes from a browser rather than a
// client that asked for the JSON index.
func wantsHTML(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return strings.Contains(a, "text/html") || !strings.Contains(a, "application/json")
}
