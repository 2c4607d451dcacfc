package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/registry"
)

// policyEditor is what GET and PUT /api/v1/policy need of the policy
// (auth.Policy has it).
type policyEditor interface {
	Document() []byte
	Replace(ctx context.Context, doc []byte, known []*registry.Server) ([]string, error)
}

// handlePolicy serves GET and PUT /api/v1/policy (gateway-wide admins). PUT
// takes YAML or JSON, rejects an invalid policy whole with every problem
// listed, and puts a valid one in force at once.
func (g *Gateway) handlePolicy(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPut {
		methodNotAllowed(w, r, "GET, PUT")
		return
	}
	p, ok := g.admin(w, r, "*")
	if !ok {
		return
	}
	ed, ok := g.policy.(policyEditor)
	if !ok {
		writeError(w, r, http.StatusNotImplemented, "this gateway's policy cannot be read or edited", nil)
		return
	}
	if r.Method == http.MethodGet {
		doc := ed.Document()
		if doc == nil {
			writeError(w, r, http.StatusNotFound, "no policy is stored: the gateway runs in local mode (every caller may use every server); import one with `mcpgw policy import FILE`", nil)
			return
		}
		writeJSON(w, http.StatusOK, json.RawMessage(doc))
		return
	}
	body, ok := g.readBody(w, r)
	if !ok {
		return
	}
	known, err := g.reg.List(r.Context())
	if err != nil {
		writeErr(w, r, err)
		return
	}
	warnings, err := ed.Replace(r.Context(), body, known)
	if err != nil {
		var pe *auth.PolicyError
		if errors.As(err, &pe) {
			writeError(w, r, http.StatusBadRequest, pe.Error(), pe.Problems)
			return
		}
		writeErr(w, r, err)
		return
	}
	if warnings == nil {
		warnings = []string{}
	}
	lg := logFrom(r.Context())
	for _, wmsg := range warnings {
		lg.Warn().Str("subject", p.Subject).Msg("policy: " + wmsg)
	}
	lg.Info().Str("audit", "policy").Str("subject", p.Subject).Msg("policy replaced")
	writeJSON(w, http.StatusOK, map[string]any{"policy": json.RawMessage(ed.Document()), "warnings": warnings})
}

// apiKeyView is an API key as the API shows it: never the secret or hash.
type apiKeyView struct {
	Name      string   `json:"name"`
	Groups    []string `json:"groups"`
	Admin     bool     `json:"admin"`
	CreatedAt string   `json:"created_at"`
	ExpiresAt string   `json:"expires_at,omitempty"`
	Expired   bool     `json:"expired"`
	// Key is the secret, present only in the answer to its creation.
	Key string `json:"key,omitempty"`
}

func viewKey(k registry.APIKey, now time.Time) apiKeyView {
	v := apiKeyView{Name: k.Name, Groups: nonNil(k.Groups), Admin: k.Admin, CreatedAt: k.CreatedAt.UTC().Format(time.RFC3339)}
	if !k.ExpiresAt.IsZero() {
		v.ExpiresAt = k.ExpiresAt.UTC().Format(time.RFC3339)
		v.Expired = !now.Before(k.ExpiresAt)
	}
	return v
}

type apiKeyRequest struct {
	Name      string   `json:"name"`
	Groups    []string `json:"groups"`
	Admin     bool     `json:"admin"`
	ExpiresIn string   `json:"expires_in"` // a Go duration such as 720h
	ExpiresAt string   `json:"expires_at"` // RFC 3339
}

var keyNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// handleAPIKeys serves /api/v1/apikeys: GET lists the keys, POST creates one
// and answers with its secret, the only time it is shown.
func (g *Gateway) handleAPIKeys(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		methodNotAllowed(w, r, "GET, POST")
		return
	}
	p, ok := g.admin(w, r, "*")
	if !ok {
		return
	}
	store := g.reg.Store()
	now := time.Now()
	if r.Method == http.MethodGet {
		keys, err := store.ListAPIKeys(r.Context())
		if err != nil {
			writeErr(w, r, err)
			return
		}
		out := make([]apiKeyView, 0, len(keys))
		for _, k := range keys {
			out = append(out, viewKey(k, now))
		}
		writeJSON(w, http.StatusOK, map[string]any{"api_keys": out})
		return
	}
	body, ok := g.readBody(w, r)
	if !ok {
		return
	}
	req, err := parseKeyRequest(body, now)
	if err != nil {
		writeErr(w, r, err)
		return
	}
	existing, err := store.ListAPIKeys(r.Context())
	if err != nil {
		writeErr(w, r, err)
		return
	}
	for _, k := range existing {
		if k.Name == req.Name {
			writeError(w, r, http.StatusConflict, fmt.Sprintf("an API key named %q exists; revoke it first or choose another name", req.Name), nil)
			return
		}
	}
	secret, err := auth.NewAPIKey()
	if err != nil {
		writeErr(w, r, err)
		return
	}
	req.Hash, req.CreatedAt = auth.HashKey(secret), now.UTC().Truncate(time.Second)
	if err := store.PutAPIKey(r.Context(), req); err != nil {
		writeErr(w, r, err)
		return
	}
	logFrom(r.Context()).Info().Str("audit", "apikey").Str("subject", p.Subject).Str("key", req.Name).
		Strs("groups", req.Groups).Bool("admin", req.Admin).Msg("api key created")
	v := viewKey(req, now)
	v.Key = secret
	writeJSON(w, http.StatusCreated, v)
}

// ceilSecond rounds t up to a whole second.
func ceilSecond(t time.Time) time.Time {
	if s := t.Truncate(time.Second); !s.Equal(t) {
		return s.Add(time.Second)
	}
	return t
}

// parseKeyRequest validates a key creation request, every problem at once.
func parseKeyRequest(body []byte, now time.Time) (registry.APIKey, error) {
	var req apiKeyRequest
	var ps []registry.Problem
	add := func(field, format string, args ...any) {
		ps = append(ps, registry.Problem{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		add("", "body must be a JSON object with name, groups, admin and expires_in or expires_at: %v", err)
		return registry.APIKey{}, &registry.ValidationError{Problems: ps}
	}
	if !keyNameRE.MatchString(req.Name) {
		add("name", "%q must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", req.Name)
	}
	k := registry.APIKey{Name: req.Name, Admin: req.Admin}
	for _, grp := range req.Groups {
		if grp == "" || len(grp) > 256 || strings.ContainsFunc(grp, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			add("groups", "%q is not a valid group name (non-empty, no spaces or control characters)", grp)
			continue
		}
		if !slices.Contains(k.Groups, grp) {
			k.Groups = append(k.Groups, grp)
		}
	}
	switch {
	case req.ExpiresIn != "" && req.ExpiresAt != "":
		add("expires_in", "give expires_in or expires_at, not both")
	case req.ExpiresIn != "":
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || d <= 0 {
			add("expires_in", "%q is not a positive duration such as 720h", req.ExpiresIn)
		} else {
			// Stored to the second, rounded up: a key never expires before
			// the duration asked for (truncating made a 1s key expire at once
			// when created late in a second).
			k.ExpiresAt = ceilSecond(now.Add(d).UTC())
		}
	case req.ExpiresAt != "":
		t, err := time.Parse(time.RFC3339, req.ExpiresAt)
		if err != nil || !t.After(now) {
			add("expires_at", "%q is not an RFC 3339 time in the future", req.ExpiresAt)
		} else {
			k.ExpiresAt = t.UTC()
		}
	}
	if len(ps) > 0 {
		return registry.APIKey{}, &registry.ValidationError{Problems: ps}
	}
	return k, nil
}

// handleAPIKey serves DELETE /api/v1/apikeys/{name}: the key stops working
// with the next request.
func (g *Gateway) handleAPIKey(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodDelete {
		methodNotAllowed(w, r, "DELETE")
		return
	}
	p, ok := g.admin(w, r, "*")
	if !ok {
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/api/v1/apikeys/")
	if name == auth.AdminKeyName {
		writeError(w, r, http.StatusConflict, "the local admin key cannot be revoked; to replace it, stop the gateway, delete <data>/admin.token and start it again", nil)
		return
	}
	if err := g.reg.Store().DeleteAPIKey(r.Context(), name); err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			writeError(w, r, http.StatusNotFound, fmt.Sprintf("no API key is named %q", name), nil)
			return
		}
		writeErr(w, r, err)
		return
	}
	logFrom(r.Context()).Info().Str("audit", "apikey").Str("subject", p.Subject).Str("key", name).Msg("api key revoked")
	writeJSON(w, http.StatusOK, map[string]string{"revoked": name})
}
