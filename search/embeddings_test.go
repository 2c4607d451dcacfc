package search_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/search"
	"github.com/mcpgw/mcpgw/search/embedtest"
)

func TestEmbeddingsURL(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{in: "http://127.0.0.1:8080/v1/embeddings", want: "http://127.0.0.1:8080/v1/embeddings"},
		{in: "http://127.0.0.1:8080", want: "http://127.0.0.1:8080/v1/embeddings"},
		{in: "http://127.0.0.1:8080/", want: "http://127.0.0.1:8080/v1/embeddings"},
		{in: "https://proxy.internal/openai/v1", want: "https://proxy.internal/openai/v1/embeddings"},
		{in: "https://proxy.internal/openai/v1/", want: "https://proxy.internal/openai/v1/embeddings"},
		{in: "http://127.0.0.1:9/custom/path", want: "http://127.0.0.1:9/custom/path"},
		{in: "127.0.0.1:8080", err: true},
		{in: "ftp://127.0.0.1/v1", err: true},
		{in: "", err: true},
		{in: "http:///v1", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := search.EmbeddingsURL(tt.in)
			if tt.err {
				if err == nil {
					t.Fatalf("EmbeddingsURL(%q) = %q, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("EmbeddingsURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestEmbeddingsClientBatchesAndKey(t *testing.T) {
	srv := embedtest.New(t, embedtest.Options{APIKey: "sk-test-secret", Dim: 64})
	c, err := search.NewEmbeddingsClient(search.EmbeddingsOptions{URL: srv.URL, Model: "tiny", APIKey: "sk-test-secret", Batch: 4})
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{"one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"}
	vecs, err := c.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if len(vecs) != len(texts) {
		t.Fatalf("%d vectors for %d texts", len(vecs), len(texts))
	}
	for i, v := range vecs {
		want := embedtest.Embed(texts[i], embedtest.Options{Dim: 64})
		if len(v) != 64 || v[0] != want[0] || v[63] != want[63] {
			t.Fatalf("vector %d is not the embedding of %q (in order)", i, texts[i])
		}
	}
	if srv.Requests() != 3 || srv.Texts() != 10 {
		t.Errorf("%d requests for %d texts, want 3 batches of at most 4", srv.Requests(), srv.Texts())
	}
	if m := srv.Models(); len(m) != 1 || m[0] != "tiny" {
		t.Errorf("models asked for: %v, want [tiny]", m)
	}

	// A wrong key: the endpoint's reason is reported, the key never.
	bad, _ := search.NewEmbeddingsClient(search.EmbeddingsOptions{URL: srv.URL, Model: "tiny", APIKey: "sk-wrong-key"})
	_, err = bad.Embed(context.Background(), []string{"x"})
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "Incorrect API key") {
		t.Fatalf("wrong key: %v, want a 401 with the endpoint's message", err)
	}
	if strings.Contains(err.Error(), "sk-wrong-key") {
		t.Fatalf("the error repeats the API key: %v", err)
	}
}

// TestEmbeddingsClientErrors checks that every way an endpoint can fail is
// a clear error naming the endpoint (without credentials in its URL).
func TestEmbeddingsClientErrors(t *testing.T) {
	tests := []struct {
		name   string
		handle func(w http.ResponseWriter, r *http.Request)
		want   string
	}{
		{"server error with an OpenAI message", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(500)
			w.Write([]byte(`{"error":{"message":"model crashed","type":"server_error"}}`))
		}, "500 Internal Server Error: model crashed"},
		{"error as a string", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(400)
			w.Write([]byte(`{"error":"input too long"}`))
		}, "400 Bad Request: input too long"},
		{"plain text error", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(502)
			w.Write([]byte("upstream\nconnect error " + strings.Repeat("x", 400)))
		}, "502 Bad Gateway: upstream connect error xxx"},
		{"not JSON", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("<html>"))
		}, "is not an embeddings list"},
		{"too few vectors", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"data":[{"index":0,"embedding":[1,2]}]}`))
		}, "returned 1 vectors for 2 texts"},
		{"repeated index", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"data":[{"index":0,"embedding":[1,2]},{"index":0,"embedding":[1,2]}]}`))
		}, "missing or repeated index 0"},
		{"different dimensions", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"data":[{"index":0,"embedding":[1,2]},{"index":1,"embedding":[1]}]}`))
		}, "different dimensions"},
		{"empty vector", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"data":[{"index":0,"embedding":[]},{"index":1,"embedding":[]}]}`))
		}, "empty vector"},
		{"slow", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}, "Client.Timeout exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body struct {
				Model string   `json:"model"`
				Input []string `json:"input"`
			}
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if err := json.NewDecoder(r.Body).Decode(&body); err != nil || r.Method != http.MethodPost ||
					r.Header.Get("Content-Type") != "application/json" || strings.HasPrefix(r.Header.Get("Authorization"), "Bearer") {
					t.Errorf("request: %s, content type %q, authorization %q, body error %v",
						r.Method, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), err)
				}
				tt.handle(w, r)
			}))
			// User information and a query in the URL are never shown
			// (user information is sent as basic authentication, no key
			// as a bearer token).
			u := strings.Replace(ts.URL, "http://", "http://user:hunter2@", 1) + "/v1/embeddings?key=hunter2"
			c, err := search.NewEmbeddingsClient(search.EmbeddingsOptions{URL: u, Model: "m", Timeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Embed(context.Background(), []string{"a", "b"})
			ts.Close() // waits for the handler: body is complete
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Embed = %v, want an error containing %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "embeddings: ") || !strings.Contains(err.Error(), ts.URL+"/v1/embeddings") ||
				strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error %q: want the prefix, the endpoint, and no credentials", err)
			}
			if len(err.Error()) > 400 {
				t.Fatalf("error of %d bytes; the endpoint's answer must be shortened", len(err.Error()))
			}
			if body.Model != "m" || strings.Join(body.Input, ",") != "a,b" {
				t.Fatalf("request body %+v", body)
			}
		})
	}
	if _, err := search.NewEmbeddingsClient(search.EmbeddingsOptions{URL: "http://127.0.0.1:9/v1/embeddings"}); err == nil {
		t.Error("a client without a model was made")
	}
}
