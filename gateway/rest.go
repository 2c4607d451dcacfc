package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/registry"
)

func (g *Gateway) newAPI() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/servers", g.handleServers)
	mux.HandleFunc("/api/v1/servers/", g.handleServer)
	mux.HandleFunc("/api/v1/health", g.handleHealth)
	mux.HandleFunc("/api/v1/search", g.handleSearch)
	mux.HandleFunc("/api/v1/policy", g.handlePolicy)
	mux.HandleFunc("/api/v1/apikeys", g.handleAPIKeys)
	mux.HandleFunc("/api/v1/apikeys/", g.handleAPIKey)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, http.StatusNotFound, fmt.Sprintf("no API endpoint at %q", r.URL.Path), nil)
	})
	return mux
}

// principal authenticates a REST caller; on failure it has written the 401.
func (g *Gateway) principal(w http.ResponseWriter, r *http.Request) (*auth.Principal, bool) {
	p, err := g.authenticate(r, false)
	if err != nil {
		g.writeUnauthorized(w, r, err)
		return nil, false
	}
	return p, true
}

// admin authenticates a caller who must be an admin; it writes 401 for a
// missing or bad token and 403 for a caller who is not an admin.
func (g *Gateway) admin(w http.ResponseWriter, r *http.Request, server string) (*auth.Principal, bool) {
	p, ok := g.principal(w, r)
	if !ok {
		return nil, false
	}
	if p == auth.Anonymous {
		g.writeUnauthorized(w, r, auth.ErrNoToken)
		return nil, false
	}
	if !g.policy.Allowed(p, server, auth.ActionAdmin, "") {
		writeError(w, r, http.StatusForbidden, "this operation needs an admin token", nil)
		return nil, false
	}
	return p, true
}

func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.opts.MaxBodyBytes))
	if err != nil {
		writeErr(w, r, err)
		return nil, false
	}
	return body, true
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed here; use %s", r.Method, allow), nil)
}

type registerResponse struct {
	Server   json.RawMessage `json:"server"`
	Warnings []string        `json:"warnings"`
}

func (g *Gateway) handleServers(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		p, ok := g.principal(w, r)
		if !ok {
			return
		}
		l, err := g.listServices(r.Context(), p)
		if err != nil {
			writeErr(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, l)
	case http.MethodPost:
		p, ok := g.admin(w, r, "*")
		if !ok {
			return
		}
		g.register(w, r, p, "", r.URL.Query().Get("overwrite") == "true")
	default:
		methodNotAllowed(w, r, "GET, POST")
	}
}

// register stores the body as a registration made by p. wantKey, when set,
// is the path named by the URL, which the body must agree with.
func (g *Gateway) register(w http.ResponseWriter, r *http.Request, p *auth.Principal, wantKey string, overwrite bool) {
	body, ok := g.readBody(w, r)
	if !ok {
		return
	}
	srv, warnings, err := registry.Parse(body)
	if err != nil {
		writeErr(w, r, err)
		return
	}
	if wantKey != "" && registry.PathKey(srv.Path) != wantKey {
		writeErr(w, r, &registry.ValidationError{Problems: []registry.Problem{{Field: "path", Reason: fmt.Sprintf("%q does not match the URL's /%s", srv.Path, wantKey)}}})
		return
	}
	// A replacement answers 200, a new registration 201 (RFC 9110 PUT).
	status := http.StatusCreated
	if overwrite {
		if _, err := g.reg.Get(r.Context(), srv.Path); err == nil {
			status = http.StatusOK
		}
	}
	stored, err := g.reg.Put(r.Context(), srv, overwrite)
	if err != nil {
		writeErr(w, r, err)
		return
	}
	for _, wmsg := range warnings {
		logFrom(r.Context()).Warn().Str("server", stored.Path).Msg(wmsg)
	}
	logFrom(r.Context()).Info().Str("server", stored.Path).Str("subject", p.Subject).Bool("replaced", status == http.StatusOK).Msg("server registered")
	b, _ := json.Marshal(stored)
	if warnings == nil {
		warnings = []string{}
	}
	writeJSON(w, status, registerResponse{Server: b, Warnings: warnings})
}

