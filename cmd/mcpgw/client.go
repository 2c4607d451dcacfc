package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcpgw/mcpgw/registry"
)

// clientOpts are the flags every client command shares.
type clientOpts struct {
	registryURL string
	tokenFile   string
	asJSON      bool
}

func (o *clientOpts) bind(cmd *cobra.Command, withJSON bool) {
	cmd.Flags().StringVar(&o.registryURL, "registry-url", envOr("MCPGW_REGISTRY_URL", "http://127.0.0.1:7860"), "URL of the running gateway (env MCPGW_REGISTRY_URL)")
	cmd.Flags().StringVar(&o.tokenFile, "token-file", "", "file holding the gateway token (env MCPGW_TOKEN_FILE; default: the local admin token)")
	if withJSON {
		cmd.Flags().BoolVar(&o.asJSON, "json", false, "print machine-readable JSON on stdout")
	}
}

func envOr(k, def string) string {
	if v := strings.TrimSpace(os.Getenv(k)); v != "" {
		return v
	}
	return def
}

// defaultTokenFile is the token the client commands send when none is named:
// MCPGW_TOKEN_FILE, else the local admin token of a gateway started with the
// default --data.
func defaultTokenFile() string {
	return envOr("MCPGW_TOKEN_FILE", filepath.Join(defaultDataDir(), "admin.token"))
}

