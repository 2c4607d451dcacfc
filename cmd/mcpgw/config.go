package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"github.com/mcpgw/mcpgw/registry/postgres"
)

// serveConfig is the whole configuration of `mcpgw serve`, the one place
// that knows it. Sources, later ones winning: the YAML file (--config), then
// MCPGW_* environment variables, then flags. The json tag is the YAML key,
// the flag name is the key with '_' as '-', and the environment variable is
// MCPGW_ plus the key in upper case.
type serveConfig struct {
	Listen          string   `json:"listen" usage:"address to listen on"`
	Data            string   `json:"data" usage:"data directory (database, admin token, session key)"`
	Store           string   `json:"store" usage:"store URL: sqlite:<file> (default sqlite:<data>/mcpgw.db), or postgres://user:password@host/db shared by several replicas"`
	PublicURL       string   `json:"public_url" usage:"URL clients reach the gateway at"`
	LogLevel        string   `json:"log_level" usage:"debug, info, warn or error"`
	LogFormat       string   `json:"log_format" usage:"json or console"`
	MaxBodyBytes    int64    `json:"max_body_bytes" usage:"request body limit in bytes"`
	UpstreamTimeout string   `json:"upstream_timeout" usage:"limit of one relayed POST exchange, e.g. 60s"`
	HealthInterval  string   `json:"health_interval" usage:"time between two health checks of a server (default 30s)"`
	HealthTimeout   string   `json:"health_timeout" usage:"limit of one health check (default 5s)"`
	HealthWorkers   int64    `json:"health_concurrency" usage:"health checks run at once (default 32)"`
	AllowedHosts    []string `json:"allowed_hosts" usage:"extra Host names accepted on a loopback listener (repeatable)"`
	OIDCIssuer      []string `json:"oidc_issuer" usage:"OIDC issuer URL accepted for ingress (repeatable)"`
	OIDCAudience    []string `json:"oidc_audience" usage:"audience required in OIDC tokens (repeatable)"`
	InsecureNoAuth  bool     `json:"insecure_no_auth" usage:"allow a non-loopback listener without an identity provider"`
	DebugListen     string   `json:"debug_listen" usage:"loopback address serving Go's profiles at /debug/pprof/ (off by default)"`
	GCMinHeapMiB    int64    `json:"gc_min_heap_mib" usage:"heap size in MiB below which Go's garbage collector does not run (default 32; 0 leaves Go's default of 4 MiB; ignored when GOGC is set)"`
	// The finder's optional hybrid ranking (see embeddings.go).
	EmbeddingsURL       string `json:"embeddings_url" usage:"OpenAI-compatible /v1/embeddings endpoint: turns on the finder's hybrid ranking (text and embeddings)"`
	EmbeddingsModel     string `json:"embeddings_model" usage:"model name sent to the embeddings endpoint (required with --embeddings-url)"`
	EmbeddingsAPIKeyEnv string `json:"embeddings_api_key_env" usage:"name of the environment variable holding the embeddings endpoint's API key (sent as a bearer token)"`
	EmbeddingsProbePct  int64  `json:"embeddings_probe_percent" usage:"percent of the vector index's lists a finder query scans once 10,000 tool texts are embedded: 100 (default) compares the query with every vector; less is faster and approximate"`
	// OIDC lists issuers with per-issuer settings (config file only; see
	// oidcIssuer in access.go).
	OIDC []oidcIssuer `json:"oidc"`
}

func defaultServeConfig() serveConfig {
	return serveConfig{
		Listen:       "127.0.0.1:7860",
		Data:         "./mcpgw-data",
		LogLevel:     "info",
		LogFormat:    "json",
		MaxBodyBytes: 4 << 20,
		GCMinHeapMiB: 32,
	}
}

// bindFlags declares one flag per config field.
func bindFlags(fs *pflag.FlagSet, c *serveConfig) {
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.ReplaceAll(f.Tag.Get("json"), "_", "-")
		usage := f.Tag.Get("usage")
		switch p := v.Field(i).Addr().Interface().(type) {
		case *string:
			fs.StringVar(p, name, *p, usage)
		case *int64:
			fs.Int64Var(p, name, *p, usage)
		case *bool:
			fs.BoolVar(p, name, *p, usage)
		case *[]string:
			fs.StringArrayVar(p, name, *p, usage)
		}
	}
}

