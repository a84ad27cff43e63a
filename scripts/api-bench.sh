#!/usr/bin/env bash
# Measures the HTTP API's POST /api/v1/publish with wrk (Debian package `wrk`) on kept-alive
# connections against a release-built herald on free loopback ports: requests/s and latency
# percentiles per run, then the medians. The destination has no subscriber, so this is the
# API's own cost (HTTP, key check, JSON, limits, the router's lookup), not fan-out.
#
#   scripts/api-bench.sh                          # 3 runs of 10 s, 32 connections, 1 wrk thread
#   RUNS=5 DURATION=20s CONNECTIONS=8 scripts/api-bench.sh
#   SKIP_BUILD=1 HERALD_BIN=... scripts/api-bench.sh
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/herald-target}"
HERALD_BIN="${HERALD_BIN:-$CARGO_TARGET_DIR/release/herald}"
source scripts/lib/herald.sh

RUNS="${RUNS:-3}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-1}"
KEY="bench-secret-0123456789"

command -v wrk >/dev/null || { echo "api-bench: needs wrk (apt-get install -y wrk)" >&2; exit 1; }
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  cargo build --release -p herald --locked
fi
make_work_dir

# The http listener's connection bound must not be what limits wrk.
cat >"$work/herald.toml" <<TOML
[http]
enabled = true
bind = "127.0.0.1:0"
max_connections = $((CONNECTIONS * 2))
TOML
start_herald H "$work/herald.log" --config "$work/herald.toml" --api-key "$KEY"
http=""
for _ in $(seq 50); do
  http=$(sed -n 's/.*http: serving.* addr=\([0-9.:]*\).*/\1/p' "$work/herald.log" | head -1)
  [[ -n "$http" ]] && break
  sleep 0.1
done
[[ -n "$http" ]] || { echo "api-bench: no http address in the log" >&2; cat "$work/herald.log" >&2; exit 1; }

cat >"$work/publish.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"destination":"/topic/bench","body":"hello from wrk","headers":{"content-type":"text/plain"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
LUA
url="http://$http/api/v1/publish"
curl -sf -X POST "$url" -H "Authorization: Bearer $KEY" -d '{"destination":"/topic/bench"}' >/dev/null

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -s publish.lua $url"
rates=() p99s=()
for run in $(seq "$RUNS"); do
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$work/publish.lua" "$url")
  rate=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)
  echo "run $run: $rate requests/s, p50 $p50, p99 $p99 ${errors:+($errors)}"
  rates+=("$rate") p99s+=("$p99")
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
echo "median of $RUNS runs: $(median "${rates[@]}") requests/s; p99 per run: ${p99s[*]}"
