package search

import (
	"reflect"
	"strings"
	"testing"
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
