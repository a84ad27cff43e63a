#!/usr/bin/env bash
# Runs every herald-load scenario, small, against real Herald brokers on loopback: the tool's
# own end-to-end test. Each run must exit 0 (every connection subscribed, nothing lost, nothing
# closed early, in time); `--vs` runs against a second broker and must print its ratios; the
# plot must come out as a PNG.
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/herald-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
source scripts/lib/herald.sh

cargo build -p herald -p herald-load --locked
LOAD="$CARGO_TARGET_DIR/debug/herald-load"

work="$(mktemp -d)"
failed=0
cleanup() {
  stop_heralds
  if [[ $failed -ne 0 ]]; then
    for log in "$work"/*.log; do
      echo "--- $log" >&2
      cat "$log" >&2
    done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

start_herald A "$work/a.log"
start_herald B "$work/b.log"
echo "load-smoke: brokers at $A_WS and $B_WS"

# Runs herald-load with the given arguments; its output goes to OUT (printed too).
run() {
  echo "load-smoke: herald-load $*"
  if ! "$LOAD" --duration 60 "$@" >"$work/out" 2>&1; then
    cat "$work/out"
    echo "load-smoke: FAILED: herald-load $*" >&2
    failed=1
    exit 1
  fi
  cat "$work/out"
}

expect() {
  if ! grep -q -- "$1" "$work/out"; then
    echo "load-smoke: FAILED: expected a line matching '$1'" >&2
    failed=1
    exit 1
  fi
}

run conns --url "$A_WS" --connections 200 --workers 2 --broker-pid "$A_PID"
expect "connections: 200 subscribed, 0 failed"
run fanout --url "$A_TCP" --subscribers 50 --messages 200 --rate 2000 --broker-pid "$A_PID"
expect "lost: 0;"
run broadcast --url "$A_WS" --subscribers 100 --rounds 3 --interval-ms 50 --workers 2
expect "last of 100 subscribers: p50 over 3 rounds"
run pubsub --url "$A_WS" --pairs 10 --messages 100 --workers 2
expect "messages/s: .* over all pairs"
run queue --url "$A_TCP" --producers 2 --consumers 2 --messages 2000 --destination "/queue/smoke-$$"
expect "lost: 0; duplicates: 0"
run queue --url "$A_WS" --consumers 2 --ack client --messages 1000 --destination "/queue/smoke-ws-$$"
expect "lost: 0; duplicates: 0"
run fanout --url "$A_WS" --label Herald-A --vs "$B_WS" --vs-label Herald-B --vs-pairs 2 \
  --subscribers 20 --messages 100 --broker-pid "$A_PID" --vs-broker-pid "$B_PID" --json "$work/vs.json"
expect "deliveries_per_s: median A/B over 2 pair(s)"
expect "\[B2\] broker CPU"
run plot --output "$work/plot.png" "$work/vs.json"
if [[ "$(head -c 8 "$work/plot.png" | od -An -tx1 | tr -d ' \n')" != "89504e470d0a1a0a" ]]; then
  echo "load-smoke: FAILED: $work/plot.png is not a PNG" >&2
  failed=1
  exit 1
fi
echo "load-smoke: all scenarios passed"
