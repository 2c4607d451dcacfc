package registry

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
)

// sortedHeaders orders headers so that two decodes compare equal however
// the entries of one header object were ordered (encoding/json's map gives
// them in random order).
func sortedHeaders(s *Server) {
	if s == nil {
		return
	}
	sort.SliceStable(s.Headers, func(i, j int) bool { return s.Headers[i].Name < s.Headers[j].Name })
}

// sameAsSlow checks that decodeStored, when it takes doc, gives exactly what
// encoding/json gives; it reports whether the fast path took it.
func sameAsSlow(t *testing.T, doc []byte) bool {
	t.Helper()
	fast, ok := decodeStored(doc)
	if !ok {
		return false
	}
	slow, err := unmarshalStorageSlow(doc)
	if err != nil {
		t.Fatalf("the fast decoder took a document encoding/json refuses (%v):\n%s", err, doc)
	}
	sortedHeaders(fast)
	sortedHeaders(slow)
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("decodes differ for\n%s\nfast: %#v\nslow: %#v", doc, fast, slow)
	}
	return true
}

// catalogDocs are the stored forms of the catalog's registrations: the
// documents start-up decodes, with real tool schemas and descriptions.
func catalogDocs(t testing.TB) [][]byte {
	t.Helper()
	files, err := filepath.Glob("../testdata/catalog/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no catalog files: %v", err)
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s, _, err := Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		doc, err := s.MarshalStorage()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, doc)
	}
	return out
}

// TestDecodeStoredCatalog: every stored catalog document takes the fast
// path (else start-up gains nothing) and decodes as encoding/json decodes
// it, also when a store hands it back reformatted (PostgreSQL's jsonb adds
// spaces and reorders keys).
func TestDecodeStoredCatalog(t *testing.T) {
	for i, doc := range catalogDocs(t) {
		if !sameAsSlow(t, doc) {
			t.Errorf("catalog document %d went the slow way:\n%.300s", i, doc)
		}
		var indented bytes.Buffer
		if err := json.Indent(&indented, doc, "", "  "); err != nil {
			t.Fatal(err)
		}
		if !sameAsSlow(t, indented.Bytes()) {
			t.Errorf("indented catalog document %d went the slow way", i)
		}
		var m map[string]any
		if err := json.Unmarshal(doc, &m); err != nil {
			t.Fatal(err)
		}
		reordered, _ := json.Marshal(m) // keys sorted, schemas re-encoded
		if !sameAsSlow(t, reordered) {
			t.Errorf("reordered catalog document %d went the slow way", i)
		}
	}
}

