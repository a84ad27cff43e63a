#!/usr/bin/env bash
# What scraping /metrics costs during fan-out: one release-built herald with its operations
# listener on, herald-load fan-out 1 -> SUBSCRIBERS at RATE msgs/s, runs alternating without
# and with a scraper fetching /metrics every second (same broker process), PAIRS pairs.
# Prints each run's deliveries/s and broker CPU, then the medians and their difference.
#
#   scripts/metrics-cost.sh                       # 3 pairs, 1,000 subscribers, 1,200 msgs/s
#   PAIRS=5 RATE=500 MESSAGES=4000 scripts/metrics-cost.sh
#   SKIP_BUILD=1 HERALD_BIN=... LOAD_BIN=...      # binaries already built
#   BASE_BIN=/path/to/older/herald ...            # also run an older build in each round
#                                                 # (the counters' own cost on the hot path)
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/herald-target}"
HERALD_BIN="${HERALD_BIN:-$CARGO_TARGET_DIR/release/herald}"
source scripts/lib/herald.sh

PAIRS="${PAIRS:-3}"
SUBSCRIBERS="${SUBSCRIBERS:-1000}"
RATE="${RATE:-1200}"
MESSAGES="${MESSAGES:-9600}"

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  cargo build --release -p herald -p herald-load --locked
fi
LOAD="${LOAD_BIN:-$CARGO_TARGET_DIR/release/herald-load}"

work=$(mktemp -d)
SCRAPER=""
cleanup() {
  [[ -z "$SCRAPER" ]] || kill "$SCRAPER" 2>/dev/null || true
  stop_heralds
  rm -rf "$work"
}
trap cleanup EXIT

start_herald broker "$work/herald.log" --http-bind 127.0.0.1:0
http=""
until [[ -n "$http" ]]; do
  http=$(sed -n 's/.*http: serving .*addr=\([0-9.:]*\).*/\1/p' "$work/herald.log")
  sleep 0.1
done
echo "herald pid $broker_PID, $broker_WS, metrics at http://$http/metrics"

if [[ -n "${BASE_BIN:-}" ]]; then
  HERALD_BIN="$BASE_BIN" start_herald base "$work/base.log"
  echo "older build: pid $base_PID, $base_WS"
fi

# run URL PID: one fan-out; prints deliveries/s, broker CPU seconds, lost.
run() {
  "$LOAD" fanout --url "$1" --subscribers "$SUBSCRIBERS" --messages "$MESSAGES" \
    --rate "$RATE" --workers 2 --broker-pid "$2" --json "$work/run.json" >"$work/run.txt"
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.0f %.2f %d" % (r["deliveries_per_s"], r["broker_cpu_seconds"], r["lost"]))' "$work/run.json"
}

declare -a plain scraped based
for ((i = 1; i <= PAIRS; i++)); do
  if [[ -n "${BASE_BIN:-}" ]]; then
    read -r rate cpu lost < <(run "$base_WS" "$base_PID")
    echo "round $i, older build: deliveries/s $rate, broker CPU ${cpu} s, lost $lost"
    based+=("$rate")
  fi
  read -r rate cpu lost < <(run "$broker_WS" "$broker_PID")
  echo "pair $i without scraping: deliveries/s $rate, broker CPU ${cpu} s, lost $lost"
  plain+=("$rate")
  # A scraper as Prometheus would be, every second, for the whole run.
  (while :; do curl -s -o /dev/null "http://$http/metrics"; sleep 1; done) &
  SCRAPER=$!
  read -r rate cpu lost < <(run "$broker_WS" "$broker_PID")
  kill "$SCRAPER"
  wait "$SCRAPER" 2>/dev/null || true
  SCRAPER=""
  echo "pair $i with /metrics every 1 s: deliveries/s $rate, broker CPU ${cpu} s, lost $lost"
  scraped+=("$rate")
done
size=$(curl -s "http://$http/metrics" | wc -c)
scrape_time=$(curl -s -o /dev/null -w '%{time_total}' "http://$http/metrics")
python3 - "${plain[*]}" "${scraped[*]}" "$size" "$scrape_time" "${based[*]:-}" <<'PY'
import statistics, sys
plain = [float(x) for x in sys.argv[1].split()]
scraped = [float(x) for x in sys.argv[2].split()]
a, b = statistics.median(plain), statistics.median(scraped)
print(f"median deliveries/s: without {a:.0f}, with scraping {b:.0f}: {100 * (b - a) / a:+.2f} %")
if sys.argv[5].strip():
    base = statistics.median(float(x) for x in sys.argv[5].split())
    print(f"median deliveries/s of the older build: {base:.0f}; this build {100 * (a - base) / base:+.2f} %")
print(f"/metrics: {sys.argv[3]} bytes, one scrape {float(sys.argv[4]) * 1000:.2f} ms (curl, after the runs)")
PY
