#!/usr/bin/env bash
# Installs the test dependencies that are not Go modules: npm packages pinned
# by the lock files committed under testdata/. Idempotent and quick when
# everything is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
for dir in testdata/npm/*/; do
  [ -f "$dir/package-lock.json" ] || continue
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "test-deps: npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
