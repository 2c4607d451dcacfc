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

// Listing is what a tool list read from a server's upstream changes in the
// registry.
type Listing struct {
	// Tools is the tool list to store: the upstream's, except that a
	// pinned server keeps the approved definition of each changed tool.
	Tools []Tool
	// Pending are the held-back changed definitions (pinned servers only).
	Pending []Tool
	// Diff compares the approved list with the upstream's.
	Diff ToolDiff
	// NewlyChanged names the changed tools not already held back with the
	// same definition: the changes not seen before.
	NewlyChanged []string
	// Store is false when nothing the registry holds would change.
	Store bool
}

// ApplyListing decides what s's tool list becomes after its upstream listed
// the tools in listed. Tools whose definition did not change keep their
// registered entry (with its parsed_description args and returns). When s
// pins its tools (pin_tools) and approve is false, a changed description or
// schema of an existing tool is held back in Pending and the approved
// definition stays; approve takes the upstream's definitions as they are.
func ApplyListing(s *Server, listed []Tool, approve bool) Listing {
	l := Listing{Diff: DiffTools(s.ToolList, listed)}
	hold := s.PinTools && !approve && len(l.Diff.Changed) > 0
	if !hold {
		l.Tools = MergeTools(s.ToolList, listed)
	} else {
		before := make(map[string]Tool, len(s.ToolList))
		for _, t := range s.ToolList {
			before[t.Name] = t
		}
		for _, t := range listed {
			if o, ok := before[t.Name]; ok {
				if !SameDefinition(o, t) {
					l.Pending = append(l.Pending, t)
				}
				t = o
			}
			l.Tools = append(l.Tools, t)
		}
	}
	pendingBefore := make(map[string]Tool, len(s.PendingTools))
	for _, t := range s.PendingTools {
		pendingBefore[t.Name] = t
	}
	for _, name := range l.Diff.Changed {
		if p, ok := pendingBefore[name]; !ok || !SameDefinition(p, findTool(listed, name)) {
			l.NewlyChanged = append(l.NewlyChanged, name)
		}
	}
	l.Store = !DiffTools(s.ToolList, l.Tools).Empty() || !DiffTools(s.PendingTools, l.Pending).Empty()
	return l
}

// Held reports whether calls to the named tool are refused because its
// changed definition awaits approval.
func (s *Server) Held(tool string) bool {
	for _, t := range s.PendingTools {
		if t.Name == tool {
			return true
		}
	}
	return false
}

func findTool(tools []Tool, name string) Tool {
	for _, t := range tools {
		if t.Name == name {
			return t
		}
	}
	return Tool{}
}
