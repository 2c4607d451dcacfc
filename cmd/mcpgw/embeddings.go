package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/gateway"
	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/search"
)

// finderService is the tool finder serve runs: the text index, or the
// hybrid ranking around it when an embeddings endpoint is configured.
type finderService interface {
	gateway.Finder
	Apply(registry.Event)
	LoadInBackground(ctx context.Context, list func(context.Context) ([]*registry.Server, error)) error
	WaitLoaded(d time.Duration) bool
}

var (
	_ finderService = (*search.Index)(nil)
	_ finderService = (*search.Hybrid)(nil)
)

// newFinder returns text itself, or with embeddings configured a hybrid
// ranking around it that caches vectors in store. stop ends the hybrid's
// embedding worker (before the store closes).
func newFinder(cfg serveConfig, text *search.Index, store registry.Store, lg zerolog.Logger) (f finderService, stop func(), err error) {
	if cfg.EmbeddingsURL == "" {
		return text, func() {}, nil
	}
	client, err := search.NewEmbeddingsClient(search.EmbeddingsOptions{
		URL:    cfg.EmbeddingsURL,
		Model:  cfg.EmbeddingsModel,
		APIKey: embeddingsKey(cfg),
	})
	if err != nil {
		return nil, nil, err
	}
	cache, ok := store.(search.EmbeddingCache)
	if !ok {
		lg.Warn().Msg("finder: this store keeps no embeddings; every start embeds every tool again")
		cache = nil
	}
	opts := search.HybridOptions{Cache: cache, Log: lg}
	if cfg.EmbeddingsProbePct > 0 {
		opts.ApproxProbe = float64(cfg.EmbeddingsProbePct) / 100
	}
	h, err := search.NewHybrid(text, client, opts)
	if err != nil {
		return nil, nil, err
	}
	lg.Info().Str("endpoint", client.Endpoint()).Str("model", cfg.EmbeddingsModel).Bool("api_key", embeddingsKey(cfg) != "").
		Msg("finder: hybrid ranking on (text and embeddings, fused); tool texts are embedded in the background")
	return h, func() { h.Close() }, nil
}

// embeddingsKey is the embeddings endpoint's API key, from the environment
// variable the configuration names.
func embeddingsKey(cfg serveConfig) string {
	if cfg.EmbeddingsAPIKeyEnv == "" {
		return ""
	}
	return strings.TrimSpace(os.Getenv(cfg.EmbeddingsAPIKeyEnv))
}

// addFinderMetrics adds the hybrid ranking's gauges, when it is on.
func addFinderMetrics(m *gateway.Metrics, f finderService) {
	h, ok := f.(*search.Hybrid)
	if !ok {
		return
	}
	m.GaugeFunc("mcpgw_finder_embeddings_pending", "Tool texts waiting to be embedded for the finder's hybrid ranking.",
		func() float64 { return float64(h.Stats().Pending) })
	m.GaugeFunc("mcpgw_finder_vectors_indexed", "Tool vectors in the finder's vector index (0 below 10,000 or while it is first built).",
		func() float64 { return float64(h.Stats().Indexed) })
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// validateEmbeddings checks the embeddings settings; environ is the
// process environment, where the API key's variable must be set.
func (c *serveConfig) validateEmbeddings(environ []string) []error {
	var errs []error
	if c.EmbeddingsURL == "" {
		for _, s := range []struct {
			key string
			set bool
		}{{"embeddings_model", c.EmbeddingsModel != ""}, {"embeddings_api_key_env", c.EmbeddingsAPIKeyEnv != ""}, {"embeddings_probe_percent", c.EmbeddingsProbePct != 0}} {
			if s.set {
				errs = append(errs, fmt.Errorf("%s: is set but embeddings_url is not; set embeddings_url to turn the hybrid ranking on", s.key))
			}
		}
		return errs
	}
	if _, err := search.EmbeddingsURL(c.EmbeddingsURL); err != nil {
		errs = append(errs, errors.New("embeddings_url: must be an absolute http(s) URL such as http://127.0.0.1:8080/v1/embeddings"))
	}
	if c.EmbeddingsProbePct < 0 || c.EmbeddingsProbePct > 100 {
		errs = append(errs, fmt.Errorf("embeddings_probe_percent: %d is not between 1 and 100", c.EmbeddingsProbePct))
	}
	if strings.TrimSpace(c.EmbeddingsModel) == "" {
		errs = append(errs, errors.New("embeddings_model: is required with embeddings_url (the model name the endpoint serves)"))
	}
	if name := c.EmbeddingsAPIKeyEnv; name != "" {
		switch {
		case !envName.MatchString(name):
			errs = append(errs, fmt.Errorf("embeddings_api_key_env: %q is not an environment variable name (give the variable's name, not the key)", shownName(name)))
		case !envSet(environ, name):
			errs = append(errs, fmt.Errorf("embeddings_api_key_env: the environment variable %s is not set or empty", name))
		}
	}
	return errs
}

// shownName shows a mistaken variable name without repeating what may be
// the key itself: its first four characters.
func shownName(s string) string {
	if len(s) <= 4 {
		return s
	}
	return s[:4] + "…"
}

func envSet(environ []string, name string) bool {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return strings.TrimSpace(v) != ""
		}
	}
	return false
}
