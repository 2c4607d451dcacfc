package search

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/registry"
)

// TestSchemaTextMatchesDecoding checks the JSON scanner of schemaText against decoding
// with encoding/json, on every schema of the catalog and on odd ones: the
// same words, in any order (a field is a bag of words).
func TestSchemaTextMatchesDecoding(t *testing.T) {
	schemas := []string{
		``,
		`{}`,
		`{"type":"object"}`,
		`{"type":"object","properties":{"id":{"type":"string","description":"the identifier"}}}`,
		`{"Properties":{"Name":{"Description":"upper-case keys match too"}}}`,
		`{"properties":{"a":{"description":"first"}},"properties":{"b":{"description":"last wins"}}}`,
		`{"properties":{"q":{"description":"escaped \"quotes\" and \u00e9 and a \\ backslash\nnewline"}}}`,
		`{"properties":{"deep":{"properties":{"deeper":{"properties":{"deepest":{"properties":{"tooDeep":{"description":"x"}}}}}}}}}`,
		`{"properties":{"list":{"type":"array","items":{"properties":{"elem":{"description":"an element"}}}}}}`,
		`{"items":{"properties":{"top":{"description":"items at the top"}}}}`,
		`{"properties":{"n":null,"s":{"description":""},"t":{"type":"string"}}}`,
		`  { "properties" : { "spaced" : { "description" : "white space" } } }  `,
		`{"properties":{"unicode_名前":{"description":"ünïcödé"}}}`,
		`{"properties":{"dup":{"description":"first"},"dup":{"description":"second"}}}`,
		`{"items":{"properties":{"x":{"description":"one"}}},"items":{"properties":{"y":{"description":"two"}}}}`,
	}
	files, _ := filepath.Glob("../testdata/catalog/*.json")
	for _, f := range files {
		b, err := readFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s, _, err := registry.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, tool := range s.ToolList {
			schemas = append(schemas, string(tool.Schema))
		}
	}
	if len(schemas) < 100 {
		t.Fatalf("only %d schemas", len(schemas))
	}
	words := func(s string) []string {
		w := strings.Fields(s)
		sort.Strings(w)
		return w
	}
	for _, sc := range schemas {
		got, want := words(schemaText(json.RawMessage(sc))), words(schemaTextDecoded(json.RawMessage(sc)))
		if !reflect.DeepEqual(got, want) && (len(got) > 0 || len(want) > 0) {
			t.Errorf("schema %.80s:\nscanned %q\ndecoded %q", sc, got, want)
		}
	}
	// Malformed input yields what can be read, and never hangs or panics.
	for _, bad := range []string{`{`, `{"properties":`, `{"properties":{"a":`, `{"properties":{"a":{"description":"x"`, `[1,2]`, `"str"`, `{"a":,}`, `{"properties":{"a" "b"}}`} {
		_ = schemaText(json.RawMessage(bad))
	}
}

// schemaTextDecoded is schemaText as it was before the scanner, decoding
// the schema with encoding/json: the reference the scanner is checked against.
// It is the searchable text of a tool's input schema: every
// property's name and description, nested objects and array items included.
// A schema that is not what it should be yields what could be read of it.
func schemaTextDecoded(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var b strings.Builder
	// Most schemas decode straight into typedSchema; only one with an odd
	// shape somewhere (a non-string description, a tuple of items) takes
	// the slower, lenient walk.
	var ts typedSchema
	if json.Unmarshal(raw, &ts) == nil {
		ts.text(&b, 0)
		return b.String()
	}
	schemaWalk(&b, raw, 0)
	return b.String()
}

type typedSchema struct {
	Description string                  `json:"description"`
	Properties  map[string]*typedSchema `json:"properties"`
	Items       *typedSchema            `json:"items"`
}

func (n *typedSchema) text(b *strings.Builder, depth int) {
	if n == nil || depth > maxSchemaDepth {
		return
	}
	names := make([]string, 0, len(n.Properties))
	for k := range n.Properties {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		b.WriteString(k)
		b.WriteByte(' ')
		if p := n.Properties[k]; p != nil && p.Description != "" {
			b.WriteString(p.Description)
			b.WriteByte('\n')
		}
		n.Properties[k].text(b, depth+1)
	}
	n.Items.text(b, depth+1)
}

type decodedNode struct {
	Description json.RawMessage            `json:"description"`
	Properties  map[string]json.RawMessage `json:"properties"`
	Items       json.RawMessage            `json:"items"`
}

func schemaWalk(b *strings.Builder, raw json.RawMessage, depth int) {
	if depth > maxSchemaDepth {
		return
	}
	var n decodedNode
	if json.Unmarshal(raw, &n) != nil {
		return
	}
	names := make([]string, 0, len(n.Properties))
	for k := range n.Properties {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		b.WriteString(k)
		b.WriteByte(' ')
		var p decodedNode
		if json.Unmarshal(n.Properties[k], &p) == nil {
			var d string
			if json.Unmarshal(p.Description, &d) == nil && d != "" {
				b.WriteString(d)
				b.WriteByte('\n')
			}
		}
		schemaWalk(b, n.Properties[k], depth+1)
	}
	if len(n.Items) > 0 && n.Items[0] == '{' {
		schemaWalk(b, n.Items, depth+1)
	}
}

func readFile(f string) ([]byte, error) { return os.ReadFile(f) }
