package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestFindCommand runs `mcpgw find` against a served gateway: serve builds
// the finder index and keeps it in step with the registry, and find prints
// a table, JSON, or a clear usage error.
func TestFindCommand(t *testing.T) {
	g := startServe(t, nil)
	conn := []string{"--registry-url", g.url, "--token-file", g.adminToken()}
	for _, f := range []string{"customer-support-assistant", "time"} {
		if r := runCmd(t, "", append([]string{"register", "--config", "../../testdata/catalog/" + f + ".json"}, conn...)...); r.code != 0 {
			t.Fatalf("register %s: %v", f, r)
		}
	}

	r := runCmd(t, "", append([]string{"find", "is", "my", "gadget", "still", "under", "warrenty"}, conn...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "SCORE") {
		t.Fatalf("find: %v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) < 2 || !strings.Contains(lines[1], "LambdaUsingSDK___check_warranty_status") || !strings.Contains(lines[1], "/customer-support-assistant/") {
		t.Errorf("first row %q, want the warranty tool", lines[1])
	}

	r = runCmd(t, "", append([]string{"find", "--tag", "TIMEZONE", "--top", "2", "--json"}, conn...)...)
	var out struct {
		Results []struct {
			ToolName    string  `json:"tool_name"`
			ServicePath string  `json:"service_path"`
			Score       float64 `json:"overall_similarity_score"`
		} `json:"results"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil || len(out.Results) != 2 {
		t.Fatalf("find --tag --json: %v", r)
	}
	for _, res := range out.Results {
		if res.ServicePath != "/time" || res.Score != 1 {
			t.Errorf("tag listing gave %+v", res)
		}
	}

	// The index follows the registry at once.
	if r := runCmd(t, "", append([]string{"disable", "/customer-support-assistant"}, conn...)...); r.code != 0 {
		t.Fatalf("disable: %v", r)
	}
	r = runCmd(t, "", append([]string{"find", "warranty", "--tag", "warranty"}, conn...)...)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "No tools found." {
		t.Errorf("find after disable: %v", r)
	}

	for _, args := range [][]string{{"find"}, {"find", "x", "--top", "0"}, {"find", "x", "--top", "51"}, {"find", " ", "--tag", " , "}} {
		if r := runCmd(t, "", append(args, conn...)...); r.code != exitInvalid || !strings.Contains(r.stderr, "mcpgw: ") {
			t.Errorf("%q: %v, want exit 2 with a sentence", args, r)
		}
	}
}
