package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/mcpgw/mcpgw/auth"
)

func TestServeConfigOIDC(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		env  []string
		args []string
		want []auth.IssuerConfig
		errs []string
	}{
		{
			name: "flags: every issuer takes every audience",
			args: []string{"--oidc-issuer", "https://a.example/realms/x", "--oidc-issuer", "https://b.example", "--oidc-audience", "mcpgw"},
			want: []auth.IssuerConfig{{Issuer: "https://a.example/realms/x", Audiences: []string{"mcpgw"}}, {Issuer: "https://b.example", Audiences: []string{"mcpgw"}}},
		},
		{
			name: "config file: per-issuer settings",
			yaml: `
oidc:
  - issuer: https://keycloak.example/realms/mcp
    audience: mcpgw
  - issuer: https://cognito-idp.us-east-1.amazonaws.com/us-east-1_abc
    audience: [client-1, client-2]
    groups_claim: cognito:groups
    scope_groups:
      mcp/tools: [support-team]
`,
			want: []auth.IssuerConfig{
				{Issuer: "https://keycloak.example/realms/mcp", Audiences: []string{"mcpgw"}},
				{Issuer: "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_abc", Audiences: []string{"client-1", "client-2"}, GroupsClaim: "cognito:groups", ScopeGroups: map[string][]string{"mcp/tools": {"support-team"}}},
			},
		},
		{
			name: "file and flags together",
			yaml: "oidc:\n  - {issuer: 'https://a.example', audience: x}\n",
			args: []string{"--oidc-issuer", "https://b.example", "--oidc-audience", "y"},
			want: []auth.IssuerConfig{{Issuer: "https://a.example", Audiences: []string{"x"}}, {Issuer: "https://b.example", Audiences: []string{"y"}}},
		},
		{
			name: "an issuer is an ingress method on a non-loopback listener",
			args: []string{"--listen", "0.0.0.0:7860", "--oidc-issuer", "https://a.example", "--oidc-audience", "x"},
			want: []auth.IssuerConfig{{Issuer: "https://a.example", Audiences: []string{"x"}}},
		},
		{
			name: "so is one in the config file",
			yaml: "listen: 0.0.0.0:7860\noidc:\n  - {issuer: 'https://a.example', audience: x}\n",
			want: []auth.IssuerConfig{{Issuer: "https://a.example", Audiences: []string{"x"}}},
		},
		{name: "unknown key in an issuer", yaml: "oidc:\n  - {issuer: 'https://a.example', audience: x, groups: y}\n", errs: []string{`unknown field "groups"`}},
		{name: "audience of the wrong type", yaml: "oidc:\n  - {issuer: 'https://a.example', audience: {a: b}}\n", errs: []string{"must be a string or a list of strings"}},
		{name: "issuer without audience (file)", yaml: "oidc:\n  - {issuer: 'https://a.example'}\n", errs: []string{"oidc[0].audience: required"}},
		{name: "issuer without audience (flags)", args: []string{"--oidc-issuer", "https://a.example"}, errs: []string{"oidc_audience: required with oidc_issuer"}},
		{name: "audience without issuer", args: []string{"--oidc-audience", "x"}, errs: []string{"oidc_audience: given without oidc_issuer"}},
		{name: "relative issuer", args: []string{"--oidc-issuer", "a.example", "--oidc-audience", "x"}, errs: []string{`oidc_issuer: "a.example" is not an absolute http(s) URL`}},
		{name: "duplicate issuer", yaml: "oidc:\n  - {issuer: 'https://a.example', audience: x}\n", args: []string{"--oidc-issuer", "https://a.example", "--oidc-audience", "y"},
			errs: []string{`issuer "https://a.example" is configured twice`}},
		{name: "the oidc list is config-file only", env: []string{"MCPGW_OIDC=https://a.example"}, errs: []string{"MCPGW_OIDC: can only be set in the config file"}},
		{name: "non-loopback without an issuer still refused", args: []string{"--listen", "0.0.0.0:7860"}, errs: []string{"--insecure-no-auth"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			flagged := defaultServeConfig()
			bindFlags(fs, &flagged)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatalf("flags: %v", err)
			}
			file := ""
			if tc.yaml != "" {
				file = filepath.Join(t.TempDir(), "mcpgw.yaml")
				if err := os.WriteFile(file, []byte(tc.yaml), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c, err := loadServeConfig(fs, flagged, file, tc.env)
			if len(tc.errs) > 0 {
				if err == nil {
					t.Fatalf("accepted %+v", c)
				}
				for _, want := range tc.errs {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error does not hold %q:\n%v", want, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if got := c.oidcIssuers(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("issuers = %+v\nwant %+v", got, tc.want)
			}
			if _, err := auth.NewOIDC(c.oidcIssuers(), auth.OIDCOptions{}); err != nil {
				t.Fatalf("an accepted configuration does not build: %v", err)
			}
		})
	}
}
