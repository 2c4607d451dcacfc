package main

import (
	"reflect"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{4}, 4},
		{[]float64{3, 1, 2}, 2},
		{[]float64{10, 1, 4, 2}, 3},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %g, want %g", tc.in, got, tc.want)
		}
	}
}

func TestMedianOfRounds(t *testing.T) {
	cmp := func(name string, v, base float64, errs int) figure {
		r := &results{}
		r.compare("relay", name, "µs", v, "direct", base, errs)
		return r.Figures[0]
	}
	val := func(name string, v float64, note string) figure {
		return figure{Section: "relay", Name: name, Unit: "conns", Value: v, Note: note}
	}
	round := func(fs ...figure) *results { return &results{Figures: fs} }
	f64 := func(v float64) *float64 { return &v }

	t.Run("one round is left as it was", func(t *testing.T) {
		r := round(cmp("mcpgw p50", 500, 250, 0))
		if got := medianOfRounds([]*results{r}); !reflect.DeepEqual(got, r.Figures) {
			t.Errorf("got %+v", got)
		}
	})
	t.Run("medians, summed errors, the spread in the note", func(t *testing.T) {
		got := medianOfRounds([]*results{
			round(cmp("mcpgw p50", 500, 250, 0), val("new conns", 4, "first"), val("new conns", 0, "second")),
			round(cmp("mcpgw p50", 450, 300, 1), val("new conns", 2, "first"), val("new conns", 1, "second")),
			round(cmp("mcpgw p50", 600, 200, 0), val("new conns", 3, "first"), val("new conns", 0, "second")),
		})
		want := []figure{
			// Ratios 2, 1.5, 3: the median ratio, not the ratio of the medians (500/250).
			{Section: "relay", Name: "mcpgw p50", Unit: "µs", Value: 500, Base: f64(250), BaseOf: "direct", Ratio: f64(2), Errors: 1,
				Note: "median of 3 rounds, ratio 1.5–3"},
			{Section: "relay", Name: "new conns", Unit: "conns", Value: 3, Note: "first; median of 3 rounds, value 2–4"},
			{Section: "relay", Name: "new conns", Unit: "conns", Value: 0, Note: "second; median of 3 rounds, value 0–1"},
		}
		if !reflect.DeepEqual(got, want) {
			for i := range got {
				t.Logf("got %d: %+v (base %v ratio %v)", i, got[i], deref(got[i].Base), deref(got[i].Ratio))
			}
			t.Errorf("merged figures differ from %+v", want)
		}
	})
	t.Run("a round that failed part way", func(t *testing.T) {
		got := medianOfRounds([]*results{
			round(cmp("mcpgw p50", 500, 250, 0)),
			round(cmp("mcpgw p50", 400, 200, 0), val("new conns", 2, "")),
			round(cmp("mcpgw p50", 600, 300, 0), val("new conns", 4, "")),
		})
		want := []figure{
			{Section: "relay", Name: "mcpgw p50", Unit: "µs", Value: 500, Base: f64(250), BaseOf: "direct", Ratio: f64(2),
				Note: "median of 3 rounds, ratio 2–2"},
			{Section: "relay", Name: "new conns", Unit: "conns", Value: 3, Note: "median of 2 rounds, value 2–4"},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("merged figures %+v, want %+v", got, want)
		}
		one := medianOfRounds([]*results{round(), round(val("new conns", 7, ""))})
		if len(one) != 1 || one[0].Value != 7 || one[0].Note != "measured in 1 of 2 rounds" {
			t.Errorf("a figure of one round: %+v", one)
		}
	})
	t.Run("no rounds", func(t *testing.T) {
		if got := medianOfRounds(nil); got != nil {
			t.Errorf("got %+v", got)
		}
	})
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
