#!/usr/bin/env bash
# `make run`: starts the mock upstream and keygate on the embedded SQLite store (./data),
# creating the first organization on the first run and printing how to log in.
set -euo pipefail
BUILD_DIR="${1:-build}"
cd "$(dirname "$0")/.."
KEYGATE="$BUILD_DIR/keygate"
MOCK="$BUILD_DIR/tools/mock_upstream/mock_upstream"
DATA="${KEYGATE_DATA:-./data}"
mkdir -p -m 700 "$DATA"  # the store is its owner's only (as keygate makes it)

"$MOCK" --listen 127.0.0.1:9090 >"$DATA/mock_upstream.log" 2>&1 &
MOCK_PID=$!
trap 'kill $MOCK_PID 2>/dev/null || true' EXIT

if [[ ! -f "$DATA/keygate.db" ]]; then
  created=$("$KEYGATE" init --data "$DATA" --org demo)
  org_id=$(echo "$created" | sed -E 's/.*"org_id":"([^"]+)".*/\1/')
  owner_key=$(echo "$created" | sed -E 's/.*"owner_key":"([^"]+)".*/\1/')
  cat <<MSG

  keygate: created organization $org_id
  Owner key (shown once, keep it safe; only its SHA-256 is stored):

      $owner_key

  Owner API: curl -H "Authorization: Bearer $owner_key" http://127.0.0.1:8080/api/owner/provisioning-keys

MSG
else
  cat <<MSG

  keygate: using the existing store in $DATA (use the owner key printed on its first run;
  'build/keygate init --data $DATA --org NAME' creates another organization and owner key).

MSG
fi
"$KEYGATE" serve --config config/demo.yaml --data "$DATA"
