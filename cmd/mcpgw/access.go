package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/registry"
)

// oidcIssuer is one entry of the config file's oidc list:
//
//	oidc:
//	  - issuer: https://keycloak.example/realms/mcp
//	    audience: [mcpgw]            # a string or a list
//	    groups_claim: groups         # default; e.g. cognito:groups, realm_access.roles
//	    scope_groups:                # optional: OAuth scope -> groups
//	      mcp:tools: [support-team]
//	    ui_client_id: mcpgw-ui       # optional: web UI sign-in with this issuer (see uilogin.go)
//	    ui_client_secret_file: /run/secrets/ui-client-secret   # none: a public client (PKCE only)
//	    ui_scopes: [groups]          # asked for besides openid
//	    ui_params: {resource: https://mcpgw.example.com}       # extra authorization request parameters
//	    ui_name: Keycloak            # on the button; default the issuer's host
type oidcIssuer struct {
	Issuer      string              `json:"issuer"`
	Audience    stringOrList        `json:"audience"`
	GroupsClaim string              `json:"groups_claim"`
	ScopeGroups map[string][]string `json:"scope_groups"`

	UIClientID         string            `json:"ui_client_id"`
	UIClientSecretFile string            `json:"ui_client_secret_file"`
	UIScopes           stringOrList      `json:"ui_scopes"`
	UIParams           map[string]string `json:"ui_params"`
	UIName             string            `json:"ui_name"`
}

// stringOrList is a YAML value given as one string or a list of strings.
type stringOrList []string

func (s *stringOrList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = stringOrList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("must be a string or a list of strings")
	}
	*s = many
	return nil
}

// oidcIssuers merges the config file's oidc list with the --oidc-issuer
// flags, each of which takes every --oidc-audience.
func (c *serveConfig) oidcIssuers() []auth.IssuerConfig {
	var out []auth.IssuerConfig
	for _, o := range c.OIDC {
		out = append(out, auth.IssuerConfig{Issuer: o.Issuer, Audiences: o.Audience, GroupsClaim: o.GroupsClaim, ScopeGroups: o.ScopeGroups})
	}
	for _, iss := range c.OIDCIssuer {
		out = append(out, auth.IssuerConfig{Issuer: iss, Audiences: c.OIDCAudience})
	}
	return out
}

func (c *serveConfig) validateOIDC() []error {
	var errs []error
	seen := map[string]bool{}
	check := func(field, iss string) {
		if u, err := url.Parse(iss); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s: %q is not an absolute http(s) URL", field, iss))
		}
		if seen[iss] {
			errs = append(errs, fmt.Errorf("%s: issuer %q is configured twice", field, iss))
		}
		seen[iss] = true
	}
	for i, o := range c.OIDC {
		field := fmt.Sprintf("oidc[%d]", i)
		check(field+".issuer", o.Issuer)
		if len(o.Audience) == 0 {
			errs = append(errs, fmt.Errorf("%s.audience: required: the aud value the issuer puts in access tokens for this gateway", field))
		}
		for _, a := range o.Audience {
			if a == "" {
				errs = append(errs, fmt.Errorf("%s.audience: must not be empty", field))
			}
		}
	}
	errs = append(errs, c.validateUILogin()...)
	for _, iss := range c.OIDCIssuer {
		check("oidc_issuer", iss)
	}
	if len(c.OIDCIssuer) > 0 && len(c.OIDCAudience) == 0 {
		errs = append(errs, errors.New("oidc_audience: required with oidc_issuer: the aud value the issuer puts in access tokens for this gateway"))
	}
	if len(c.OIDCAudience) > 0 && len(c.OIDCIssuer) == 0 {
		errs = append(errs, errors.New("oidc_audience: given without oidc_issuer (in the config file, set audience per entry of oidc)"))
	}
	return errs
}

// accessStore is the part of the store ingress and policy need.
type accessStore interface {
	auth.KeyStore
	auth.PolicyStore
}

// newAccess builds ingress verification and the policy from the
// configuration: API keys always, OIDC issuers when configured (their keys
// prefetched, so tokens verify from cache if a provider is down later), and
// the policy stored in the database, following the registry's server names.
func newAccess(ctx context.Context, cfg serveConfig, store accessStore, reg *registry.Service, lg zerolog.Logger) (*auth.Authenticator, *auth.Policy, error) {
	var oidc *auth.OIDC
	if issuers := cfg.oidcIssuers(); len(issuers) > 0 {
		var err error
		oidc, err = auth.NewOIDC(issuers, auth.OIDCOptions{Log: lg})
		if err != nil {
			return nil, nil, err
		}
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		oidc.Prefetch(pctx)
		cancel()
	}
	pol, err := auth.LoadPolicy(ctx, auth.PolicyOptions{Store: store, IdentityProvider: oidc != nil, Log: lg})
	if err != nil {
		return nil, nil, err
	}
	if err := pol.TrackServers(ctx, reg); err != nil {
		return nil, nil, err
	}
	switch {
	case pol.Document() == nil && oidc != nil:
		lg.Warn().Msg("no access policy is stored: only admin API keys have access until one is imported (mcpgw policy import FILE)")
	case !pol.AuthRequired():
		lg.Info().Msg("local mode: no policy or identity provider is configured, so every caller may use every server; only admin keys may administer")
	}
	return auth.NewAuthenticator(store, auth.Options{OIDC: oidc}), pol, nil
}