// handleServer serves /api/v1/servers/{path} and its enable, disable and
// refresh actions. A path may have several segments, so the action is the
// last segment of a POST.
func (g *Gateway) handleServer(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/api/v1/servers/")
	key := registry.PathKey(rest)
	action := ""
	if r.Method == http.MethodPost {
		if i := strings.LastIndexByte(key, '/'); i >= 0 {
			key, action = key[:i], key[i+1:]
		} else {
			action, key = key, ""
		}
	}
	if key == "" {
		writeError(w, r, http.StatusNotFound, fmt.Sprintf("no API endpoint at %q", r.URL.Path), nil)
		return
	}
	switch {
	case r.Method == http.MethodGet:
		p, ok := g.principal(w, r)
		if !ok {
			return
		}
		s, err := g.visibleServer(r.Context(), p, key)
		if err != nil {
			writeErr(w, r, err)
			return
		}
		d, err := g.details(p, s)
		if err != nil {
			writeErr(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, d)
	case r.Method == http.MethodPut:
		// Replacing a registration is registering: it sets the upstream
		// address and the headers sent there, whose $VAR values expand from
		// the gateway's environment. An admin of this one server could
		// otherwise point it at a host of its own with any variable in a
		// header, another server's upstream token among them.
		p, ok := g.admin(w, r, "*")
		if !ok {
			return
		}
		g.register(w, r, p, key, true)
	case r.Method == http.MethodDelete:
		if _, ok := g.admin(w, r, "/"+key); !ok {
			return
		}
		if err := g.reg.Remove(r.Context(), key); err != nil {
			writeErr(w, r, err)
			return
		}
		logFrom(r.Context()).Info().Str("server", "/"+key).Msg("server removed")
		writeJSON(w, http.StatusOK, map[string]any{"removed": "/" + key})
	case r.Method == http.MethodPost && (action == "enable" || action == "disable"):
		p, ok := g.admin(w, r, "/"+key)
		if !ok {
			return
		}
		s, err := g.reg.SetEnabled(r.Context(), key, action == "enable")
		if err != nil {
			writeErr(w, r, err)
			return
		}
		logFrom(r.Context()).Info().Str("server", s.Path).Bool("enabled", s.Enabled).Msg("server toggled")
		writeJSON(w, http.StatusOK, g.summarize(p, s))
	case r.Method == http.MethodPost && action == "refresh":
		if _, ok := g.admin(w, r, "/"+key); !ok {
			return
		}
		res, err := g.refreshTools(r.Context(), key, r.URL.Query().Get("approve") == "true")
		if err != nil {
			writeErr(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	case r.Method == http.MethodPost:
		writeError(w, r, http.StatusNotFound, fmt.Sprintf("unknown action %q; use enable, disable or refresh", action), nil)
	default:
		methodNotAllowed(w, r, "GET, PUT, DELETE, POST")
	}
}

type healthEntry struct {
	Status         string `json:"status"`
	LastCheckedISO string `json:"last_checked_iso"`
	NumTools       int    `json:"num_tools"`
}

func (g *Gateway) healthMap(ctx context.Context, p *auth.Principal) (map[string]healthEntry, error) {
	servers, err := g.visibleServers(ctx, p)
	if err != nil {
		return nil, err
	}
	out := make(map[string]healthEntry, len(servers))
	for _, s := range servers {
		h := g.healthOf(s)
		out[s.Path] = healthEntry{Status: h.Display(), LastCheckedISO: h.LastCheckedISO(), NumTools: g.countVisibleTools(p, s)}
	}
	return out, nil
}

func (g *Gateway) handleHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, "GET")
		return
	}
	p, ok := g.principal(w, r)
	if !ok {
		return
	}
	m, err := g.healthMap(r.Context(), p)
	if err != nil {
		writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}
