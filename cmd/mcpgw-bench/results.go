package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// figure is one measured number; comparisons carry both sides and a ratio.
type figure struct {
	Section string   `json:"section"`
	Name    string   `json:"name"`
	Unit    string   `json:"unit"`
	Value   float64  `json:"value"`
	Base    *float64 `json:"baseline,omitempty"`
	BaseOf  string   `json:"baseline_name,omitempty"`
	Ratio   *float64 `json:"ratio,omitempty"`
	Note    string   `json:"note,omitempty"`
	Errors  int      `json:"errors,omitempty"`
}

type results struct {
	Machine machine   `json:"machine"`
	When    string    `json:"when"`
	Smoke   bool      `json:"smoke"`
	Figures []figure  `json:"figures"`
	started time.Time `json:"-"`
}

func (r *results) add(f figure) { r.Figures = append(r.Figures, f) }

func (r *results) value(section, name, unit string, v float64, note string) {
	r.add(figure{Section: section, Name: name, Unit: unit, Value: round(v), Note: note})
}

// compare records value against a baseline with their ratio.
func (r *results) compare(section, name, unit string, v float64, baseName string, base float64, errs int) {
	b := round(base)
	f := figure{Section: section, Name: name, Unit: unit, Value: round(v), Base: &b, BaseOf: baseName, Errors: errs}
	if base != 0 {
		ratio := round(v / base)
		f.Ratio = &ratio
	}
	r.add(f)
}

func round(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v*1000) / 1000
}

func (r *results) failed() bool {
	for _, f := range r.Figures {
		if f.Errors > 0 {
			return true
		}
	}
	return false
}

// gatewayFailed reports errors of the gateway or of the direct calls,
// leaving out those of the reference relays (figures named after them),
// which are not the code under test.
func (r *results) gatewayFailed() bool {
	for _, f := range r.Figures {
		if f.Errors > 0 && !strings.HasPrefix(f.Name, "reverseproxy") && !strings.HasPrefix(f.Name, "tcp copy") && !strings.HasPrefix(f.Name, "http relay") {
			return true
		}
	}
	return false
}

func (r *results) print(w io.Writer) {
	fmt.Fprintf(w, "mcpgw-bench on %d cores, %s, %s (%s)\n", r.Machine.Cores, r.Machine.CPU, r.Machine.Go, r.When)
	if r.Smoke {
		fmt.Fprintln(w, "SMOKE RUN: tiny sizes, figures are not meaningful")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SECTION\tFIGURE\tVALUE\tBASELINE\tRATIO\tERRORS\tNOTE")
	for _, f := range r.Figures {
		base, ratio := "", ""
		if f.Base != nil {
			base = fmt.Sprintf("%g %s (%s)", *f.Base, f.Unit, f.BaseOf)
		}
		if f.Ratio != nil {
			ratio = fmt.Sprintf("%.2f", *f.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%s\t%g %s\t%s\t%s\t%d\t%s\n", f.Section, f.Name, f.Value, f.Unit, base, ratio, f.Errors, f.Note)
	}
	tw.Flush()
}

func (r *results) write(path string) error { return writeJSONFile(path, r) }

// durations summarizes a sample of latencies.
type durations []time.Duration

func (d durations) pct(p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append(durations(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	if i < 0 {
		i = 0
	}
	return s[i]
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

func sideName(s string) string { return strings.ReplaceAll(s, " ", "_") }

// medianOfRounds merges the figures of several rounds of one section into
// one figure each: value, baseline and ratio are each the median over the
// rounds, errors their sum, and the note gives the ratio's range (the
// value's when there is no ratio), so the spread stays visible. Figures are
// matched by section, name and how many of that name came before in the
// round (a section may record one name twice).
func medianOfRounds(rounds []*results) []figure {
	if len(rounds) == 0 {
		return nil
	}
	if len(rounds) == 1 {
		return rounds[0].Figures
	}
	type key struct {
		section, name string
		nth           int
	}
	keyed := func(r *results) (map[key]figure, []key) {
		seen := map[[2]string]int{}
		m := map[key]figure{}
		var order []key
		for _, f := range r.Figures {
			k := key{f.Section, f.Name, seen[[2]string{f.Section, f.Name}]}
			seen[[2]string{f.Section, f.Name}]++
			m[k] = f
			order = append(order, k)
		}
		return m, order
	}
	// The order is the first round's, then figures only later rounds
	// measured (a round that failed part way has fewer).
	all := make([]map[key]figure, len(rounds))
	var order []key
	inOrder := map[key]bool{}
	for i, r := range rounds {
		m, o := keyed(r)
		all[i] = m
		for _, k := range o {
			if !inOrder[k] {
				inOrder[k] = true
				order = append(order, k)
			}
		}
	}
	out := make([]figure, 0, len(order))
	for _, k := range order {
		var vals, bases, ratios []float64
		var merged figure
		for _, m := range all {
			f, ok := m[k]
			if !ok {
				continue
			}
			if len(vals) == 0 {
				merged = f
				merged.Errors = 0
			}
			vals = append(vals, f.Value)
			if f.Base != nil {
				bases = append(bases, *f.Base)
			}
			if f.Ratio != nil {
				ratios = append(ratios, *f.Ratio)
			}
			merged.Errors += f.Errors
		}
		merged.Value = round(median(vals))
		if len(bases) > 0 {
			b := round(median(bases))
			merged.Base = &b
		}
		spread, what := vals, "value"
		if len(ratios) > 0 {
			q := round(median(ratios))
			merged.Ratio = &q
			spread, what = ratios, "ratio"
		}
		note := fmt.Sprintf("median of %d rounds, %s %g–%g", len(vals), what, slices.Min(spread), slices.Max(spread))
		if len(vals) == 1 {
			note = fmt.Sprintf("measured in 1 of %d rounds", len(rounds))
		}
		if merged.Note != "" {
			note = merged.Note + "; " + note
		}
		merged.Note = note
		out = append(out, merged)
	}
	return out
}

// median is the middle of vs (the mean of the two middle ones for an even
// count); 0 for none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
