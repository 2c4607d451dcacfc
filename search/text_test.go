package search

import (
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	gounicode "unicode"

	"github.com/blevesearch/bleve/v2/analysis/tokenizer/unicode"
	bleveregistry "github.com/blevesearch/bleve/v2/registry"

	"github.com/mcpgw/mcpgw/registry"
)

func TestToolWords(t *testing.T) {
	tests := []struct {
		name         string
		prefix, word []string
	}{
		{"LambdaUsingSDK___check_warranty_status", []string{"lambda", "using", "sdk"}, []string{"check", "warranty", "status"}},
		{"LambdaUsingSDK___get_customer_profile", []string{"lambda", "using", "sdk"}, []string{"get", "customer", "profile"}},
		{"target___getHTTPResponse", []string{"target"}, []string{"get", "http", "response"}},
		{"a___b___c_d", []string{"a", "b"}, []string{"c", "d"}}, // the last ___ separates the tool's own name
		{"___leading", nil, []string{"leading"}},                // no prefix before ___
		{"trailing___", nil, []string{"trailing"}},              // nothing after ___
		{"check_warranty_status", nil, []string{"check", "warranty", "status"}},
		{"getCustomerProfile", nil, []string{"get", "customer", "profile"}},
		{"API-retrieve-a-page", nil, []string{"api", "retrieve", "a", "page"}},
		{"browser.take.screenshot", nil, []string{"browser", "take", "screenshot"}},
		{"SDKClient", nil, []string{"sdk", "client"}},
		{"kubectl_get", nil, []string{"kubectl", "get"}},
		{"s3Upload", nil, []string{"s3", "upload"}},
		{"sequentialthinking", nil, []string{"sequentialthinking"}},
		{"ÜberTool_größe", nil, []string{"über", "tool", "größe"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix, words := ToolWords(tt.name)
			if !reflect.DeepEqual(prefix, tt.prefix) || !reflect.DeepEqual(words, tt.word) {
				t.Errorf("ToolWords(%q) = %q, %q; want %q, %q", tt.name, prefix, words, tt.prefix, tt.word)
			}
		})
	}
}

