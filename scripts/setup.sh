#!/usr/bin/env bash
# Installs the Debian 12 packages keygate needs to build, test and run. Idempotent: installs
# only what is missing, and runs `apt-get update` once before installing anything.
# Run as root (CI and a fresh machine are root); prints what it does.
set -euo pipefail

BUILD_PACKAGES=(
  build-essential cmake pkg-config ca-certificates curl
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libssl-dev libsqlite3-dev sqlite3 libyaml-cpp-dev libcli11-dev libjemalloc-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)
# Extra tools for the client tests and benchmarks, installed with `scripts/setup.sh --all`.
EXTRA_PACKAGES=(wrk nginx-light)

want=("${BUILD_PACKAGES[@]}")
if [[ "${1:-}" == "--all" ]]; then want+=("${EXTRA_PACKAGES[@]}"); fi
if ! command -v node >/dev/null 2>&1; then want+=(nodejs npm); fi

missing=()
for pkg in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: every package is installed"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "setup: missing packages: ${missing[*]}; run 'sudo scripts/setup.sh' (needs root)" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
