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
# npm writes node_modules/.package-lock.json last: without it, an install is missing or was cut
# short. The registry is reached over the network, which sometimes stalls: retry, then give up
# with a clear message.
if [[ ! -f node_modules/.package-lock.json ]]; then
  for attempt in 1 2 3 4; do
    if npm ci --no-audit --no-fund --loglevel=error --fetch-retries=4; then break; fi
    if [[ $attempt == 4 ]]; then
      echo "client tests: npm ci failed 4 times (registry unreachable?)" >&2
      exit 1
    fi
    echo "client tests: npm ci failed (attempt $attempt of 4), retrying" >&2
    sleep $((attempt * 10))
  done
fi
node --test --test-concurrency=1 ./*.test.mjs