func TestExpandIdentifiers(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain words stay", "plain words stay"},
		{"use the serial_number field", "use the serial_number serial number serialnumber field"},
		{"GitHub repository", "GitHub git hub github repository"},
		{"(knowledgeBaseId)", "(knowledgeBaseId) knowledge base id"},
		{"e-mail", "e-mail e mail email"},
		{"Use browser_take_screenshot.", "Use browser_take_screenshot. browser take screenshot"},
		{"  keeps\ttabs and\n newlines ", "  keeps\ttabs and\n newlines "},
		{"a  serial_number\tb", "a  serial_number serial number serialnumber\tb"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := expandIdentifiers(tt.in); got != tt.want {
				t.Errorf("expandIdentifiers(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestAnalysisMatchesAcrossForms checks that the forms a query and a tool
// text use for the same word meet after analysis: stems, plurals, case,
// and identifier splitting.
func TestAnalysisMatchesAcrossForms(t *testing.T) {
	x, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	tests := []struct{ a, b string }{
		{"warranties", "warranty"},
		{"Retrieving", "retrieve"},
		{"DSNs", "dsn"},
		{"branches", "branch"},
		{"customer's", "customer"},
	}
	for _, tt := range tests {
		t.Run(tt.a, func(t *testing.T) {
			a, b := x.analyze(expandIdentifiers(tt.a)), x.analyze(expandIdentifiers(tt.b))
			if strings.Join(a, " ") != strings.Join(b, " ") {
				t.Errorf("%q analyzes to %q, %q to %q; want the same terms", tt.a, a, tt.b, b)
			}
		})
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		max  int
		want int
	}{
		{"warranti", "warranti", 2, 0},
		{"warrenti", "warranti", 2, 1},
		{"warratni", "warranti", 2, 1}, // transposition
		{"wrnty", "warranti", 2, 3},    // beyond max: max+1
		{"", "ab", 2, 2},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b, tt.max); got != tt.want {
			t.Errorf("editDistance(%q, %q, %d) = %d, want %d", tt.a, tt.b, tt.max, got, tt.want)
		}
	}
}

func TestSchemaText(t *testing.T) {
	tests := []struct{ name, schema, want string }{
		{"typed", `{"type":"object","properties":{"serial_number":{"type":"string","description":"Product serial"},"opts":{"type":"object","properties":{"deep":{"description":"nested"}}}}}`,
			"opts deep nested\nserial_number Product serial\n"},
		{"array items", `{"properties":{"files":{"type":"array","items":{"properties":{"path":{"description":"where"}}}}}}`, "files path where\n"},
		{"odd shapes read leniently", `{"properties":{"a":{"description":7},"b":{"description":"bee","items":[{"type":"string"}]}}}`, "a b bee\n"},
		{"not json", `{`, ""},
		{"empty", ``, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := schemaText([]byte(tt.schema)); got != tt.want {
				t.Errorf("schemaText = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestASCIIWordsMatchBleve checks the ASCII fast path of the analyzer
// against bleve's Unicode tokenizer, which it replaces for ASCII text: on
// random strings over the characters the word rules treat specially, and
// on every text of the catalog.
func TestASCIIWordsMatchBleve(t *testing.T) {
	tok, err := bleveregistry.NewCache().TokenizerNamed(unicode.Name)
	if err != nil {
		t.Fatal(err)
	}
	bleveWords := func(s string) []string {
		var out []string
		for _, tk := range tok.Tokenize([]byte(s)) {
			out = append(out, string(tk.Term))
		}
		return out
	}
	ours := func(s string) []string {
		var out []string
		asciiWords(s, func(w string) { out = append(out, w) })
		return out
	}
	check := func(s string) bool {
		t.Helper()
		if got, want := ours(s), bleveWords(s); !reflect.DeepEqual(got, want) && (len(got) > 0 || len(want) > 0) {
			t.Errorf("%q: asciiWords %q, bleve %q", s, got, want)
			return false
		}
		return true
	}
	for _, s := range []string{"", "a", "_", "__", "a_b", "_a_", "a.b", "a..b", "a.b.", ".a", "a.1", "1.a", "1.5", "1,000.50", "a1.2", "1a.b",
		"a:b", "a::b", "1:2", "don't", "it's", "a'", "'a", "1'2", "a,b", "1;2", "a;b", "a_.b", "a._b", "1_.2", "e-mail", "x@y.com",
		"http://example.com/a_b?c=d", "v1.2.3", "3.14e10", "A.B.C", "tab\there", "line\r\nbreak", "\x00\x7f", "a\"b", "a-b"} {
		check(s)
	}
	const alphabet = "aZ19_.,;:'\" -\n\t!?()@#/\\$%^&*+=[]{}<>|~`"
	rng := rand.New(rand.NewSource(1))
	bad := 0
	for n := 0; n < 200000 && bad < 10; n++ {
		b := make([]byte, rng.Intn(24))
		for i := range b {
			b[i] = alphabet[rng.Intn(len(alphabet))]
		}
		if !check(string(b)) {
			bad++
		}
	}
	servers, err := filepath.Glob("../testdata/catalog/*.json")
	if err != nil || len(servers) == 0 {
		t.Fatal("no catalog")
	}
	texts := 0
	for _, f := range servers {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s, _, err := registry.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, text := range []string{s.ServerName, s.Description} {
			if isASCII(text) {
				check(expandIdentifiers(text))
				texts++
			}
		}
		for _, tool := range s.ToolList {
			for _, text := range []string{tool.Name, tool.Description(), schemaText(tool.Schema)} {
				if isASCII(text) {
					check(expandIdentifiers(text))
					texts++
				}
			}
		}
	}
	if texts < 500 {
		t.Errorf("only %d catalog texts checked", texts)
	}
}

// TestIsCompoundASCII checks isCompound's byte-by-byte path against its
// rune-by-rune one on every pair of ASCII characters and some tokens.
func TestIsCompoundASCII(t *testing.T) {
	slow := func(tok string) bool {
		var prev rune
		for i, r := range tok {
			if i > 0 && (isSeparator(r) || (gounicode.IsLower(prev) || gounicode.IsDigit(prev)) && gounicode.IsUpper(r)) {
				return true
			}
			prev = r
		}
		return false
	}
	var toks []string
	for a := 0; a < 128; a++ {
		for b := 0; b < 128; b++ {
			toks = append(toks, string([]byte{byte(a), byte(b)}), string([]byte{'x', byte(a), byte(b)}))
		}
	}
	toks = append(toks, "", "a", "camelCase", "snake_case", "kebab-case", "dotted.name", "path/to", "ns:name", "ALLCAPS", "v2Beta", "_lead")
	for _, tok := range toks {
		if got, want := isCompound(tok), slow(tok); got != want {
			t.Errorf("isCompound(%q) = %v, want %v", tok, got, want)
		}
	}
}

// TestAnalyzeMatchesBleve checks the analyzer's fast paths (the ASCII word
// finder, white-space fields, the caches) against bleve's pipeline run
// whole on the text (its tokenizer, then the filters and stemmers through
// Analyze): the same terms in the same order, on every text of the catalog
// and on random text mixing ASCII with other scripts and punctuation.
func TestAnalyzeMatchesBleve(t *testing.T) {
	x, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	reference := func(s string) []string {
		var out []string
		for _, tk := range x.an.Analyze([]byte(s)) {
			if len(tk.Term) > 0 {
				out = append(out, string(tk.Term))
			}
		}
		return out
	}
	var texts []string
	files, _ := filepath.Glob("../testdata/catalog/*.json")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s, _, err := registry.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, s.ServerName, s.Description)
		for _, tool := range s.ToolList {
			texts = append(texts, tool.Name, tool.Description(), schemaText(tool.Schema))
		}
	}
	nonASCII := 0
	for _, s := range texts {
		if !isASCII(s) {
			nonASCII++
		}
	}
	words := []string{"Get", "the", "user's", "repos", "files", "naïve", "café", "日本語", "テスト", "e-mail", "v1.2", "1,000", "don't",
		"—", "’s", "“quoted”", "a.b", "\u0301", "e\u0301", "\u200d", "\u00ad", "a\u200db", "snake_case", "camelCase", "x", "\u00a0", "\u2003", "\t", "\n", " ", "  ", ".", ",", "Ωmega", "straße"}
	rng := rand.New(rand.NewSource(2))
	for n := 0; n < 5000; n++ {
		var b strings.Builder
		for k := rng.Intn(12); k > 0; k-- {
			b.WriteString(words[rng.Intn(len(words))])
			if rng.Intn(3) > 0 {
				b.WriteByte(' ')
			}
		}
		texts = append(texts, b.String())
	}
	bad := 0
	for _, s := range texts {
		for _, text := range []string{s, expandIdentifiers(s)} {
			if got, want := x.analyze(text), reference(text); !reflect.DeepEqual(got, want) && (len(got) > 0 || len(want) > 0) {
				if bad++; bad <= 10 {
					t.Errorf("%q: analyze %q, bleve %q", text, got, want)
				}
			}
		}
	}
	if nonASCII == 0 {
		t.Error("the catalog has no non-ASCII text to check the fallback with")
	}
}