// loadServeConfig layers file, environment and the flags the user set, and
// reports every problem at once.
func loadServeConfig(fs *pflag.FlagSet, flagged serveConfig, file string, environ []string) (serveConfig, error) {
	c := defaultServeConfig()
	var errs []error
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
		if err := yaml.UnmarshalStrict(b, &c); err != nil {
			errs = append(errs, fmt.Errorf("config %s: %w", file, err))
		}
	}
	v := reflect.ValueOf(&c).Elem()
	fv := reflect.ValueOf(flagged)
	t := v.Type()
	env := map[string]string{}
	for _, kv := range environ {
		if k, val, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "MCPGW_") {
			env[k] = val
		}
	}
	known := map[string]bool{"MCPGW_CONFIG": true, "MCPGW_REGISTRY_URL": true, "MCPGW_TOKEN_FILE": true, "MCPGW_SESSION_KEY": true}
	for i := 0; i < t.NumField(); i++ {
		key := t.Field(i).Tag.Get("json")
		envKey := "MCPGW_" + strings.ToUpper(key)
		known[envKey] = true
		if val, ok := env[envKey]; ok {
			if err := setFromString(v.Field(i), val); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envKey, err))
			}
		}
		if fs.Changed(strings.ReplaceAll(key, "_", "-")) {
			v.Field(i).Set(fv.Field(i))
		}
	}
	known[c.EmbeddingsAPIKeyEnv] = true // the key may live in an MCPGW_ variable
	for k := range env {
		if !known[k] {
			errs = append(errs, fmt.Errorf("%s: unknown setting", k))
		}
	}
	errs = append(errs, c.validate()...)
	errs = append(errs, c.validateEmbeddings(environ)...)
	return c, errors.Join(errs...)
}

func setFromString(f reflect.Value, s string) error {
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		f.SetInt(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		f.SetBool(b)
	case reflect.Slice:
		if f.Type() != reflect.TypeOf([]string(nil)) {
			return errors.New("can only be set in the config file")
		}
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		f.Set(reflect.ValueOf(parts))
	}
	return nil
}

func (c *serveConfig) validate() []error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %q is not host:port", c.Listen))
	}
	if c.Data == "" {
		errs = append(errs, errors.New("data: must not be empty"))
	}
	switch {
	case c.Store == "", strings.HasPrefix(c.Store, "sqlite:"):
	case postgres.IsURL(c.Store):
		// The URL may hold a password: errors never repeat it.
		if err := postgres.CheckURL(c.Store); err != nil {
			errs = append(errs, fmt.Errorf("store: %w", err))
		}
	default:
		scheme, _, _ := strings.Cut(c.Store, ":")
		errs = append(errs, fmt.Errorf("store: %q is not supported; use sqlite:<file> or postgres://user:password@host:5432/db", scheme+":..."))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level: %q is not one of debug, info, warn, error", c.LogLevel))
	}
	switch c.LogFormat {
	case "json", "console":
	default:
		errs = append(errs, fmt.Errorf("log_format: %q is not json or console", c.LogFormat))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("max_body_bytes: %d is below 1024", c.MaxBodyBytes))
	}
	for _, d := range []struct{ key, v string }{
		{"upstream_timeout", c.UpstreamTimeout}, {"health_interval", c.HealthInterval}, {"health_timeout", c.HealthTimeout},
	} {
		if d.v == "" {
			continue
		}
		if v, err := time.ParseDuration(d.v); err != nil || v <= 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a positive duration such as 30s", d.key, d.v))
		}
	}
	if c.GCMinHeapMiB < 0 || c.GCMinHeapMiB > 1<<16 {
		errs = append(errs, fmt.Errorf("gc_min_heap_mib: %d is not between 0 and 65536", c.GCMinHeapMiB))
	}
	if c.HealthWorkers < 0 || c.HealthWorkers > 4096 {
		errs = append(errs, fmt.Errorf("health_concurrency: %d is not between 1 and 4096", c.HealthWorkers))
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("public_url: %q is not an absolute http(s) URL", c.PublicURL))
		}
	}
	errs = append(errs, c.validateOIDC()...)
	if c.DebugListen != "" {
		// Profiles show the process's stacks and heap: never off the host.
		if host, _, err := net.SplitHostPort(c.DebugListen); err != nil || !loopbackHost(host) {
			errs = append(errs, fmt.Errorf("debug_listen: %q is not a loopback host:port such as 127.0.0.1:6060", c.DebugListen))
		}
	}
	if host, _, err := net.SplitHostPort(c.Listen); err == nil && !loopbackHost(host) && !c.InsecureNoAuth && len(c.oidcIssuers()) == 0 {
		errs = append(errs, fmt.Errorf("listen: %q is not a loopback address and no OIDC issuer is configured; set --oidc-issuer or pass --insecure-no-auth", c.Listen))
	}
	return errs
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func (c *serveConfig) storePath() string {
	if c.Store != "" {
		return strings.TrimPrefix(c.Store, "sqlite:")
	}
	return filepath.Join(c.Data, "mcpgw.db")
}

func (c *serveConfig) upstreamTimeout() time.Duration { return duration(c.UpstreamTimeout) }

// duration parses a validated duration setting; "" is 0 (the default).
func duration(s string) time.Duration {
	d, _ := time.ParseDuration(s)
	return d
}