// TestDecodeStoredCases: documents with what a stored document may hold
// decode as encoding/json decodes them; those the fast path does not follow
// exactly go the slow way (fast == false) and still decode right.
func TestDecodeStoredCases(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		fast bool
	}{
		{"minimal", `{"server_name":"a","path":"/a","proxy_pass_url":"http://x/mcp"}`, true},
		{"escapes", `{"server_name":"a \u003cb\u003e \"q\" \\ \n \u00e9 \ud83d\ude00","description":"tab\there","path":"/a"}`, true},
		{"surrogates", `{"server_name":"\ud800 \udc00 \ud83d\u0041 \ud83d\ude00\u0000 \u00E9 \/","description":"\b\f\r"}`, true},
		{"utf-8", `{"server_name":"café ☕ 😀","description":"日本語"}`, true},
		{"nulls", `{"server_name":null,"tags":null,"supported_transports":null,"tool_list":null,"headers":null,"num_tools":null,"is_python":null,"health_check":null,"pending_tool_changes":null}`, true},
		{"empty arrays", `{"tags":[],"supported_transports":[],"tool_list":[],"headers":[],"pending_tool_changes":[]}`, true},
		{"tools", `{"tool_list":[{"name":"t1","parsed_description":{"main":"does \u0026 things","args":null,"returns":"r"},"schema":{"type":"object","properties":{"a":{"type":"string","description":"x \"y\" [z]"}}}},{"name":"t2","schema":null},{"name":"t3","parsed_description":null},{}],"num_tools":4}`, true},
		{"tool extra keys", `{"tool_list":[{"name":"t","inputSchema":{"a":1},"parsed_description":{"main":"m","extra":[1,2]}}]}`, true},
		{"duplicate keys", `{"server_name":"a","server_name":"b","tool_list":[{"name":"x","name":"y","schema":1,"schema":{"b":2}}],"health_check":false,"health_check":null}`, true},
		{"headers", `{"headers":[{"Authorization":"Bearer $TOKEN"},{"X-A":"1","X-B":null},{"X-C":"1","X-C":"2"},null,{}]}`, true},
		{"settings", `{"health_check":false,"health_check_interval":"90s","pin_tools":true,"num_stars":-3,"num_tools":0,"is_python":true,"license":"MIT"}`, true},
		{"unknown fields", `{"server_name":"a","x_custom":{"k":[1,"2",null]},"another":"s","x_custom":7}`, true},
		{"spaces", " {\n \"server_name\" : \"a\" ,\n \"tags\" : [ \"x\" , \"y\" ] ,\"tool_list\" : [ { \"name\" : \"t\" , \"schema\" : { \"a\" : [ 1 , 2 ] } } ] } \n", true},

		{"case-folded key", `{"Server_Name":"a"}`, false},
		{"case-folded tool key", `{"tool_list":[{"NAME":"t"}]}`, false},
		{"escaped key", `{"server\u005fname":"a"}`, false},
		{"fraction", `{"num_tools":1.5}`, false},
		{"exponent", `{"num_stars":1e3}`, false},
		{"string number", `{"num_tools":"3"}`, false},
		{"null tag", `{"tags":["a",null]}`, false},
		{"null tool", `{"tool_list":[null]}`, false},
		{"state fields", `{"server_name":"a","enabled":true,"created_at":"2024-01-01T00:00:00Z"}`, false},
		{"invalid utf-8", "{\"server_name\":\"a\xffb\"}", false},
		{"top-level null", `null`, false},
		{"wrong type", `{"tags":"a"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !json.Valid([]byte(tc.doc)) {
				t.Skip("not JSON; covered by the fuzz test")
			}
			if got := sameAsSlow(t, []byte(tc.doc)); got != tc.fast {
				t.Errorf("fast path taken: %v, want %v", got, tc.fast)
			}
			// Whatever path it takes, UnmarshalStorage agrees with
			// encoding/json, error or not.
			s, err := UnmarshalStorage([]byte(tc.doc))
			slow, slowErr := unmarshalStorageSlow([]byte(tc.doc))
			if (err == nil) != (slowErr == nil) {
				t.Fatalf("UnmarshalStorage error %v, encoding/json %v", err, slowErr)
			}
			sortedHeaders(s)
			sortedHeaders(slow)
			if !reflect.DeepEqual(s, slow) {
				t.Fatalf("UnmarshalStorage %#v, want %#v", s, slow)
			}
		})
	}
}

// TestDecodeStoredBroken: a truncated or damaged document never panics and
// is never half decoded: the fast path gives up and UnmarshalStorage
// reports encoding/json's error.
func TestDecodeStoredBroken(t *testing.T) {
	doc := catalogDocs(t)[0]
	for _, cut := range []int{0, 1, 2, len(doc) / 3, len(doc) / 2, len(doc) - 1} {
		b := doc[:cut]
		if _, ok := decodeStored(b); ok {
			t.Errorf("truncated at %d: the fast path took it", cut)
		}
		if _, err := UnmarshalStorage(b); err == nil {
			t.Errorf("truncated at %d: no error", cut)
		}
	}
	for _, b := range []string{`{"server_name":"a",}`, `{"server_name" "a"}`, `{"server_name":"a"} x`, `{"tags":["a" "b"]}`, `{"num_tools":01}`, `{"num_tools":-}`, `{"is_python":tru}`} {
		if _, ok := decodeStored([]byte(b)); ok {
			t.Errorf("%s: the fast path took it", b)
		}
	}
}

// FuzzDecodeStored: on any valid JSON, the fast path either gives up or
// decodes exactly as encoding/json does; on anything else it does not panic.
func FuzzDecodeStored(f *testing.F) {
	for _, doc := range catalogDocs(f)[:4] {
		f.Add(doc)
	}
	f.Add([]byte(`{"server_name":"a \u003c","tags":["x"],"headers":[{"A":"b","A":null}],"tool_list":[{"name":"t","schema":{"x":"]"}}],"zz":[{}]}`))
	f.Add([]byte(`{"num_tools":-12,"health_check":false,"health_check_interval":"1m","parsed_description":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			decodeStored(b) // must not panic
			return
		}
		sameAsSlow(t, b)
	})
}

// TestUnmarshalStorageCopies: nothing decoded shares memory with the input,
// so a store may decode from a buffer it reuses for the next row.
func TestUnmarshalStorageCopies(t *testing.T) {
	docs := append(catalogDocs(t), []byte(`{"server_name":"x","headers":[{"A":"b"}],"x_extra":{"k":"v"},"tool_list":[{"name":"t","schema":{"a":"b"}}]}`))
	for i, doc := range docs {
		buf := bytes.Clone(doc)
		got, err := UnmarshalStorage(buf)
		if err != nil {
			t.Fatal(err)
		}
		for j := range buf {
			buf[j] = 'x'
		}
		want, _ := UnmarshalStorage(doc)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("document %d: the decoded server changed with its input buffer", i)
		}
	}
}
