package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/mcpgw/mcpgw/search/embedtest"
)

func TestEmbeddingsSettings(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		args []string
		yaml string
		want func(c serveConfig) bool // on an accepted configuration
		errs []string                 // none: accepted
	}{
		{name: "off by default", want: func(c serveConfig) bool { return c.EmbeddingsURL == "" }},
		{name: "flags", args: []string{"--embeddings-url", "http://127.0.0.1:8080/v1/embeddings", "--embeddings-model", "bge-small",
			"--embeddings-api-key-env", "EMBED_KEY"}, env: []string{"EMBED_KEY=sk-1"},
			want: func(c serveConfig) bool {
				return c.EmbeddingsURL == "http://127.0.0.1:8080/v1/embeddings" && c.EmbeddingsModel == "bge-small" && c.EmbeddingsAPIKeyEnv == "EMBED_KEY"
			}},
		{name: "environment, key in an MCPGW_ variable", env: []string{"MCPGW_EMBEDDINGS_URL=http://127.0.0.1:8080", "MCPGW_EMBEDDINGS_MODEL=m",
			"MCPGW_EMBEDDINGS_API_KEY_ENV=MCPGW_EMBED_KEY", "MCPGW_EMBED_KEY=sk-1"},
			want: func(c serveConfig) bool {
				return c.EmbeddingsModel == "m" && c.EmbeddingsAPIKeyEnv == "MCPGW_EMBED_KEY"
			}},
		{name: "file", yaml: "embeddings_url: https://llm.internal/v1\nembeddings_model: text-embedding-3-small\nembeddings_probe_percent: 10\n",
			want: func(c serveConfig) bool {
				return c.EmbeddingsURL == "https://llm.internal/v1" && c.EmbeddingsProbePct == 10
			}},
		{name: "probe percent out of range", args: []string{"--embeddings-url", "http://127.0.0.1:1/v1/embeddings", "--embeddings-model", "m",
			"--embeddings-probe-percent", "101"},
			errs: []string{"embeddings_probe_percent: 101 is not between 1 and 100"}},
		{name: "probe percent without url", env: []string{"MCPGW_EMBEDDINGS_PROBE_PERCENT=10"},
			errs: []string{"embeddings_probe_percent: is set but embeddings_url is not"}},
		{name: "every problem at once", args: []string{"--embeddings-url", "127.0.0.1:8080", "--embeddings-api-key-env", "sk-live-0123456789"},
			errs: []string{"embeddings_url: must be an absolute http(s) URL", "embeddings_model: is required with embeddings_url",
				`embeddings_api_key_env: "sk-l…" is not an environment variable name`}},
		{name: "key variable unset", args: []string{"--embeddings-url", "http://127.0.0.1:1/v1/embeddings", "--embeddings-model", "m",
			"--embeddings-api-key-env", "EMBED_KEY"}, env: []string{"EMBED_KEY= "},
			errs: []string{"embeddings_api_key_env: the environment variable EMBED_KEY is not set or empty"}},
		{name: "model without url", env: []string{"MCPGW_EMBEDDINGS_MODEL=m", "MCPGW_EMBEDDINGS_API_KEY_ENV=K"},
			errs: []string{"embeddings_model: is set but embeddings_url is not", "embeddings_api_key_env: is set but embeddings_url is not"}},
		{name: "unknown setting still rejected", env: []string{"MCPGW_EMBEDDINGS_URLS=http://127.0.0.1:1"},
			errs: []string{"MCPGW_EMBEDDINGS_URLS: unknown setting"}},
		{name: "unknown file key", yaml: "embeddings_endpoint: http://127.0.0.1:1\n", errs: []string{"embeddings_endpoint"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			flagged := defaultServeConfig()
			bindFlags(fs, &flagged)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			file := ""
			if tc.yaml != "" {
				file = writeTemp(t, "mcpgw.yaml", tc.yaml)
			}
			c, err := loadServeConfig(fs, flagged, file, tc.env)
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !tc.want(c) {
					t.Fatalf("config %+v", c)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted %+v", c)
			}
			for _, want := range tc.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not hold %q:\n%v", want, err)
				}
			}
			if strings.Contains(err.Error(), "sk-live-0123456789") || strings.Contains(err.Error(), "sk-1") {
				t.Errorf("the error shows a key: %v", err)
			}
		})
	}
}

// TestServeHybridFinder runs the gateway with an embeddings endpoint: the
// key goes to the endpoint and never to the log, the finder answers a need
// the text ranking misses, and a restart on the same data embeds no tool
// again (the vectors are in SQLite).
func TestServeHybridFinder(t *testing.T) {
	srv := embedtest.New(t, embedtest.Options{APIKey: "sk-fake-embed-key", Concepts: map[string]string{"money back": "refund", "refund": "refund"}})
	t.Setenv("MCPGW_TEST_EMBED_KEY", "sk-fake-embed-key")
	data := t.TempDir()
	mutate := func(c *serveConfig) {
		c.Data = data
		c.EmbeddingsURL = srv.URL
		c.EmbeddingsModel = "fake-bow"
		c.EmbeddingsAPIKeyEnv = "MCPGW_TEST_EMBED_KEY"
	}
	const need = "give a customer their money back"
	// find polls the finder until it answers with stripe's refund tool.
	find := func(t *testing.T, g *servedGateway) {
		t.Helper()
		conn := []string{"--registry-url", g.url, "--token-file", g.adminToken()}
		deadline := time.Now().Add(15 * time.Second)
		for {
			r := runCmd(t, "", append([]string{"find", need, "--top", "10", "--json"}, conn...)...)
			var out struct {
				Results []struct {
					ToolName string `json:"tool_name"`
				} `json:"results"`
			}
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil {
				t.Fatalf("find: %v", r)
			}
			for _, res := range out.Results {
				if res.ToolName == "create_refund" {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("find %q never found create_refund: %s", need, r.stdout)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	var embedded int
	t.Run("first start", func(t *testing.T) {
		g := startServe(t, mutate)
		conn := []string{"--registry-url", g.url, "--token-file", g.adminToken()}
		for _, f := range []string{"stripe", "customer-support-assistant", "playwright"} {
			if r := runCmd(t, "", append([]string{"register", "--config", "../../testdata/catalog/" + f + ".json"}, conn...)...); r.code != 0 {
				t.Fatalf("register %s: %v", f, r)
			}
		}
		find(t, g)
		if !strings.Contains(g.log.String(), "hybrid ranking on") || strings.Contains(g.log.String(), "sk-fake-embed-key") {
			t.Errorf("log: want the hybrid announced and the key never shown:\n%s", g.log.String())
		}
		embedded = srv.Texts()
	})
	if t.Failed() {
		return
	}
	t.Run("restart", func(t *testing.T) {
		g := startServe(t, mutate)
		find(t, g)
		// Only the query is embedded (once: the vector is remembered).
		if n := srv.Texts() - embedded; n != 1 {
			t.Errorf("the restarted gateway embedded %d texts, want 1 (the query; tools come from the cache)", n)
		}
	})
}
