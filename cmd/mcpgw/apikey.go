package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// apiKeyInfo is a key as /api/v1/apikeys shows it.
type apiKeyInfo struct {
	Name      string   `json:"name"`
	Groups    []string `json:"groups"`
	Admin     bool     `json:"admin"`
	CreatedAt string   `json:"created_at"`
	ExpiresAt string   `json:"expires_at"`
	Expired   bool     `json:"expired"`
	Key       string   `json:"key"`
}

func newAPIKeyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apikey",
		Short: "Create, list and revoke gateway API keys (admins)",
		Long: "Gateway API keys identify callers without an identity provider. A key has a name, groups " +
			"(matched by the policy's group_mappings), optionally admin rights and an expiry. The gateway " +
			"stores only a hash: the key is shown once, when it is created.",
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newAPIKeyCreateCmd(), newAPIKeyListCmd(), newAPIKeyRevokeCmd())
	return cmd
}

func newAPIKeyCreateCmd() *cobra.Command {
	var o clientOpts
	var name, expires, out string
	var groups []string
	var admin bool
	cmd := &cobra.Command{
		Use:   "create --name NAME [--group G]... [--admin] [--expires 720h] [--out FILE]",
		Short: "Create an API key and print it once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return usageErr("--name is required")
			}
			if expires != "" {
				if d, err := time.ParseDuration(expires); err != nil || d <= 0 {
					return usageErr("--expires %q is not a positive duration such as 720h", expires)
				}
			}
			body, _ := json.Marshal(map[string]any{"name": name, "groups": nonNilStrings(groups), "admin": admin, "expires_in": expires})
			resp, err := o.do(http.MethodPost, "/api/v1/apikeys", body)
			if err != nil {
				return err
			}
			var k apiKeyInfo
			if err := json.Unmarshal(resp.body, &k); err != nil || k.Key == "" {
				return failed(fmt.Errorf("the gateway's answer holds no key: %s", resp.body))
			}
			if out != "" {
				if err := writeSecretFile(out, k.Key); err != nil {
					return failed(err)
				}
			}
			if o.asJSON {
				if out != "" {
					k.Key = "" // written to the file; not repeated on stdout
				}
				return printJSON(cmd.OutOrStdout(), k)
			}
			what := describeKey(k)
			if out != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "Created API key %s (%s); written to %s.\n", k.Name, what, out)
				return nil
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Created API key %s (%s). It is shown only now: store it.\n", k.Name, what)
			fmt.Fprintln(cmd.OutOrStdout(), k.Key)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "name of the key (letters, digits, '.', '_', '-')")
	cmd.Flags().StringArrayVar(&groups, "group", nil, "group of the key (repeatable), as named in the policy's group_mappings")
	cmd.Flags().BoolVar(&admin, "admin", false, "the key may administer the gateway (every server, keys and the policy)")
	cmd.Flags().StringVar(&expires, "expires", "", "lifetime, e.g. 720h (default: never expires)")
	cmd.Flags().StringVar(&out, "out", "", "write the key to FILE (mode 0600) instead of printing it")
	o.bind(cmd, true)
	return cmd
}

func describeKey(k apiKeyInfo) string {
	var parts []string
	if len(k.Groups) > 0 {
		parts = append(parts, "groups "+strings.Join(k.Groups, ", "))
	} else {
		parts = append(parts, "no groups")
	}
	if k.Admin {
		parts = append(parts, "admin")
	}
	if k.ExpiresAt != "" {
		parts = append(parts, "expires "+k.ExpiresAt)
	} else {
		parts = append(parts, "never expires")
	}
	return strings.Join(parts, "; ")
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// writeSecretFile writes a token or key to file with mode 0600, replacing
// it atomically, so that no other user can read it at any moment.
func writeSecretFile(file, secret string) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), ".mcpgw-secret-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", file, err)
	}
	if _, err := tmp.WriteString(secret + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}

func newAPIKeyListCmd() *cobra.Command {
	var o clientOpts
	cmd := &cobra.Command{
		Use:   "list [--json]",
		Short: "List API keys (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := o.do(http.MethodGet, "/api/v1/apikeys", nil)
			if err != nil {
				return err
			}
			if o.asJSON {
				return printRaw(cmd.OutOrStdout(), resp.body)
			}
			var l struct {
				Keys []apiKeyInfo `json:"api_keys"`
			}
			if err := json.Unmarshal(resp.body, &l); err != nil {
				return failed(fmt.Errorf("the gateway's answer is not a key list: %v", err))
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tGROUPS\tADMIN\tCREATED\tEXPIRES")
			for _, k := range l.Keys {
				exp := orDash(k.ExpiresAt)
				if k.Expired {
					exp += " (expired)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\n", k.Name, orDash(strings.Join(k.Groups, ",")), k.Admin, k.CreatedAt, exp)
			}
			return tw.Flush()
		},
	}
	o.bind(cmd, true)
	return cmd
}

func newAPIKeyRevokeCmd() *cobra.Command {
	var o clientOpts
	cmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke an API key: it stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := o.do(http.MethodDelete, "/api/v1/apikeys/"+url.PathEscape(args[0]), nil); err != nil {
				return err
			}
			if o.asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]string{"revoked": args[0]})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Revoked API key %s.\n", args[0])
			return nil
		},
	}
	o.bind(cmd, true)
	return cmd
}
