package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/mcpgw/mcpgw/auth"
)

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Import or export the access policy (admins)",
		Long: "The access policy (SPEC section 5) maps groups, from OIDC tokens or API keys, to scopes; a " +
			"scope lists the servers, MCP methods and tools it allows, and whether it may administer. Once " +
			"a policy is imported (or an OIDC issuer is configured), everything it does not allow is denied.",
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newPolicyImportCmd(), newPolicyExportCmd())
	return cmd
}

func newPolicyImportCmd() *cobra.Command {
	var o clientOpts
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Replace the policy with FILE (YAML or JSON; - for stdin); in force at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			var doc []byte
			var err error
			if file == "-" {
				doc, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 16<<20))
			} else {
				doc, err = os.ReadFile(file)
			}
			if err != nil {
				return usageErr("cannot read %s: %v", file, err)
			}
			// Check the file here first: a malformed policy is the user's
			// input (exit 2), explained without a running gateway. Unknown
			// servers are the gateway's to warn about.
			if _, _, err := auth.ParsePolicy(doc, nil); err != nil {
				return &exitError{code: exitInvalid, err: fmt.Errorf("%s: %w", file, err)}
			}
			resp, err := o.do(http.MethodPut, "/api/v1/policy", doc)
			if err != nil {
				return err
			}
			var out struct {
				Policy   auth.PolicyDoc `json:"policy"`
				Warnings []string       `json:"warnings"`
			}
			_ = json.Unmarshal(resp.body, &out)
			for _, w := range out.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning: "+w)
			}
			if o.asJSON {
				return printRaw(cmd.OutOrStdout(), resp.body)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Imported the policy: %d group mappings, %d scopes; in force now.\n", len(out.Policy.GroupMappings), len(out.Policy.Scopes))
			return nil
		},
	}
	o.bind(cmd, true)
	return cmd
}

func newPolicyExportCmd() *cobra.Command {
	var o clientOpts
	cmd := &cobra.Command{
		Use:   "export [--json]",
		Short: "Print the policy in force (YAML, or JSON with --json)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := o.do(http.MethodGet, "/api/v1/policy", nil)
			if err != nil {
				return err
			}
			if o.asJSON {
				return printRaw(cmd.OutOrStdout(), resp.body)
			}
			y, err := yaml.JSONToYAML(resp.body)
			if err != nil {
				return failed(fmt.Errorf("the gateway's answer is not a policy: %v", err))
			}
			_, err = cmd.OutOrStdout().Write(y)
			return err
		},
	}
	o.bind(cmd, true)
	return cmd
}
