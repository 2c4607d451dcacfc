package registry

import (
	"bytes"
	"encoding/json"
	"reflect"
)

// ToolDiff says what changed between two tool lists of one server, by tool
// name, each list in the order of the newer tool list (removed ones in the
// order of the older).
type ToolDiff struct {
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	Changed []string `json:"changed"`
}

// Empty reports whether the two lists define the same tools.
func (d ToolDiff) Empty() bool {
	return len(d.Added) == 0 && len(d.Removed) == 0 && len(d.Changed) == 0
}

// DiffTools compares an older tool list with a newer one. A tool counts as
// changed when its main description or its input schema differs; schemas are
// compared as JSON values, so key order and whitespace do not matter.
func DiffTools(old, cur []Tool) ToolDiff {
	d := ToolDiff{Added: []string{}, Removed: []string{}, Changed: []string{}}
	before := make(map[string]Tool, len(old))
	for _, t := range old {
		before[t.Name] = t
	}
	for _, t := range cur {
		o, ok := before[t.Name]
		switch {
		case !ok:
			d.Added = append(d.Added, t.Name)
		case !SameDefinition(o, t):
			d.Changed = append(d.Changed, t.Name)
		}
		delete(before, t.Name)
	}
	for _, t := range old {
		if _, gone := before[t.Name]; gone {
			d.Removed = append(d.Removed, t.Name)
		}
	}
	return d
}

// SameDefinition reports whether two definitions of a tool agree in what a
// model reads and what a call must send: the main description and the input
// schema (compared as JSON values).
func SameDefinition(a, b Tool) bool {
	return a.Description() == b.Description() && SameJSON(a.Schema, b.Schema)
}

// SameJSON reports whether two JSON documents hold the same value. Absent and
// null are the same; a document that does not parse is compared byte for
// byte after compaction.
func SameJSON(a, b json.RawMessage) bool {
	if isNull(a) || isNull(b) {
		return isNull(a) == isNull(b)
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return bytes.Equal(compactJSON(a), compactJSON(b))
	}
	return reflect.DeepEqual(va, vb)
}

// MergeTools returns the newer tool list, keeping the older entry of every
// tool whose definition did not change, so that details the upstream does
// not report (such as a registration's parsed_description args and returns)
// survive a refresh.
func MergeTools(old, cur []Tool) []Tool {
	before := make(map[string]Tool, len(old))
	for _, t := range old {
		before[t.Name] = t
	}
	out := make([]Tool, 0, len(cur))
	for _, t := range cur {
		if o, ok := before[t.Name]; ok && SameDefinition(o, t) {
			t = o
		}
		out = append(out, t)
	}
	return out
}

func compactJSON(b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}
