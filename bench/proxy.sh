#!/usr/bin/env bash
# bench/proxy.sh [BUILD_DIR]: the data plane's HTTP benchmark (issue 3), on loopback, bounded in
# time. Not a test: it prints figures and ratios.
#
# The same small chat completion, plain and streamed, at 32 connections and at 1, sent by wrk:
#   direct   straight to a fast static mock (nginx `return 200` with a fixed completion)
#   nginx    through nginx as a plain reverse proxy to it (keep-alive upstream): the physical
#            limit of a proxy
#   keygate  through keygate to it, with a key whose RPM, TPM and budget are set (high), so the
#            whole enforcement path runs on every call
#   portkey  through the Portkey AI gateway (@portkey-ai/gateway, Node, pinned in
#            bench/portkey/package-lock.json, installed there with npm ci when missing), started
#            from the package's bin (build/start-server.js --port=N --headless) and routed to the
#            mock per request by the headers x-portkey-provider: openai and x-portkey-custom-host
#            (the mock's /v1 or /sse/v1); a plain and a streamed call through it are checked with
#            curl first. Skipped, with a line saying why, if it cannot be installed or checked.
#            (bench/portkey/package.json holds @hono/node-server at 1.13.8: with later 1.x
#            versions, Portkey 1.15.2 answers every proxied call 500, "TypeError: immutable".)
# For each: requests/s, p50 and p99 latency, the CPU microseconds the proxy process spent per
# request (from /proc, user + system), and the share of the machine's CPU time its hypervisor
# took meanwhile (steal, from /proc/stat: on a shared virtual machine, what makes a run noisy).
# Then keygate's figures as ratios to nginx's and the latency keygate adds at p99 over the
# direct path, and keygate's req/s as a multiple of Portkey's. For each keygate run, also the
# p50 and p99 of keygate's own share of a call, in-process (its keygate_proxy_overhead_seconds
# histogram, read before and after the run; on stderr): its own work, without the wake-ups of
# the loopback hops, though not without the machine's preemptions and steal. Last, each
# proxy's peak and current resident memory (summed over its processes, from /proc).
#
# Environment: PROFILE (a path prefix: each measured run is recorded with perf, call graphs,
# into PREFIX.TARGET-MODE-CONNS.perf, for the proxy's processes only; PERF_CALLGRAPH replaces
# perf's -g, e.g. "--call-graph dwarf,16384" for stacks through code without frame pointers),
# SCHED (a path prefix: each measured run at one connection is recorded with `perf sched record
# -a` into PREFIX.TARGET-MODE-1.sched, and bench/sched_cycles.py prints on stderr where its calls
# waited: each call's time as wrk saw it, the scheduler's placement of wrk, proxy and mock on the
# two cores, and the p99 without the calls during which the proxy's other threads or kernel
# workers ran; the recording itself slows the run),
# STAT (set: prints each run's system calls, context switches and CPU split into user and
# system time per request, from perf stat and /proc, on stderr), WRAP (a
# command keygate runs under, such as "valgrind --tool=callgrind"), DURATION (seconds per run,
# default 5), WARMUP (default 1), TARGETS (default "direct nginx keygate portkey"; the nginx
# ratios need the first three, the Portkey ratios keygate and portkey), MODES (default "plain
# stream"), CONNECTIONS (default "32 1"), ROUNDS (default 1: the whole set of runs this many
# times over, each ratio taken within its round, where the runs it compares were close in time,
# and reported as the median over the rounds with their range: on a machine whose speed drifts,
# use 3 or more; even rounds run the targets in reverse order, so that drift favours none). Installs wrk and nginx-light with apt-get when missing (needs root).
# Everything it starts is stopped on exit, by pid.
set -euo pipefail

BUILD_DIR="$(cd "${1:-build}" && pwd)"
cd "$(dirname "$0")/.."
DURATION="${DURATION:-5}"
WARMUP="${WARMUP:-1}"
TARGETS="${TARGETS:-direct nginx keygate portkey}"
has_target() { [[ " $TARGETS " == *" $1 "* ]]; }
drop_target() { TARGETS=$(tr ' ' '\n' <<<"$TARGETS" | grep -vx "$1" | paste -sd' ' || true); }
KEYGATE="$BUILD_DIR/keygate"
[[ -x "$KEYGATE" ]] || { echo "bench/proxy.sh: $KEYGATE not built" >&2; exit 1; }

