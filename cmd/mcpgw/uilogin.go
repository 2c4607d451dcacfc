package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/gateway"
)

// The web UI's sign-in with an OIDC issuer: the ui_* keys of an entry of
// the config file's oidc list (see oidcIssuer).

var _ gateway.UILogin = (*auth.OIDCLogin)(nil)

// validateUILogin checks the ui_* keys: they need ui_client_id, and one
// issuer at most signs users in to the UI (the page has one button).
func (c *serveConfig) validateUILogin() []error {
	var errs []error
	var with []string
	for i, o := range c.OIDC {
		field := fmt.Sprintf("oidc[%d]", i)
		if strings.TrimSpace(o.UIClientID) == "" {
			if o.UIClientSecretFile != "" || len(o.UIScopes) > 0 || len(o.UIParams) > 0 || o.UIName != "" {
				errs = append(errs, fmt.Errorf("%s: ui_client_secret_file, ui_scopes, ui_params and ui_name need ui_client_id, the web UI's client at the issuer", field))
			}
			continue
		}
		with = append(with, field)
	}
	if len(with) > 1 {
		errs = append(errs, fmt.Errorf("%s: ui_client_id is set for %d issuers; the web UI signs in with one", strings.Join(with, ", "), len(with)))
	}
	return errs
}

// uiLogin returns the UI sign-in configuration of the issuer with
// ui_client_id, with the client secret read from its file; ok is false
// when no issuer has one.
func (c *serveConfig) uiLogin() (cfg auth.UILoginConfig, ok bool, err error) {
	for i, o := range c.OIDC {
		if strings.TrimSpace(o.UIClientID) == "" {
			continue
		}
		cfg = auth.UILoginConfig{Issuer: o.Issuer, ClientID: strings.TrimSpace(o.UIClientID), Scopes: o.UIScopes, Params: o.UIParams, Name: o.UIName}
		if o.UIClientSecretFile != "" {
			b, err := os.ReadFile(o.UIClientSecretFile)
			if err != nil {
				return cfg, false, fmt.Errorf("config: oidc[%d].ui_client_secret_file: %w", i, err)
			}
			if cfg.ClientSecret = strings.TrimSpace(string(b)); cfg.ClientSecret == "" {
				return cfg, false, fmt.Errorf("config: oidc[%d].ui_client_secret_file: %s is empty", i, o.UIClientSecretFile)
			}
		}
		return cfg, true, nil
	}
	return cfg, false, nil
}

// setUILogin offers the web UI's sign-in with the configured issuer, if
// any: its sealed cookies use the gateway's session key.
func setUILogin(c serveConfig, gw *gateway.Gateway, authn *auth.Authenticator, sealer *gateway.Sealer, lg zerolog.Logger) error {
	cfg, ok, err := c.uiLogin()
	if err != nil || !ok {
		return err
	}
	l, err := auth.NewOIDCLogin(authn, cfg, auth.UILoginOptions{Sealer: sealer})
	if err != nil {
		return err
	}
	gw.SetUILogin(l)
	ev := lg.Info().Str("issuer", cfg.Issuer).Str("client_id", cfg.ClientID).Bool("public_client", cfg.ClientSecret == "")
	if c.PublicURL != "" {
		ev = ev.Str("redirect_uri", strings.TrimSuffix(c.PublicURL, "/")+"/ui/callback")
	}
	ev.Msg("web UI sign-in with OIDC: register the redirect URI <public URL>/ui/callback with the client")
	return nil
}
