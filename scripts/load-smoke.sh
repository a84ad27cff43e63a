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
NATS_PID=""
cleanup() {
  stop_heralds
  if [[ -n "$NATS_PID" ]]; then
    kill "$NATS_PID" 2>/dev/null || true
    wait "$NATS_PID" 2>/dev/null || true
  fi
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
run queue --url "$A_TCP" --consumers 2 --messages 2000 --receipt-every 1 --receipt-window 64 \
  --header x-smoke:1 --destination "/queue/smoke-receipts-$$"
expect "receipts: 2000 of 2000 asked"
expect "lost: 0; duplicates: 0"
run queue --url "$A_TCP" --consumers 0 --messages 1000 --receipt-every 100 --receipt-window 2 \
  --broker-pid "$A_PID" --destination "/queue/smoke-waiting-$$"
expect "receipts: 10 of 10 asked"
expect "broker memory per waiting message: "
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
# A two-node cluster (scripts/test.sh installs nats-server): publishers on node C, subscribers
# round-robin over C and D with --sub-url, so half the pairs cross NATS; --cpu-pid reads NATS.
nats-server -a 127.0.0.1 -p -1 >"$work/nats.log" 2>&1 </dev/null &
NATS_PID=$!
nats_line=""
for _ in $(seq 300); do
  nats_line=$(grep -m1 "Listening for client connections on" "$work/nats.log" || true)
  [[ -n "$nats_line" ]] && break
  sleep 0.1
done
[[ -n "$nats_line" ]] || { failed=1; echo "load-smoke: FAILED: nats-server did not start" >&2; exit 1; }
start_herald C "$work/c.log" --cluster "nats://${nats_line##* }"
start_herald D "$work/d.log" --cluster "nats://${nats_line##* }"
for log in "$work/c.log" "$work/d.log"; do
  for _ in $(seq 300); do
    grep -q "NATS link up" "$log" && break
    sleep 0.1
  done
done
run pubsub --url "$C_WS" --sub-url "$C_WS" --sub-url "$D_TCP" --pairs 10 --messages 100 \
  --publish-after-ms 500 --broker-pid "$C_PID" --cpu-pid "node-d=$D_PID" --cpu-pid "nats=$NATS_PID"
expect "subscriber connections round-robin over: $C_WS, $D_TCP"
expect "messages/s: .* over all pairs"
expect "^nats CPU: "
echo "load-smoke: all scenarios passed"