// token reads the token file. A file named by --token-file or
// MCPGW_TOKEN_FILE that cannot be read is an error (a typo must not turn
// into an anonymous request); the local admin token file may be absent.
func (o *clientOpts) token() (string, error) {
	f := o.tokenFile
	named := f != ""
	if !named {
		f = defaultTokenFile()
		named = strings.TrimSpace(os.Getenv("MCPGW_TOKEN_FILE")) != ""
	}
	b, err := os.ReadFile(f)
	if err != nil {
		if !named && errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		return "", usageErr("cannot read token file %s: %v", f, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// apiResponse is a gateway answer with its status.
type apiResponse struct {
	status int
	body   []byte
}

// do sends one REST request and turns gateway errors into exit errors.
func (o *clientOpts) do(method, path string, body []byte) (*apiResponse, error) {
	base := strings.TrimSuffix(o.registryURL, "/")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageErr("--registry-url %q is not an absolute http(s) URL", o.registryURL)
	}
	tok, err := o.token()
	if err != nil {
		return nil, err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return nil, usageErr("bad request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	hc := &http.Client{Timeout: 60 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, failed(fmt.Errorf("could not reach the gateway at %s: %v", base, rootCause(err)))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, failed(fmt.Errorf("reading the gateway's answer: %v", err))
	}
	r := &apiResponse{status: resp.StatusCode, body: b}
	if resp.StatusCode >= 400 {
		return r, gatewayError(r)
	}
	return r, nil
}

func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// gatewayError turns a REST error body into one sentence and an exit code:
// 400 and 413 are the caller's input (2); everything else failed (1).
func gatewayError(r *apiResponse) error {
	var e struct {
		Error   string             `json:"error"`
		Details []registry.Problem `json:"details"`
	}
	msg := strings.TrimSpace(string(r.body))
	if json.Unmarshal(r.body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if msg == "" {
		msg = http.StatusText(r.status)
	}
	err := fmt.Errorf("the gateway answered %d: %s", r.status, msg)
	if r.status == http.StatusBadRequest || r.status == http.StatusRequestEntityTooLarge {
		return &exitError{code: exitInvalid, err: err}
	}
	return failed(err)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printRaw(w io.Writer, b []byte) error {
	var buf bytes.Buffer
	if json.Indent(&buf, b, "", "  ") != nil {
		_, err := w.Write(b)
		return err
	}
	buf.WriteByte('\n')
	_, err := buf.WriteTo(w)
	return err
}

// pathArg takes a service path from the argument or --path, with or without
// the leading or trailing slash.
func pathArg(args []string, flagPath string) (string, error) {
	p := flagPath
	if len(args) == 1 {
		if p != "" && registry.PathKey(p) != registry.PathKey(args[0]) {
			return "", usageErr("the PATH argument %q and --path %q disagree", args[0], p)
		}
		p = args[0]
	}
	key := registry.PathKey(p)
	if key == "" {
		return "", usageErr("a service PATH is required, e.g. /customer-support-assistant")
	}
	return key, nil
}

func escapePath(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

type summary struct {
	ServerName     string   `json:"server_name"`
	Path           string   `json:"path"`
	Enabled        bool     `json:"enabled"`
	HealthStatus   string   `json:"health_status"`
	LastCheckedISO string   `json:"last_checked_iso"`
	NumTools       int      `json:"num_tools"`
	Tags           []string `json:"tags"`
}

func addClientCommands(root *cobra.Command) {
	root.AddCommand(newRegisterCmd(), newListCmd(), newHealthCmd())
	for _, spec := range []struct {
		use, short, method, action string
	}{
		{"show", "Show one service with its tools", http.MethodGet, ""},
		{"remove", "Remove a service", http.MethodDelete, ""},
		{"enable", "Enable a service", http.MethodPost, "enable"},
		{"disable", "Disable a service", http.MethodPost, "disable"},
		{"refresh", "Re-read a service's tool list from its upstream now", http.MethodPost, "refresh"},
	} {
		root.AddCommand(newPathCmd(spec.use, spec.short, spec.method, spec.action))
	}
}

func newRegisterCmd() *cobra.Command {
	var o clientOpts
	var file string
	var overwrite bool
	cmd := &cobra.Command{
		Use:   "register --config FILE [--overwrite]",
		Short: "Register one server from a JSON file (- for stdin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageErr("--config FILE is required (a registration JSON file, or - for stdin)")
			}
			var doc []byte
			var err error
			if file == "-" {
				doc, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 64<<20))
			} else {
				doc, err = os.ReadFile(file)
			}
			if err != nil {
				return usageErr("cannot read %s: %v", file, err)
			}
			// Validate here first: a bad file is the user's input (exit 2)
			// and needs no running gateway to be explained.
			if _, _, err := registry.Parse(doc); err != nil {
				return &exitError{code: exitInvalid, err: fmt.Errorf("%s: %w", file, err)}
			}
			path := "/api/v1/servers"
			if overwrite {
				path += "?overwrite=true"
			}
			resp, err := o.do(http.MethodPost, path, doc)
			if err != nil {
				return err
			}
			var out struct {
				Server   summary  `json:"server"`
				Warnings []string `json:"warnings"`
			}
			_ = json.Unmarshal(resp.body, &out)
			for _, w := range out.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning: "+w)
			}
			if o.asJSON {
				return printRaw(cmd.OutOrStdout(), resp.body)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Registered %s at %s (%d tools).\n", out.Server.ServerName, out.Server.Path, out.Server.NumTools)
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "config", "", "registration JSON file, or - for stdin")
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "replace a server already registered at the same path")
	o.bind(cmd, true)
	return cmd
}

func newListCmd() *cobra.Command {
	var o clientOpts
	cmd := &cobra.Command{
		Use:   "list [--json]",
		Short: "List services: name, path, enabled, health, tools, tags",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := o.do(http.MethodGet, "/api/v1/servers", nil)
			if err != nil {
				return err
			}
			if o.asJSON {
				return printRaw(cmd.OutOrStdout(), resp.body)
			}
			var l struct {
				Services []summary `json:"services"`
			}
			if err := json.Unmarshal(resp.body, &l); err != nil {
				return failed(fmt.Errorf("the gateway's answer is not a service list: %v", err))
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPATH\tENABLED\tHEALTH\tTOOLS\tTAGS")
			for _, s := range l.Services {
				fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%d\t%s\n", s.ServerName, s.Path, s.Enabled, s.HealthStatus, s.NumTools, strings.Join(s.Tags, ","))
			}
			return tw.Flush()
		},
	}
	o.bind(cmd, true)
	return cmd
}

func newHealthCmd() *cobra.Command {
	var o clientOpts
	cmd := &cobra.Command{
		Use:   "health [PATH]",
		Short: "Health of all services or one",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := o.do(http.MethodGet, "/api/v1/health", nil)
			if err != nil {
				return err
			}
			var m map[string]struct {
				Status         string `json:"status"`
				LastCheckedISO string `json:"last_checked_iso"`
				NumTools       int    `json:"num_tools"`
			}
			if err := json.Unmarshal(resp.body, &m); err != nil {
				return failed(fmt.Errorf("the gateway's answer is not a health map: %v", err))
			}
			if len(args) == 1 {
				key := registry.PathKey(args[0])
				for p, h := range m {
					if registry.PathKey(p) == key {
						if o.asJSON {
							return printJSON(cmd.OutOrStdout(), map[string]any{p: h})
						}
						fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", p, h.Status)
						return nil
					}
				}
				return failed(fmt.Errorf("no service is registered at /%s", key))
			}
			if o.asJSON {
				return printRaw(cmd.OutOrStdout(), resp.body)
			}
			paths := make([]string, 0, len(m))
			for p := range m {
				paths = append(paths, p)
			}
			sort.Strings(paths)
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PATH\tSTATUS\tLAST CHECKED\tTOOLS")
			for _, p := range paths {
				h := m[p]
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", p, h.Status, orDash(h.LastCheckedISO), h.NumTools)
			}
			return tw.Flush()
		},
	}
	o.bind(cmd, true)
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// newPathCmd builds one of the commands that act on one service by path.
func newPathCmd(use, short, method, action string) *cobra.Command {
	var o clientOpts
	var flagPath string
	var approve bool
	cmd := &cobra.Command{
		Use:   use + " PATH",
		Short: short,
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := pathArg(args, flagPath)
			if err != nil {
				return err
			}
			p := "/api/v1/servers/" + escapePath(key)
			if action != "" {
				p += "/" + action
			}
			if approve {
				p += "?approve=true"
			}
			resp, err := o.do(method, p, nil)
			if err != nil {
				return err
			}
			if o.asJSON || use == "show" || use == "refresh" {
				return printRaw(cmd.OutOrStdout(), resp.body)
			}
			switch use {
			case "remove":
				fmt.Fprintf(cmd.OutOrStdout(), "Removed /%s.\n", key)
			default:
				var s summary
				_ = json.Unmarshal(resp.body, &s)
				state := "disabled"
				if s.Enabled {
					state = "enabled"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s is now %s.\n", s.Path, state)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&flagPath, "path", "", "service path (instead of the PATH argument)")
	if use == "refresh" {
		cmd.Flags().BoolVar(&approve, "approve", false, "approve changed tool definitions of a server with pin_tools")
	}
	o.bind(cmd, true)
	return cmd
}
