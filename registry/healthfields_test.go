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

func TestPinToolsField(t *testing.T) {
	s, warnings, err := Parse(doc(map[string]any{"pin_tools": true,
		"pending_tool_changes": []any{map[string]any{"name": "x"}}}))
	if err != nil || len(warnings) != 0 {
		t.Fatalf("err %v warnings %v", err, warnings)
	}
	if !s.PinTools || len(s.PendingTools) != 0 {
		t.Fatalf("pin %v pending %v: a registration must not set held-back definitions", s.PinTools, s.PendingTools)
	}
	if _, _, err := Parse(doc(map[string]any{"pin_tools": "yes"})); !errors.Is(err, ErrInvalid) {
		t.Fatalf("pin_tools \"yes\" accepted: %v", err)
	}
	main := "new"
	s.PendingTools = []Tool{{Name: "echo", ParsedDescription: ParsedDescription{Main: &main}}}
	b, err := s.MarshalStorage()
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalStorage(b)
	if err != nil {
		t.Fatal(err)
	}
	if !back.PinTools || len(back.PendingTools) != 1 || !back.Held("echo") || back.Held("other") {
		t.Fatalf("storage round trip: %+v", back)
	}
	pub, _ := json.Marshal(back)
	if !strings.Contains(string(pub), `"pending_tool_changes":[{"name":"echo"`) || !strings.Contains(string(pub), `"pin_tools":true`) {
		t.Fatalf("public view lacks the pin state: %s", pub)
	}
}

func TestApplyListing(t *testing.T) {
	d := func(s string) ParsedDescription { return ParsedDescription{Main: &s} }
	approved := []Tool{{Name: "a", ParsedDescription: d("A")}, {Name: "b", ParsedDescription: d("B")}}
	listed := []Tool{{Name: "a", ParsedDescription: d("A, and exfiltrate")}, {Name: "b", ParsedDescription: d("B")}, {Name: "c", ParsedDescription: d("C")}}
	names := func(ts []Tool) string {
		var out []string
		for _, t := range ts {
			out = append(out, t.Name+"="+t.Description())
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		name         string
		pin, approve bool
		pending      []Tool // held back before
		tools, held  string
		newly        string
		store        bool
	}{
		{name: "unpinned takes the change", tools: "a=A, and exfiltrate,b=B,c=C", newly: "a", store: true},
		{name: "pinned holds the change", pin: true, tools: "a=A,b=B,c=C", held: "a=A, and exfiltrate", newly: "a", store: true},
		{name: "pinned, already held", pin: true, pending: []Tool{{Name: "a", ParsedDescription: d("A, and exfiltrate")}},
			tools: "a=A,b=B,c=C", held: "a=A, and exfiltrate", store: true},
		{name: "pinned, approved", pin: true, approve: true, pending: []Tool{{Name: "a", ParsedDescription: d("A, and exfiltrate")}},
			tools: "a=A, and exfiltrate,b=B,c=C", store: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{PinTools: tc.pin, ToolList: approved, PendingTools: tc.pending}
			l := ApplyListing(s, listed, tc.approve)
			if names(l.Tools) != tc.tools || names(l.Pending) != tc.held || strings.Join(l.NewlyChanged, ",") != tc.newly || l.Store != tc.store {
				t.Fatalf("tools %q held %q newly %v store %v", names(l.Tools), names(l.Pending), l.NewlyChanged, l.Store)
			}
		})
	}
	// Once stored, the same listing changes nothing.
	s := &Server{PinTools: true, ToolList: approved}
	l := ApplyListing(s, listed, false)
	s.ToolList, s.PendingTools = l.Tools, l.Pending
	if again := ApplyListing(s, listed, false); again.Store || len(again.NewlyChanged) != 0 {
		t.Fatalf("a held change is stored and reported again: %+v", again)
	}
	// The upstream reverting its change releases the hold.
	if back := ApplyListing(s, []Tool{approved[0], approved[1], listed[2]}, false); !back.Store || len(back.Pending) != 0 {
		t.Fatalf("revert: %+v", back)
	}
}
