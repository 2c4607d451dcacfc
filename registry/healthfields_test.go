package registry

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseHealthCheckFields(t *testing.T) {
	for _, tc := range []struct {
		name     string
		changes  map[string]any
		skip     bool
		interval time.Duration
		problem  string // substring of the validation error; "" means accepted
	}{
		{name: "defaults", changes: map[string]any{}},
		{name: "opt out", changes: map[string]any{"health_check": false}, skip: true},
		{name: "explicit on", changes: map[string]any{"health_check": true}},
		{name: "interval string", changes: map[string]any{"health_check_interval": "45s"}, interval: 45 * time.Second},
		{name: "interval minutes", changes: map[string]any{"health_check_interval": "5m"}, interval: 5 * time.Minute},
		{name: "interval seconds number", changes: map[string]any{"health_check_interval": 90}, interval: 90 * time.Second},
		{name: "interval too short", changes: map[string]any{"health_check_interval": "10ms"}, problem: "health_check_interval: is 10ms; it must be between 1s and 24h0m0s"},
		{name: "interval too long", changes: map[string]any{"health_check_interval": "48h"}, problem: "must be between"},
		{name: "interval not a duration", changes: map[string]any{"health_check_interval": "soon"}, problem: `health_check_interval: "soon" is not a duration`},
		{name: "interval wrong type", changes: map[string]any{"health_check_interval": true}, problem: "health_check_interval: must be a duration"},
		{name: "health_check wrong type", changes: map[string]any{"health_check": "no"}, problem: "health_check: must be true or false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, warnings, err := Parse(doc(tc.changes))
			if tc.problem != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("err = %v, want one containing %q", err, tc.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != 0 {
				t.Fatalf("known fields reported as warnings: %v", warnings)
			}
			if s.SkipHealthCheck != tc.skip || s.HealthCheckInterval != tc.interval {
				t.Fatalf("skip=%v interval=%v, want %v %v", s.SkipHealthCheck, s.HealthCheckInterval, tc.skip, tc.interval)
			}
			if len(s.Extra) != 0 {
				t.Fatalf("known fields kept as unknown: %v", s.Extra)
			}
			// Both stored and public forms round-trip the settings.
			b, err := s.MarshalStorage()
			if err != nil {
				t.Fatal(err)
			}
			back, err := UnmarshalStorage(b)
			if err != nil {
				t.Fatal(err)
			}
			if back.SkipHealthCheck != tc.skip || back.HealthCheckInterval != tc.interval || len(back.Extra) != 0 {
				t.Fatalf("storage round trip: skip=%v interval=%v extra=%v", back.SkipHealthCheck, back.HealthCheckInterval, back.Extra)
			}
			pub, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			again, _, err := Parse(pub)
			if err != nil {
				t.Fatalf("public form does not re-register: %v", err)
			}
			if again.SkipHealthCheck != tc.skip || again.HealthCheckInterval != tc.interval {
				t.Fatalf("public round trip: skip=%v interval=%v", again.SkipHealthCheck, again.HealthCheckInterval)
			}
		})
	}
}

func TestDiffTools(t *testing.T) {
	desc := func(s string) ParsedDescription { return ParsedDescription{Main: &s} }
	args := "city: the city"
	old := []Tool{
		{Name: "a", ParsedDescription: desc("A"), Schema: json.RawMessage(`{"type":"object","properties":{"x":{"type":"string"}}}`)},
		{Name: "b", ParsedDescription: ParsedDescription{Main: desc("B").Main, Args: &args}},
		{Name: "c", ParsedDescription: desc("C")},
		{Name: "gone", ParsedDescription: desc("G")},
	}
	cur := []Tool{
		{Name: "new", ParsedDescription: desc("N")},
		// Same schema with other key order and spacing: unchanged.
		{Name: "a", ParsedDescription: desc("A"), Schema: json.RawMessage(`{ "properties": {"x": {"type": "string"}}, "type": "object" }`)},
		{Name: "b", ParsedDescription: desc("B")},
		{Name: "c", ParsedDescription: desc("C, now also deletes files")},
	}
	d := DiffTools(old, cur)
	if strings.Join(d.Added, ",") != "new" || strings.Join(d.Removed, ",") != "gone" || strings.Join(d.Changed, ",") != "c" {
		t.Fatalf("diff = %+v", d)
	}
	if d.Empty() || !DiffTools(old, old).Empty() {
		t.Fatal("Empty is wrong")
	}
	merged := MergeTools(old, cur)
	if len(merged) != 4 || merged[2].Name != "b" || merged[2].ParsedDescription.Args == nil {
		t.Fatalf("merge lost the registered args of an unchanged tool: %+v", merged)
	}
	if merged[3].Description() != "C, now also deletes files" {
		t.Fatalf("merge kept a changed tool's old definition: %q", merged[3].Description())
	}
	schemaChanged := []Tool{{Name: "a", ParsedDescription: desc("A"), Schema: json.RawMessage(`{"type":"object"}`)}}
	if got := DiffTools(old[:1], schemaChanged).Changed; len(got) != 1 {
		t.Fatalf("a schema change is not a change: %v", got)
	}
}
