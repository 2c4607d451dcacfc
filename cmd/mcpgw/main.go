// Command mcpgw is an MCP server registry and gateway in one binary: `mcpgw
// serve` runs it; the other commands are its clients.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version and commit are set at build time with -ldflags -X.
var (
	version = "dev"
	commit  = ""
)

// Exit codes of SPEC section 1.
const (
	exitOK      = 0
	exitFailed  = 1
	exitInvalid = 2
)

// exitError carries the exit code of a failed command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr marks an error as the user's input (exit 2).
func usageErr(format string, args ...any) error {
	return &exitError{code: exitInvalid, err: fmt.Errorf(format, args...)}
}

// failed marks an error as a failed operation (exit 1).
func failed(err error) error { return &exitError{code: exitFailed, err: err} }

func main() {
	root := newRootCmd()
	err := root.Execute()
	if err == nil {
		os.Exit(exitOK)
	}
	fmt.Fprintln(os.Stderr, "mcpgw: "+sentence(err.Error()))
	var ee *exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	// Cobra's own errors are about flags and arguments: usage.
	os.Exit(exitInvalid)
}

func sentence(s string) string {
	if s == "" {
		return "unknown error."
	}
	if c := s[len(s)-1]; c != '.' && c != '!' && c != '?' && c != '\n' {
		s += "."
	}
	return s
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "mcpgw",
		Short:         "MCP server registry and gateway",
		Long:          "mcpgw is an MCP server registry and gateway in one binary. `mcpgw serve` runs the gateway; the other commands talk to a running gateway.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErr("%v (see `%s --help`)", err, c.CommandPath())
	})
	root.AddCommand(newServeCmd(), newVersionCmd(), newCallCmd())
	root.AddCommand(newFindCmd())
	root.AddCommand(newAPIKeyCmd(), newPolicyCmd(), newTokenCmd())
	addClientCommands(root)
	return root
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := commit
			if c == "" {
				if bi, ok := debug.ReadBuildInfo(); ok {
					for _, s := range bi.Settings {
						if s.Key == "vcs.revision" {
							c = s.Value
						}
					}
				}
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]string{"version": version, "commit": c, "go": runtime.Version()})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "mcpgw %s (commit %s, %s)\n", version, orNone(c), runtime.Version())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func orNone(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