if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
  apt-get install -y -q wrk nginx-light >/dev/null
fi

WORK="$(mktemp -d /tmp/keygate-bench-XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench/proxy.sh: nothing listens on port $1" >&2
  exit 1
}

STATIC_PORT=$(free_port)
PROXY_PORT=$(free_port)
KEYGATE_PORT=$(free_port)
mkdir -p "$WORK/tmp"

# ---- the static mock and the reverse proxy (nginx) ------------------------------------------
COMPLETION='{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"echo","choices":[{"index":0,"message":{"role":"assistant","content":"Hello, benchmark!"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":24,"completion_tokens":4,"total_tokens":28}}'
CHUNK='{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"echo","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}],"usage":null}'
USAGE='{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"echo","choices":[],"usage":{"prompt_tokens":24,"completion_tokens":4,"total_tokens":28}}'

nginx_common() {
  cat <<EOF
daemon off;
pid $WORK/$1.pid;
error_log $WORK/$1.err warn;
events { worker_connections 8192; }
EOF
}
temp_paths() {
  cat <<EOF
  access_log off;
  client_body_temp_path $WORK/tmp/body;
  proxy_temp_path $WORK/tmp/proxy;
  keepalive_requests 100000000;
EOF
}

{
  echo "worker_processes 1;"
  nginx_common static
  echo "http {"
  temp_paths
  cat <<EOF
  server {
    listen 127.0.0.1:$STATIC_PORT;
    location /v1/ { default_type application/json; return 200 '$COMPLETION'; }
    location /sse/v1/ {
      default_type text/event-stream;
      return 200 'data: $CHUNK

data: $CHUNK

data: $CHUNK

data: $USAGE

data: [DONE]

';
    }
  }
}
EOF
} >"$WORK/static.conf"

