#!/usr/bin/env bash
# Runs keygate's benchmarks and prints each figure beside its target as a ratio.
# Loopback only, bounded in time. Usage: bench/run.sh [BUILD_DIR]
set -euo pipefail
BUILD_DIR="${1:-build}"
cd "$(dirname "$0")/.."
KEYGATE="$BUILD_DIR/keygate"
WORK=$(mktemp -d)
trap 'kill "${PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

# ratio NAME VALUE TARGET better(higher|lower)
report() {
  awk -v n="$1" -v v="$2" -v t="$3" -v b="$4" 'BEGIN {
    r = (b == "higher") ? v / t : t / v;
    printf "%-28s %12.2f   target %s %-10s ratio %.2f %s\n", n, v, (b == "higher" ? ">=" : "<="), t, r, (r >= 1 ? "ok" : "BELOW TARGET") }'
}

echo "== management plane (issue 2): 64 clients, durable creates; list pages at 100k keys"
org=$("$KEYGATE" init --data "$WORK" --org bench)
org_id=$(echo "$org" | sed -E 's/.*"org_id":"([^"]+)".*/\1/')
pk=$("$KEYGATE" provisioning-key create --data "$WORK" --org "$org_id" --name bench | sed -E 's/.*"key":"([^"]+)".*/\1/')
PORT=$((20000 + RANDOM % 20000))
# The figures are the store's and the server's: the per-org pacing of management calls is off.
KEYGATE_LOG_LEVEL=warn KEYGATE_LIMITS_MANAGEMENT_RPS_PER_ORG=0 \
  "$KEYGATE" serve --data "$WORK" --listen "127.0.0.1:$PORT" 2>"$WORK/serve.log" &
PID=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
out=$("$BUILD_DIR/bench/management_load" 127.0.0.1 "$PORT" "$pk" 64 10 100000)
echo "$out"
report durable_creates_per_s "$(echo "$out" | awk '/durable_creates_per_s/ {print $2}')" 5000 higher
for figure in list_first_page_p50 list_first_page_p99 list_offset_50000_p50 list_tag_and_status_p50; do
  report "${figure}_ms" "$(echo "$out" | awk -v f="$figure" '$1 == f {print $2}')" 5 lower
done
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=

if [[ -x "$BUILD_DIR/bench/limiter_bench" ]]; then
  echo "== in-process limiter (Google Benchmark)"
  "$BUILD_DIR/bench/limiter_bench" --benchmark_min_time=0.2 2>/dev/null | grep -E "^BM_|^-|Benchmark"
fi
if [[ -x "$BUILD_DIR/bench/relay_bench" ]]; then
  echo "== the stream relay's reading of one upstream event (Google Benchmark)"
  "$BUILD_DIR/bench/relay_bench" --benchmark_min_time=0.2 2>/dev/null | grep -E "^BM_|^-|Benchmark"
fi
if [[ -x "$BUILD_DIR/bench/usage_write_bench" ]]; then
  echo "== usage batches: CPU per batch and per record (Google Benchmark, data file in $BUILD_DIR)"
  BENCH_DIR="$BUILD_DIR" "$BUILD_DIR/bench/usage_write_bench" --benchmark_min_time=0.5 2>/dev/null |
    grep -E "^BM_|^-|Benchmark"
fi
if [[ -x bench/proxy.sh && -z "${SKIP_PROXY:-}" ]]; then
  echo "== data plane proxy"
  bench/proxy.sh "$BUILD_DIR"
fi
