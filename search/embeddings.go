package search

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Embedder turns texts into vectors, one per text, in order. All vectors of
// one Embedder have the same dimension.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	// Model names the model, the cache key of the vectors it makes.
	Model() string
}

// EmbeddingsOptions configure an EmbeddingsClient.
type EmbeddingsOptions struct {
	// URL is the OpenAI-compatible endpoint, e.g.
	// http://127.0.0.1:8080/v1/embeddings. A URL with no path or ending
	// in /v1 gets /v1/embeddings or /embeddings appended, as OpenAI
	// clients take their base URL.
	URL string
	// Model is sent as "model"; required.
	Model string
	// APIKey, when set, is sent as "Authorization: Bearer <key>".
	APIKey string
	// Timeout limits one request (default 30s).
	Timeout time.Duration
	// Batch is how many texts go into one request (default 64).
	Batch int
	// Transport carries the requests (default http.DefaultTransport).
	Transport http.RoundTripper
}

// EmbeddingsClient calls an OpenAI-compatible /v1/embeddings endpoint (a
// local model server, LiteLLM, a proxy in front of Bedrock, OpenAI).
type EmbeddingsClient struct {
	url    string
	shown  string // url without user information and query, for errors
	model  string
	apiKey string
	batch  int
	hc     *http.Client
}

var _ Embedder = (*EmbeddingsClient)(nil)

// NewEmbeddingsClient checks opts and returns a client.
func NewEmbeddingsClient(opts EmbeddingsOptions) (*EmbeddingsClient, error) {
	u, err := EmbeddingsURL(opts.URL)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(opts.Model) == "" {
		return nil, errors.New("embeddings: a model name is required")
	}
	c := &EmbeddingsClient{url: u, shown: shownURL(u), model: opts.Model, apiKey: opts.APIKey, batch: opts.Batch,
		hc: &http.Client{Timeout: opts.Timeout, Transport: opts.Transport}}
	if c.batch <= 0 {
		c.batch = 64
	}
	if c.hc.Timeout <= 0 {
		c.hc.Timeout = 30 * time.Second
	}
	return c, nil
}

// EmbeddingsURL checks an endpoint URL and completes a base URL: no path
// becomes /v1/embeddings, a path ending in /v1 gets /embeddings. Errors
// never repeat the URL's user information.
func EmbeddingsURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("embeddings: the URL must be an absolute http(s) URL such as http://127.0.0.1:8080/v1/embeddings")
	}
	switch p := strings.TrimSuffix(u.Path, "/"); {
	case p == "":
		u.Path = "/v1/embeddings"
	case strings.HasSuffix(p, "/v1"):
		u.Path = p + "/embeddings"
	}
	return u.String(), nil
}

// shownURL is u as errors show it: no user information or query, which may
// hold credentials.
func shownURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "the embeddings endpoint"
	}
	return (&url.URL{Scheme: p.Scheme, Host: p.Host, Path: p.Path}).String()
}

// Endpoint returns the endpoint's URL as errors show it, without user
// information or query, for logs.
func (c *EmbeddingsClient) Endpoint() string { return c.shown }

// Model implements Embedder.
func (c *EmbeddingsClient) Model() string { return c.model }

// Embed implements Embedder: texts are sent in batches; any failure fails
// the whole call.
func (c *EmbeddingsClient) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, 0, len(texts))
	for lo := 0; lo < len(texts); lo += c.batch {
		vecs, err := c.embedBatch(ctx, texts[lo:min(lo+c.batch, len(texts))])
		if err != nil {
			return nil, err
		}
		if len(out) > 0 && len(vecs) > 0 && len(vecs[0]) != len(out[0]) {
			return nil, fmt.Errorf("embeddings: the endpoint returned vectors of %d and %d dimensions", len(out[0]), len(vecs[0]))
		}
		out = append(out, vecs...)
	}
	return out, nil
}

type embeddingsRequest struct {
	Model string   `json:"model"`
	Input []string `json:"input"`
}

type embeddingsResponse struct {
	Data []struct {
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	} `json:"data"`
}

// maxResponse bounds an endpoint's answer: 64 texts of 4,096 dimensions
// in JSON take about 6 MB.
const maxResponse = 64 << 20

func (c *EmbeddingsClient) embedBatch(ctx context.Context, texts []string) ([][]float32, error) {
	body, err := json.Marshal(embeddingsRequest{Model: c.model, Input: texts})
	if err != nil {
		return nil, fmt.Errorf("embeddings: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("embeddings: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// url.Error repeats the whole URL, query included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("embeddings: POST %s: %w", c.shown, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("embeddings: reading the answer of %s: %w", c.shown, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("embeddings: %s answered %s%s", c.shown, resp.Status, errorDetail(b))
	}
	if len(b) > maxResponse {
		return nil, fmt.Errorf("embeddings: the answer of %s is larger than %d MiB", c.shown, maxResponse>>20)
	}
	var r embeddingsResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("embeddings: the answer of %s is not an embeddings list: %w", c.shown, err)
	}
	if len(r.Data) != len(texts) {
		return nil, fmt.Errorf("embeddings: %s returned %d vectors for %d texts", c.shown, len(r.Data), len(texts))
	}
	out := make([][]float32, len(texts))
	for _, d := range r.Data {
		if d.Index < 0 || d.Index >= len(texts) || out[d.Index] != nil {
			return nil, fmt.Errorf("embeddings: %s returned a vector with a missing or repeated index %d", c.shown, d.Index)
		}
		if len(d.Embedding) == 0 || len(d.Embedding) != len(r.Data[0].Embedding) {
			return nil, fmt.Errorf("embeddings: %s returned an empty vector or vectors of different dimensions", c.shown)
		}
		out[d.Index] = d.Embedding
	}
	return out, nil
}

// errorDetail is the reason an endpoint gave for an error, shortened: the
// OpenAI error message when the body has one, else the start of the body.
func errorDetail(b []byte) string {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	msg := ""
	if json.Unmarshal(b, &e) == nil && len(e.Error) > 0 {
		var obj struct {
			Message string `json:"message"`
		}
		var s string
		switch {
		case json.Unmarshal(e.Error, &obj) == nil && obj.Message != "":
			msg = obj.Message
		case json.Unmarshal(e.Error, &s) == nil:
			msg = s
		}
	}
	if msg == "" {
		msg = string(b)
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	if msg == "" {
		return ""
	}
	return ": " + msg
}