{
  echo "worker_processes 2;"
  nginx_common proxy
  echo "http {"
  temp_paths
  cat <<EOF
  upstream mock { server 127.0.0.1:$STATIC_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$PROXY_PORT;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
    location /sse/ {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
} >"$WORK/proxy.conf"

nginx -p "$WORK" -c "$WORK/static.conf" 2>>"$WORK/static.err" & PIDS+=($!); STATIC_PID=$!
nginx -p "$WORK" -c "$WORK/proxy.conf" 2>>"$WORK/proxy.err" & PIDS+=($!); PROXY_PID=$!
wait_port "$STATIC_PORT"
wait_port "$PROXY_PORT"

# ---- keygate --------------------------------------------------------------------------------
cat >"$WORK/keygate.yaml" <<EOF
log_level: warn
limits:
  max_connections: 100000
providers:
  - name: static
    base_url: http://127.0.0.1:$STATIC_PORT/v1
  - name: sse
    base_url: http://127.0.0.1:$STATIC_PORT/sse/v1
models:
  - id: static/echo
    upstream: echo
    input_usd_per_mtok: 1.0
    output_usd_per_mtok: 2.0
    context_tokens: 8192
    max_output_tokens: 1024
  - id: sse/echo
    upstream: echo
    input_usd_per_mtok: 1.0
    output_usd_per_mtok: 2.0
    context_tokens: 8192
    max_output_tokens: 1024
EOF
ORG=$("$KEYGATE" init --data "$WORK/data" --org bench)
ORG_ID=$(sed -E 's/.*"org_id":"([^"]+)".*/\1/' <<<"$ORG")
PK=$("$KEYGATE" provisioning-key create --data "$WORK/data" --org "$ORG_ID" --name bench |
     sed -E 's/.*"key":"([^"]+)".*/\1/')
${WRAP:-} "$KEYGATE" serve --config "$WORK/keygate.yaml" --data "$WORK/data" \
  --listen "127.0.0.1:$KEYGATE_PORT" >"$WORK/keygate.log" 2>&1 & PIDS+=($!); KEYGATE_PID=$!
wait_port "$KEYGATE_PORT"
SERVICE_KEY=$(curl -s "http://127.0.0.1:$KEYGATE_PORT/prod/createServiceKey" \
  -H "Authorization: Bearer $PK" \
  -d '{"api_key_name":"bench","rpm_limit":1000000000,"tpm_limit":1000000000,"credit_limit":1000000,"reset_budget_interval":"monthly"}' |
  sed -E 's/.*"api_key":"([^"]+)".*/\1/')

# ---- Portkey --------------------------------------------------------------------------------
PORTKEY_DIR="$PWD/bench/portkey"
PORTKEY_MAIN="$PORTKEY_DIR/node_modules/@portkey-ai/gateway/build/start-server.js"
if has_target portkey && [[ ! -f "$PORTKEY_MAIN" ]]; then
  if ! command -v npm >/dev/null ||
     ! (cd "$PORTKEY_DIR" && npm ci --no-audit --no-fund --loglevel=error) >"$WORK/npm.log" 2>&1
  then
    echo "bench/proxy.sh: Portkey (@portkey-ai/gateway) could not be installed with npm ci in" \
      "bench/portkey (no npm or no network?): skipping target portkey" >&2
    tail -3 "$WORK/npm.log" >&2 2>/dev/null || true
    drop_target portkey
  fi
fi
if has_target portkey; then
  PORTKEY_PORT=$(free_port)
  # --headless: no UI and no log stream route. It listens on all interfaces (no host option).
  node "$PORTKEY_MAIN" --port="$PORTKEY_PORT" --headless >"$WORK/portkey.log" 2>&1 &
  PIDS+=($!); PORTKEY_PID=$!
  wait_port "$PORTKEY_PORT"
  for check in "/v1 false chat.completion\"" "/sse/v1 true data: [DONE]"; do
    read -r path stream expect <<<"$check"
    reply=$(curl -s -w '\n%{http_code}' "http://127.0.0.1:$PORTKEY_PORT/v1/chat/completions" \
      -H 'Content-Type: application/json' -H 'Authorization: Bearer bench' \
      -H 'x-portkey-provider: openai' \
      -H "x-portkey-custom-host: http://127.0.0.1:$STATIC_PORT$path" \
      -d '{"model":"echo","stream":'"$stream"',"messages":[{"role":"user","content":"hi"}]}' || true)
    if [[ "$(tail -n1 <<<"$reply")" != 200 || "$reply" != *'"content":"Hello'* ||
          "$reply" != *"$expect"* ]]; then
      echo "bench/proxy.sh: Portkey did not relay the mock's completion (stream=$stream):" \
        "skipping target portkey" >&2
      head -c 400 <<<"$reply" >&2; echo >&2
      drop_target portkey
      break
    fi
  done
fi

# ---- wrk ------------------------------------------------------------------------------------
write_script() {  # $1 file, $2 model, $3 stream (true|false), $4 Portkey's custom host (optional)
  cat >"$1" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $SERVICE_KEY"
EOF
  if [[ -n "${4:-}" ]]; then
    cat >>"$1" <<EOF
wrk.headers["x-portkey-provider"] = "openai"
wrk.headers["x-portkey-custom-host"] = "$4"
EOF
  fi
  cat >>"$1" <<EOF
wrk.body = '{"model":"$2","stream":$3,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark."}],"max_tokens":16}'
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write +
                 summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT %d %d %d %d %d\n", summary.requests, summary.duration,
                         latency:percentile(50), latency:percentile(99), errors))
end
EOF
}
write_script "$WORK/plain.lua" static/echo false
write_script "$WORK/stream.lua" sse/echo true
# Portkey: the same bodies, routed by headers to the mock's plain and SSE paths.
write_script "$WORK/plain-portkey.lua" static/echo false "http://127.0.0.1:$STATIC_PORT/v1"
write_script "$WORK/stream-portkey.lua" sse/echo true "http://127.0.0.1:$STATIC_PORT/sse/v1"

