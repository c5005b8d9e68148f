#!/usr/bin/env bash
# Runs the real-client conformance suites (node --test) under tests/client/, if any, against
# a gateway started by the suites themselves. Installs their npm dependencies (pinned in
# package-lock.json) on first use.
set -euo pipefail
BUILD_DIR="${1:-build}"
cd "$(dirname "$0")/.."
if [[ ! -f tests/client/package.json ]]; then
  echo "client tests: none yet"
  exit 0
fi
export KEYGATE_BINARY="$PWD/$BUILD_DIR/keygate"
export MOCK_UPSTREAM_BINARY="$PWD/$BUILD_DIR/tools/mock_upstream/mock_upstream"
cd tests/client
if [[ ! -d node_modules ]]; then npm ci --no-audit --no-fund --loglevel=error; fi
node --test --test-concurrency=1 ./*.test.mjs
