package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/spf13/cobra"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// tokenOpts are the flags of `mcpgw token`.
type tokenOpts struct {
	issuer, tokenEndpoint string
	clientID, secretFile  string
	scopes                []string
	audience, out         string
	printClaims, asJSON   bool
	timeout               time.Duration
}

func newTokenCmd() *cobra.Command {
	var o tokenOpts
	cmd := &cobra.Command{
		Use:   "token --issuer URL --client-id ID --client-secret-file F [--scope S]... [--audience A] [--out FILE] [--print-claims]",
		Short: "Get an access token with the OAuth2 client-credentials grant and write it to a file (0600)",
		Long: "Runs the OAuth2 client-credentials grant against the token endpoint of an OIDC issuer (found by " +
			"discovery, or given with --token-endpoint) and writes the access token to --out with mode 0600, " +
			"ready for --token-file / --ingress-token-file / MCPGW_TOKEN_FILE. --audience asks for a token for " +
			"that audience (sent as the RFC 8707 resource parameter and as audience, which Keycloak and Auth0 read).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runToken(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.issuer, "issuer", "", "OIDC issuer URL (its /.well-known/openid-configuration names the token endpoint)")
	f.StringVar(&o.tokenEndpoint, "token-endpoint", "", "token endpoint URL, instead of discovery")
	f.StringVar(&o.clientID, "client-id", "", "OAuth2 client id")
	f.StringVar(&o.secretFile, "client-secret-file", "", "file holding the client secret")
	f.StringArrayVar(&o.scopes, "scope", nil, "scope to ask for (repeatable, or space-separated)")
	f.StringVar(&o.audience, "audience", "", "audience (resource) the token is for")
	f.StringVar(&o.out, "out", envOr("MCPGW_TOKEN_FILE", "mcpgw.token"), "file to write the access token to (env MCPGW_TOKEN_FILE)")
	f.BoolVar(&o.printClaims, "print-claims", false, "print the token's claims (decoded, not verified) as JSON")
	f.BoolVar(&o.asJSON, "json", false, "print machine-readable JSON on stdout")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "limit for discovery and the token request")
	return cmd
}

func runToken(cmd *cobra.Command, o tokenOpts) error {
	switch {
	case o.issuer == "" && o.tokenEndpoint == "":
		return usageErr("--issuer URL (or --token-endpoint URL) is required")
	case o.clientID == "":
		return usageErr("--client-id is required")
	case o.secretFile == "":
		return usageErr("--client-secret-file is required (a file holding the client secret)")
	case o.out == "":
		return usageErr("--out must name a file")
	}
	for _, u := range []struct{ flag, val string }{{"--issuer", o.issuer}, {"--token-endpoint", o.tokenEndpoint}} {
		if u.val == "" {
			continue
		}
		if pu, err := url.Parse(u.val); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return usageErr("%s %q is not an absolute http(s) URL", u.flag, u.val)
		}
	}
	b, err := os.ReadFile(o.secretFile)
	if err != nil {
		return usageErr("cannot read the client secret file %s: %v", o.secretFile, err)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return usageErr("the client secret file %s is empty", o.secretFile)
	}

	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: o.timeout})
	tokenURL := o.tokenEndpoint
	if tokenURL == "" {
		prov, err := oidc.NewProvider(ctx, strings.TrimSuffix(o.issuer, "/"))
		if err != nil && strings.HasSuffix(o.issuer, "/") {
			prov, err = oidc.NewProvider(ctx, o.issuer) // issuers that end in a slash
		}
		if err != nil {
			return failed(fmt.Errorf("could not read the OIDC discovery document of %s: %v", o.issuer, err))
		}
		tokenURL = prov.Endpoint().TokenURL
		if tokenURL == "" {
			return failed(fmt.Errorf("the discovery document of %s names no token endpoint; pass --token-endpoint", o.issuer))
		}
	}
	cc := clientcredentials.Config{ClientID: o.clientID, ClientSecret: secret, TokenURL: tokenURL, EndpointParams: url.Values{}}
	for _, s := range o.scopes {
		cc.Scopes = append(cc.Scopes, strings.Fields(s)...)
	}
	if o.audience != "" {
		cc.EndpointParams.Set("resource", o.audience)
		cc.EndpointParams.Set("audience", o.audience)
	}
	tok, err := cc.Token(ctx)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			msg := re.ErrorCode
			if re.ErrorDescription != "" {
				msg += ": " + re.ErrorDescription
			}
			if msg == "" {
				msg = re.Response.Status
			}
			return failed(fmt.Errorf("the token endpoint %s refused the client-credentials grant: %s", tokenURL, msg))
		}
		return failed(fmt.Errorf("could not get a token from %s: %v", tokenURL, err))
	}
	if err := writeSecretFile(o.out, tok.AccessToken); err != nil {
		return failed(err)
	}

	claims, jwtErr := jwtClaims(tok.AccessToken)
	out := cmd.OutOrStdout()
	if o.asJSON {
		v := map[string]any{"token_file": o.out, "token_type": tok.TokenType}
		if !tok.Expiry.IsZero() {
			v["expires_at"] = tok.Expiry.UTC().Format(time.RFC3339)
		}
		if s, ok := tok.Extra("scope").(string); ok && s != "" {
			v["scope"] = s
		}
		if o.printClaims && jwtErr == nil {
			v["claims"] = claims
		}
		return printJSON(out, v)
	}
	if o.printClaims && jwtErr != nil {
		return failed(fmt.Errorf("the access token was written to %s, but %v", o.out, jwtErr))
	}
	expiry := ""
	if !tok.Expiry.IsZero() {
		expiry = fmt.Sprintf(" (expires in %s)", time.Until(tok.Expiry).Round(time.Second))
	}
	msgOut := cmd.ErrOrStderr()
	if !o.printClaims {
		msgOut = out
	}
	fmt.Fprintf(msgOut, "Wrote the access token for %s%s to %s.\n", o.clientID, expiry, o.out)
	if o.printClaims {
		return printJSON(out, claims)
	}
	return nil
}

// jwtClaims decodes the payload of a JWT without verifying it: for a
// person to read, never for a decision.
func jwtClaims(tok string) (map[string]any, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errors.New("the token is opaque (not a JWT), so it has no claims to print")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("the token's payload is not base64url: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("the token's payload is not JSON: %v", err)
	}
	return c, nil
}
