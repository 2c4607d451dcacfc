package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/mcpgw/mcpgw/auth"
)

// The policy and verifier may offer more than the Authorizer and Verifier
// interfaces ask; the gateway uses what they offer (auth.Policy and
// auth.Authenticator offer all of it) and falls back to local-mode
// behaviour when they do not.
type (
	// authRequirer says whether callers must present a token.
	authRequirer interface{ AuthRequired() bool }
	// accessChecker says whether a principal may use the gateway at all.
	accessChecker interface{ HasAccess(p *auth.Principal) bool }
	// toolsRestricter says whether tools/list results for p on server
	// must be filtered.
	toolsRestricter interface {
		ToolsRestricted(p *auth.Principal, server string) bool
	}
	// issuerLister names the OIDC issuers accepted for ingress.
	issuerLister interface{ Issuers() []string }
)

// errNoAccess is a verified caller whom no scope of the policy covers.
var errNoAccess = fmt.Errorf("no access: %w", errForbidden)

// wellKnownResource is the RFC 9728 protected-resource metadata path.
const wellKnownResource = "/.well-known/oauth-protected-resource"

func (g *Gateway) authRequired() bool {
	ar, ok := g.policy.(authRequirer)
	return ok && ar.AuthRequired()
}

func (g *Gateway) issuers() []string {
	if il, ok := g.verify.(issuerLister); ok {
		return il.Issuers()
	}
	return nil
}

// admit is the last step of authentication: once a policy or an identity
// provider is configured, anonymous callers must authenticate (401) and a
// caller whose groups map to no scope may use nothing (403), on every
// surface alike.
func (g *Gateway) admit(r *http.Request, p *auth.Principal) (*auth.Principal, error) {
	if p == auth.Anonymous {
		if g.authRequired() {
			return nil, auth.ErrNoToken
		}
		return p, nil
	}
	if ac, ok := g.policy.(accessChecker); ok && !ac.HasAccess(p) {
		logFrom(r.Context()).Info().Str("audit", "access").Str("subject", p.Subject).Strs("groups", p.Groups).
			Str("decision", "deny").Str("reason", "no scope is mapped to the caller's groups").Str("path", r.URL.Path).Msg("access decision")
		return nil, errNoAccess
	}
	return p, nil
}

// auditRefusedToken logs a token that did not verify: the reason, never
// the token.
func auditRefusedToken(r *http.Request, err error) {
	logFrom(r.Context()).Info().Str("audit", "authentication").Str("decision", "deny").Err(err).
		Str("path", r.URL.Path).Msg("ingress token refused")
}

// writeAuthError answers a failed authentication: 403 for a verified caller
// without access, else 401 with a Bearer challenge that points OAuth
// clients at the protected-resource metadata (RFC 9728) when an identity
// provider is configured.
func (g *Gateway) writeAuthError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errForbidden) {
		writeError(w, r, http.StatusForbidden, "access denied: no scope of the gateway's policy is granted to your groups", nil)
		return
	}
	challenge := `Bearer realm="mcpgw"`
	msg := "a valid gateway token is required (Authorization or X-Authorization: Bearer <token>)"
	if errors.Is(err, auth.ErrInvalidToken) {
		challenge += `, error="invalid_token"`
		msg = "the gateway token is invalid or expired"
	}
	if len(g.issuers()) > 0 {
		challenge += `, resource_metadata="` + g.publicURL(r) + wellKnownResource + resourcePath(r.URL.Path) + `"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeError(w, r, http.StatusUnauthorized, msg, nil)
}

// resourcePath is the protected resource a request path belongs to: the
// MCP endpoint of a relayed server or of the meta server, else the gateway
// itself ("").
func resourcePath(p string) string {
	if p == "/mcpgw/mcp" || p == "/mcpgw/mcp/" {
		return "/mcpgw/mcp"
	}
	if strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/ui/") {
		return ""
	}
	if key, ok := relayKey(p); ok {
		return "/" + key + "/mcp"
	}
	for _, suffix := range []string{legacyStreamSuffix, legacyMessageSuffix} {
		if k, ok := strings.CutSuffix(p, suffix); ok {
			if key, ok := relayKey(k + "/"); ok {
				return "/" + key + "/mcp"
			}
		}
	}
	return ""
}

// serveResourceMetadata serves RFC 9728 protected-resource metadata at
// /.well-known/oauth-protected-resource (the gateway) and at
// /.well-known/oauth-protected-resource/{path}/mcp (one MCP endpoint).
func (g *Gateway) serveResourceMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r, "GET")
		return
	}
	issuers := g.issuers()
	if len(issuers) == 0 {
		writeError(w, r, http.StatusNotFound, "no OIDC issuer is configured, so there is no protected-resource metadata; use a gateway API key", nil)
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, wellKnownResource)
	resource := g.publicURL(r)
	switch {
	case rest == "" || rest == "/":
	case rest == "/mcpgw/mcp":
		resource += rest
	default:
		rt, ok := g.routes.Load().lookup(rest)
		if !ok || resourcePath(rest) != rest {
			writeError(w, r, http.StatusNotFound, fmt.Sprintf("no MCP endpoint is served at %q", rest), nil)
			return
		}
		resource += "/" + rt.key + "/mcp"
	}
	w.Header().Set("Access-Control-Allow-Origin", "*") // public metadata, read by browser-based MCP clients
	if g.opts.PublicURL != "" {
		w.Header().Set("Cache-Control", "public, max-age=300")
	} else {
		// The resource URL is built from the request's Host: a shared
		// cache that does not key on it must not hand one caller's Host
		// to the next.
		w.Header().Set("Cache-Control", "no-store")
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"resource":                 resource,
		"authorization_servers":    issuers,
		"bearer_methods_supported": []string{"header"},
		"resource_name":            "mcpgw",
	})
}