# CPU ticks of a process and of its children (nginx workers): "user system".
process_tree() { echo "$1"; ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' '; }
cpu_ticks() {
  local user=0 system=0 pid
  for pid in $(process_tree "$1"); do
    read -r -a stat <"/proc/$pid/stat" || continue
    user=$((user + stat[13]))
    system=$((system + stat[14]))
  done
  echo "$user $system"
}
TICKS_PER_SECOND=$(getconf CLK_TCK)
# The machine's CPU ticks, all and stolen by the hypervisor (a virtual machine's other guests):
# user to steal (the guest columns after them are inside user and nice already).
machine_ticks() {
  awk '/^cpu / {total = 0; for (i = 2; i <= 9; i++) total += $i; print total, $9}' /proc/stat
}
# Voluntary and involuntary (preempted) context switches of a process tree's threads.
switches() {
  local pid
  for pid in $(process_tree "$1"); do cat /proc/"$pid"/task/*/status 2>/dev/null; done |
    awk '/^voluntary_ctxt/ {v += $2} /^nonvoluntary_ctxt/ {n += $2} END {print v + 0, n + 0}'
}

# keygate's cumulative keygate_proxy_overhead_seconds buckets for chat calls, "LE COUNT" a line.
overhead_buckets() {
  python3 - "$KEYGATE_PORT" <<'PY'
import re, sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
bucket = r'^keygate_proxy_overhead_seconds_bucket\{route="/v1/chat/completions",le="([^"]+)"\} '
for le, count in re.findall(bucket + r'(\d+)$', text, re.M):
    print(le, count)
PY
}
# overhead_quantiles BEFORE AFTER: the p50 and p99 of keygate's own share of the calls between
# two overhead_buckets snapshots, as the upper bounds of the buckets they fall in.
overhead_quantiles() {
  python3 - "$1" "$2" <<'PY'
import sys
def parse(text):
    return [(le, int(n)) for le, n in (line.split() for line in text.strip().splitlines())]
before, after = dict(parse(sys.argv[1])), parse(sys.argv[2])
delta = [(le, n - before.get(le, 0)) for le, n in after]
total = delta[-1][1] if delta else 0
def bound(q):
    for le, n in delta:
        if n >= q * total:
            return "over 100000" if le == "+Inf" else f"<= {float(le) * 1e6:.0f}"
if total == 0:
    print("  in keygate: no proxied calls counted")
else:
    print(f"  in keygate (keygate_proxy_overhead_seconds, {total} calls): "
          f"p50 {bound(0.5)} us, p99 {bound(0.99)} us")
PY
}

# run LABEL URL SCRIPT CONNECTIONS PID: one wrk run; prints "rps p50_us p99_us cpu_us errors
# steal_percent", the last being the share of the machine's CPU time its hypervisor gave to
# other guests meanwhile (a run with much of it is noise, its tail latencies most of all).
run() {
  local url=$2 script=$3 connections=$4 pid=$5 threads=2
  [[ $connections -lt 2 ]] && threads=1
  wrk -t"$threads" -c"$connections" -d"${WARMUP}s" -s "$script" "$url" >/dev/null 2>&1 || true
  local before after out stat_pid="" perf_pid="" pids
  pids=$(process_tree "$pid" | paste -sd,)
  local switches_before=""
  if [[ -n "${STAT:-}" ]]; then  # system calls and context switches per request
    perf stat -x, -e raw_syscalls:sys_enter -p "$pids" -o "$WORK/stat.csv" 2>/dev/null &
    stat_pid=$!
    switches_before=$(switches "$pid")
  fi
  if [[ -n "${PROFILE:-}" ]]; then
    perf record -q -e cpu-clock ${PERF_CALLGRAPH:--g} -p "$pids" -o "$PROFILE.$1.perf" \
      2>/dev/null & perf_pid=$!
  fi
  local sched_pid=""
  if [[ -n "${SCHED:-}" && $connections -eq 1 ]]; then  # every switch on both cores
    perf sched record -a -o "$SCHED.$1.sched" -- sleep $((DURATION + 1)) >/dev/null 2>&1 &
    sched_pid=$!
  fi
  local user0 system0 user1 system1 total0 steal0 total1 steal1 overhead_before=""
  [[ $1 == keygate-* ]] && overhead_before=$(overhead_buckets)
  read -r user0 system0 <<<"$(cpu_ticks "$pid")"
  read -r total0 steal0 <<<"$(machine_ticks)"
  out=$(wrk -t"$threads" -c"$connections" -d"${DURATION}s" -s "$script" "$url" | grep '^RESULT')
  read -r total1 steal1 <<<"$(machine_ticks)"
  read -r user1 system1 <<<"$(cpu_ticks "$pid")"
  [[ $1 == keygate-* ]] && overhead_quantiles "$overhead_before" "$(overhead_buckets)" >&2
  read -r _ requests duration_us p50 p99 errors <<<"$out"
  [[ -n "$perf_pid" ]] && { kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true; }
  if [[ -n "$sched_pid" ]]; then
    kill -INT "$sched_pid" 2>/dev/null || true; wait "$sched_pid" 2>/dev/null || true
    echo "  sched $1: $(python3 bench/sched_cycles.py "$SCHED.$1.sched" "$pids" \
      "$(process_tree "$STATIC_PID" | paste -sd,)")" >&2
  fi
  if [[ -n "$stat_pid" ]]; then
    kill -INT "$stat_pid"; wait "$stat_pid" 2>/dev/null || true
    read -r v0 n0 <<<"$switches_before"
    read -r v1 n1 <<<"$(switches "$pid")"
    awk -F, -v n="$requests" -v who="$1" -v vol=$((v1 - v0)) -v inv=$((n1 - n0)) \
        -v user=$((user1 - user0)) -v sys=$((system1 - system0)) -v hz="$TICKS_PER_SECOND" '
      $3 ~ /sys_enter/ && n > 0 {
        printf "  %s per request: %.2f system calls, %.3f context switches waiting, %.3f preempted, " \
               "CPU %.1f us user + %.1f us system\n",
               who, $1 / n, vol / n, inv / n, user / hz * 1e6 / n, sys / hz * 1e6 / n }' \
        "$WORK/stat.csv" >&2
  fi
  python3 - "$requests" "$duration_us" "$p50" "$p99" "$errors" \
    "$((user1 - user0 + system1 - system0))" \
    "$TICKS_PER_SECOND" "$((steal1 - steal0))" "$((total1 - total0))" <<'PY'
import sys
requests, duration_us, p50, p99, errors, ticks, hz, steal, total = map(int, sys.argv[1:])
rps = requests / (duration_us / 1e6)
cpu_us = ticks / hz * 1e6 / max(requests, 1)
print(f"{rps:.0f} {p50} {p99} {cpu_us:.1f} {errors} {100 * steal / max(total, 1):.0f}")
PY
}

declare -A RESULT
ROUNDS="${ROUNDS:-1}"
echo "keygate proxy benchmark: ${DURATION}s per run on $(nproc) cores, wrk on loopback"
for round in $(seq 1 "$ROUNDS"); do
[[ $ROUNDS -gt 1 ]] && echo "round $round of $ROUNDS"
# Every other round runs the targets in the reverse order, so that a machine that speeds up or
# slows down over the rounds does not favour the target that always ran first.
round_targets=$TARGETS
if ((round % 2 == 0)); then round_targets=$(tr ' ' '\n' <<<"$TARGETS" | tac | paste -sd' '); fi
printf '%-8s %-6s %-5s %10s %9s %9s %12s %7s %7s\n' target mode conns req/s p50_us p99_us \
  cpu_us/req errors steal%
for mode in ${MODES:-plain stream}; do
  prefix=""; [[ $mode == stream ]] && prefix="/sse"
  for connections in ${CONNECTIONS:-32 1}; do
    for target in $round_targets; do
      script="$WORK/$mode.lua"
      case $target in
        direct) url="http://127.0.0.1:$STATIC_PORT$prefix/v1/chat/completions"; pid=$STATIC_PID ;;
        nginx) url="http://127.0.0.1:$PROXY_PORT$prefix/v1/chat/completions"; pid=$PROXY_PID ;;
        keygate) url="http://127.0.0.1:$KEYGATE_PORT/v1/chat/completions"; pid=$KEYGATE_PID ;;
        portkey) url="http://127.0.0.1:$PORTKEY_PORT/v1/chat/completions"; pid=$PORTKEY_PID
                 script="$WORK/$mode-portkey.lua" ;;
        *) echo "bench/proxy.sh: unknown target $target" >&2; exit 1 ;;
      esac
      figures=$(run "$target-$mode-$connections" "$url" "$script" "$connections" "$pid")
      RESULT[$round.$target.$mode.$connections]="$figures"
      read -r rps p50 p99 cpu errors steal <<<"$figures"
      printf '%-8s %-6s %-5s %10s %9s %9s %12s %7s %7s\n' "$target" "$mode" "$connections" \
        "$rps" "$p50" "$p99" "$cpu" "$errors" "$steal"
    done
  done
done
done

# figures TARGET MODE CONNECTIONS: that run's figures of every round, one round per line.
figures() {
  local round
  for round in $(seq 1 "$ROUNDS"); do echo "${RESULT[$round.$1.$2.$3]}"; done
}
# Medians (and ranges, over several rounds) of ratios computed within each round.
RATIOS_PY='
import statistics, sys
def column(lines, i):
    return [float(line.split()[i]) for line in lines.strip().splitlines()]
def show(values, digits):
    median = f"{statistics.median(values):.{digits}f}"
    if len(values) == 1:
        return median
    return f"{median} ({min(values):.{digits}f} to {max(values):.{digits}f})"
'

if has_target direct && has_target nginx && has_target keygate; then
  echo
  echo "keygate beside nginx (targets: CPU/req <= 1.25x, req/s >= 0.9x, added p99 at 1 conn <= 120 us)"
  printf '%-6s %-5s %22s %22s %22s %22s\n' mode conns "req/s ratio" "cpu ratio" "added p99 (us)" \
    "nginx adds (us)"
  for mode in ${MODES:-plain stream}; do
    for connections in ${CONNECTIONS:-32 1}; do
      python3 -c "$RATIOS_PY"'
k, n, d = sys.argv[3], sys.argv[4], sys.argv[5]
k_rps, n_rps = column(k, 0), column(n, 0)
k_cpu, n_cpu = column(k, 3), column(n, 3)
k_p99, n_p99, d_p99 = column(k, 2), column(n, 2), column(d, 2)
rps = [a / b for a, b in zip(k_rps, n_rps)]
cpu = [a / max(b, 0.01) for a, b in zip(k_cpu, n_cpu)]
added = [a - b for a, b in zip(k_p99, d_p99)]
nginx_adds = [a - b for a, b in zip(n_p99, d_p99)]
print(f"{sys.argv[1]:<6} {sys.argv[2]:<5} {show(rps, 2):>22} {show(cpu, 2):>22} "
      f"{show(added, 0):>22} {show(nginx_adds, 0):>22}")
' "$mode" "$connections" "$(figures keygate "$mode" "$connections")" \
        "$(figures nginx "$mode" "$connections")" "$(figures direct "$mode" "$connections")"
    done
  done
fi

if has_target keygate && has_target portkey; then
  echo
  echo "keygate beside Portkey (req/s: keygate's / Portkey's, target >= 25x;" \
    "cpu: Portkey's CPU/req / keygate's)"
  printf '%-6s %-5s %22s %22s\n' mode conns "req/s ratio" "cpu ratio"
  for mode in ${MODES:-plain stream}; do
    for connections in ${CONNECTIONS:-32 1}; do
      python3 -c "$RATIOS_PY"'
k, p = sys.argv[3], sys.argv[4]
rps = [a / max(b, 0.01) for a, b in zip(column(k, 0), column(p, 0))]
cpu = [b / max(a, 0.01) for a, b in zip(column(k, 3), column(p, 3))]
print(f"{sys.argv[1]:<6} {sys.argv[2]:<5} {show(rps, 1):>22} {show(cpu, 1):>22}")
' "$mode" "$connections" "$(figures keygate "$mode" "$connections")" \
        "$(figures portkey "$mode" "$connections")"
    done
  done
  if grep -qi 'error' "$WORK/portkey.log"; then
    echo "Portkey logged errors:"; grep -i 'error' "$WORK/portkey.log" | head -5
  fi
fi
# Resident memory after the runs: a process tree's peak (VmHWM) and current (VmRSS) sums.
memory_line() {  # $1 label, $2 pid
  local pid
  for pid in $(process_tree "$2"); do cat "/proc/$pid/status" 2>/dev/null; done |
    awk -v who="$1" '/^VmHWM/ {peak += $2} /^VmRSS/ {now += $2}
      END {printf "  %-8s peak %.1f MiB, now %.1f MiB\n", who, peak / 1024, now / 1024}'
}
echo
echo "resident memory (summed over each proxy's processes)"
has_target keygate && memory_line keygate "$KEYGATE_PID"
has_target nginx && memory_line nginx "$PROXY_PID"
has_target portkey && memory_line portkey "$PORTKEY_PID"
grep -q '"level":"error"' "$WORK/keygate.log" && { echo "keygate logged errors:"; grep '"level":"error"' "$WORK/keygate.log" | head -5; }
exit 0
