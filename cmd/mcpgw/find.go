package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// maxTop mirrors the finder's limit so bad input is refused before a
// request is sent.
const maxTop = 50

func newFindCmd() *cobra.Command {
	var o clientOpts
	var tags []string
	var top int
	cmd := &cobra.Command{
		Use:   `find "QUERY" [--tag T]... [--top N] [--json]`,
		Short: "Find the tools that fit a need, by description and/or tags",
		Long: "Find the tools that fit a need among the registered services: describe the need in plain words, " +
			"narrow it with --tag (a service must carry every tag given), or list a tag's tools with no query.",
		Example: `  mcpgw find "check the warranty of a product"
  mcpgw find "create an issue" --tag gitlab --top 3
  mcpgw find --tag database --json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			query := strings.TrimSpace(strings.Join(args, " "))
			tags = cleanTags(tags)
			if query == "" && len(tags) == 0 {
				return usageErr("give a QUERY, at least one --tag, or both")
			}
			if top < 1 || top > maxTop {
				return usageErr("--top must be between 1 and %d", maxTop)
			}
			v := url.Values{}
			if query != "" {
				v.Set("q", query)
			}
			for _, t := range tags {
				v.Add("tag", t)
			}
			v.Set("top", strconv.Itoa(top))
			resp, err := o.do(http.MethodGet, "/api/v1/search?"+v.Encode(), nil)
			if err != nil {
				return err
			}
			if o.asJSON {
				return printRaw(cmd.OutOrStdout(), resp.body)
			}
			var out struct {
				Results []struct {
					ToolName    string  `json:"tool_name"`
					ServicePath string  `json:"service_path"`
					Score       float64 `json:"overall_similarity_score"`
					Description struct {
						Main *string `json:"main"`
					} `json:"tool_parsed_description"`
				} `json:"results"`
			}
			if err := json.Unmarshal(resp.body, &out); err != nil {
				return failed(fmt.Errorf("the gateway's answer is not a search result: %v", err))
			}
			if len(out.Results) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "No tools found.")
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SCORE\tSERVICE\tTOOL\tDESCRIPTION")
			for _, r := range out.Results {
				desc := ""
				if r.Description.Main != nil {
					desc = firstLine(*r.Description.Main, 80)
				}
				fmt.Fprintf(tw, "%.3f\t%s\t%s\t%s\n", r.Score, r.ServicePath, r.ToolName, desc)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringArrayVar(&tags, "tag", nil, "only services carrying this tag (repeatable; all must match; comma-separated also works)")
	cmd.Flags().IntVar(&top, "top", 5, fmt.Sprintf("how many tools to show (1-%d)", maxTop))
	o.bind(cmd, true)
	return cmd
}

func cleanTags(in []string) []string {
	var out []string
	for _, v := range in {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

// firstLine is the first non-empty line of s, cut to max runes.
func firstLine(s string, max int) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			if r := []rune(l); len(r) > max {
				return string(r[:max-1]) + "…"
			}
			return l
		}
	}
	return ""
}
