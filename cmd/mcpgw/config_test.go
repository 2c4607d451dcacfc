package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestLoadServeConfig(t *testing.T) {
	tests := []struct {
		name string
		yaml string // written to a file given as --config when not empty
		env  []string
		args []string
		// check runs on an accepted configuration.
		check func(t *testing.T, c serveConfig)
		// errs are pieces every one of which the error must hold; none means
		// the configuration must be accepted.
		errs []string
	}{
		{
			name: "defaults",
			check: func(t *testing.T, c serveConfig) {
				if !reflect.DeepEqual(c, defaultServeConfig()) {
					t.Errorf("config = %+v, want the defaults", c)
				}
				if c.Listen != "127.0.0.1:7860" || c.storePath() != filepath.Join("mcpgw-data", "mcpgw.db") {
					t.Errorf("listen %q, store %q", c.Listen, c.storePath())
				}
			},
		},
		{
			name: "file",
			yaml: "listen: 127.0.0.1:1001\ndata: /tmp/d\nlog_level: debug\nallowed_hosts: [gw.internal]\nmax_body_bytes: 2048\nupstream_timeout: 5s\n",
			check: func(t *testing.T, c serveConfig) {
				if c.Listen != "127.0.0.1:1001" || c.Data != "/tmp/d" || c.LogLevel != "debug" || c.MaxBodyBytes != 2048 ||
					!reflect.DeepEqual(c.AllowedHosts, []string{"gw.internal"}) || c.upstreamTimeout().String() != "5s" {
					t.Errorf("config = %+v", c)
				}
				if c.storePath() != "/tmp/d/mcpgw.db" {
					t.Errorf("store path %q", c.storePath())
				}
			},
		},
		{
			name: "env overrides file",
			yaml: "listen: 127.0.0.1:1001\nlog_level: debug\ndata: /from/file\n",
			env:  []string{"MCPGW_LISTEN=127.0.0.1:2002", "MCPGW_LOG_LEVEL=warn", "MCPGW_ALLOWED_HOSTS=a.internal, b.internal", "MCPGW_INSECURE_NO_AUTH=false", "PATH=/bin"},
			check: func(t *testing.T, c serveConfig) {
				if c.Listen != "127.0.0.1:2002" || c.LogLevel != "warn" || c.Data != "/from/file" ||
					!reflect.DeepEqual(c.AllowedHosts, []string{"a.internal", "b.internal"}) {
					t.Errorf("config = %+v", c)
				}
			},
		},
		{
			name: "flags override env and file",
			yaml: "listen: 127.0.0.1:1001\ndata: /from/file\nlog_format: console\n",
			env:  []string{"MCPGW_LISTEN=127.0.0.1:2002", "MCPGW_DATA=/from/env"},
			args: []string{"--listen", "127.0.0.1:3003", "--allowed-hosts", "x.internal", "--allowed-hosts", "y.internal"},
			check: func(t *testing.T, c serveConfig) {
				if c.Listen != "127.0.0.1:3003" || c.Data != "/from/env" || c.LogFormat != "console" ||
					!reflect.DeepEqual(c.AllowedHosts, []string{"x.internal", "y.internal"}) {
					t.Errorf("config = %+v", c)
				}
			},
		},
		{
			name: "a flag set to its default still overrides env",
			env:  []string{"MCPGW_LISTEN=127.0.0.1:2002"},
			args: []string{"--listen=127.0.0.1:7860"},
			check: func(t *testing.T, c serveConfig) {
				if c.Listen != "127.0.0.1:7860" {
					t.Errorf("listen = %q", c.Listen)
				}
			},
		},
		{
			name: "store URL",
			args: []string{"--store", "sqlite:/var/lib/mcpgw/x.db"},
			check: func(t *testing.T, c serveConfig) {
				if c.storePath() != "/var/lib/mcpgw/x.db" {
					t.Errorf("store path %q", c.storePath())
				}
			},
		},
		{name: "unknown YAML key", yaml: "listen: 127.0.0.1:1001\nlisten_adress: 0.0.0.0:1\n", errs: []string{`unknown field "listen_adress"`}},
		{name: "YAML of the wrong type", yaml: "max_body_bytes: lots\n", errs: []string{"max_body_bytes"}},
		{name: "unknown env setting", env: []string{"MCPGW_LISTN=127.0.0.1:1"}, errs: []string{"MCPGW_LISTN: unknown setting"}},
		{name: "env of the wrong type", env: []string{"MCPGW_MAX_BODY_BYTES=big", "MCPGW_INSECURE_NO_AUTH=maybe"},
			errs: []string{`MCPGW_MAX_BODY_BYTES: "big" is not a whole number`, `MCPGW_INSECURE_NO_AUTH: "maybe" is not true or false`}},
		{
			name: "client settings are known in the environment",
			env:  []string{"MCPGW_REGISTRY_URL=http://127.0.0.1:1", "MCPGW_TOKEN_FILE=/x", "MCPGW_CONFIG=", "MCPGW_DATA=/d"},
			check: func(t *testing.T, c serveConfig) {
				if c.Data != "/d" {
					t.Errorf("data = %q", c.Data)
				}
			},
		},
		{
			name: "several errors at once",
			yaml: "log_level: loud\n",
			env:  []string{"MCPGW_MAX_BODY_BYTES=10"},
			args: []string{"--store", "mysql://u:hunter2@db", "--listen", "nonsense", "--log-format", "xml", "--upstream-timeout", "-1s", "--public-url", "ftp://x"},
			errs: []string{`log_level: "loud"`, "max_body_bytes: 10 is below 1024", `store: "mysql:..." is not supported`,
				`listen: "nonsense" is not host:port`, `log_format: "xml"`, `upstream_timeout: "-1s"`, `public_url: "ftp://x"`},
		},
		{
			name: "health checker settings",
			args: []string{"--health-interval", "10s", "--health-timeout", "2s", "--health-concurrency", "8"},
			check: func(t *testing.T, c serveConfig) {
				if duration(c.HealthInterval) != 10*time.Second || duration(c.HealthTimeout) != 2*time.Second || c.HealthWorkers != 8 {
					t.Errorf("config = %+v", c)
				}
			},
		},
		{
			name: "bad health checker settings",
			env:  []string{"MCPGW_HEALTH_INTERVAL=soon", "MCPGW_HEALTH_CONCURRENCY=-3"},
			errs: []string{`health_interval: "soon" is not a positive duration`, "health_concurrency: -3 is not between 1 and 4096"},
		},
		{name: "GC floor", env: []string{"MCPGW_GC_MIN_HEAP_MIB=0"}, check: func(t *testing.T, c serveConfig) {
			if c.GCMinHeapMiB != 0 {
				t.Errorf("gc_min_heap_mib = %d, want 0 (off)", c.GCMinHeapMiB)
			}
		}},
		{name: "GC floor default", check: func(t *testing.T, c serveConfig) {
			if c.GCMinHeapMiB != 32 {
				t.Errorf("gc_min_heap_mib = %d, want the default 32", c.GCMinHeapMiB)
			}
		}},
		{name: "GC floor negative", args: []string{"--gc-min-heap-mib", "-1"}, errs: []string{"gc_min_heap_mib: -1 is not between 0 and 65536"}},
		{name: "debug listener", args: []string{"--debug-listen", "127.0.0.1:6060"}, check: func(t *testing.T, c serveConfig) {
			if c.DebugListen != "127.0.0.1:6060" {
				t.Errorf("debug_listen = %q", c.DebugListen)
			}
		}},
		{name: "debug listener off the host", env: []string{"MCPGW_DEBUG_LISTEN=0.0.0.0:6060"}, args: []string{"--insecure-no-auth"},
			errs: []string{`debug_listen: "0.0.0.0:6060" is not a loopback host:port`}},
		{name: "debug listener not an address", args: []string{"--debug-listen", "6060"}, errs: []string{`debug_listen: "6060"`}},
		{name: "non-loopback listen needs auth", args: []string{"--listen", "0.0.0.0:7860"}, errs: []string{"--insecure-no-auth"}},
		{name: "non-loopback from env needs auth", env: []string{"MCPGW_LISTEN=192.0.2.10:7860"}, errs: []string{`"192.0.2.10:7860" is not a loopback address`}},
		{
			name: "non-loopback with --insecure-no-auth",
			args: []string{"--listen", "0.0.0.0:7860", "--insecure-no-auth"},
			check: func(t *testing.T, c serveConfig) {
				if !c.InsecureNoAuth || c.Listen != "0.0.0.0:7860" {
					t.Errorf("config = %+v", c)
				}
			},
		},
		{
			name: "loopback names",
			args: []string{"--listen", "localhost:0"},
			check: func(t *testing.T, c serveConfig) {
				if c.Listen != "localhost:0" {
					t.Errorf("listen %q", c.Listen)
				}
			},
		},
		{name: "ipv6 loopback", args: []string{"--listen", "[::1]:7860"}, check: func(*testing.T, serveConfig) {}},
		{name: "ipv6 any needs auth", args: []string{"--listen", "[::]:7860"}, errs: []string{"not a loopback address"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			flagged := defaultServeConfig()
			bindFlags(fs, &flagged)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatalf("flags: %v", err)
			}
			file := ""
			if tc.yaml != "" {
				file = filepath.Join(t.TempDir(), "mcpgw.yaml")
				if err := os.WriteFile(file, []byte(tc.yaml), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c, err := loadServeConfig(fs, flagged, file, tc.env)
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				tc.check(t, c)
				return
			}
			if err == nil {
				t.Fatalf("accepted %+v; want errors %q", c, tc.errs)
			}
			for _, want := range tc.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not hold %q:\n%v", want, err)
				}
			}
			// One line per problem, so all of them are readable at once.
			if n := strings.Count(err.Error(), "\n") + 1; n < len(tc.errs) {
				t.Errorf("%d lines for %d problems:\n%v", n, len(tc.errs), err)
			}
		})
	}
}

func TestLoadServeConfigMissingFile(t *testing.T) {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	flagged := defaultServeConfig()
	bindFlags(fs, &flagged)
	_, err := loadServeConfig(fs, flagged, filepath.Join(t.TempDir(), "absent.yaml"), nil)
	if err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Errorf("missing config file: %v", err)
	}
}
