#!/usr/bin/env bash
# Measures a three-node Herald cluster on this machine with herald-load: one nats-server and
# three release-built herald nodes (a, b, c) on free loopback ports, plus a herald without
# [cluster] for reference. Publishers always connect to node a; subscribers either to node a too
# ("1 node") or round-robin over the nodes with --sub-url ("3 nodes": fan-out over a, b, c;
# pairs over b and c, so every message crosses NATS). Each scenario runs RUNS times, the
# layouts alternating run by run (the machine's speed drifts), each after waiting for the
# machine to be quiet (see wait_quiet). The table gives medians, with the publishers' node's,
# the other nodes' and NATS's CPU (as a share of one core) over each run's delivery window.
#
#   scripts/cluster-bench.sh                 # all scenarios, 3 runs each
#   RUNS=5 ONLY=pairs scripts/cluster-bench.sh
#   KEEP=/tmp/cb scripts/cluster-bench.sh    # keep every run's output and JSON there
#   SKIP_BUILD=1 ...                         # use the release binaries already built
#   HERALD_BIN=... LOAD_BIN=...              # other binaries (copies, while others build)
#   NODE_THREADS=1 ...                       # one runtime thread per node, GOMAXPROCS=1 for NATS
#
# ONLY: a space-separated subset of: fanout pairs hop pairs20k (the default), fanout500.
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/herald-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
HERALD_BIN="${HERALD_BIN:-$CARGO_TARGET_DIR/release/herald}"
source scripts/lib/herald.sh
source scripts/lib/bench.sh

RUNS="${RUNS:-3}"
ONLY="${ONLY:-fanout pairs hop pairs20k}"
NATS_SERVER="${NATS_SERVER_BIN:-$(command -v nats-server || echo /usr/bin/nats-server)}"

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  cargo build --release -p herald -p herald-load --locked
fi
LOAD="${LOAD_BIN:-$CARGO_TARGET_DIR/release/herald-load}"

work="${KEEP:-$(mktemp -d)}"
mkdir -p "$work"
NATS_PID=""
cleanup() {
  stop_heralds
  if [[ -n "$NATS_PID" ]] && kill -0 "$NATS_PID" 2>/dev/null; then
    kill "$NATS_PID"
    wait "$NATS_PID" 2>/dev/null || true
  fi
  [[ -n "${KEEP:-}" ]] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# NATS on a port of its own choosing (-p -1), read back from its log.
: >"$work/nats.log"
# NODE_THREADS=N: every node's runtime gets N worker threads (TOKIO_WORKER_THREADS) and NATS N
# Go processors (GOMAXPROCS), to see what five multi-threaded servers on two cores cost. Only
# the servers: both are unset again before herald-load runs.
if [[ -n "${NODE_THREADS:-}" ]]; then
  export TOKIO_WORKER_THREADS="$NODE_THREADS" GOMAXPROCS="$NODE_THREADS"
fi
"$NATS_SERVER" -a 127.0.0.1 -p -1 >"$work/nats.log" 2>&1 </dev/null &
NATS_PID=$!
nats_line=$(wait_for_line "$work/nats.log" "Listening for client connections on")
NATS_URL="nats://${nats_line##* }"

for node in a b c; do
  cat >"$work/$node.toml" <<EOF
[cluster]
servers = ["$NATS_URL"]
node_id = "$node"
EOF
  name=$(tr a-z A-Z <<<"$node")
  start_herald "$name" "$work/$node.log" --config "$work/$node.toml"
  wait_for_line "$work/$node.log" "NATS link up" >/dev/null
done
start_herald S "$work/solo.log"
unset TOKIO_WORKER_THREADS GOMAXPROCS
echo "cluster-bench: NATS $NATS_URL (pid $NATS_PID); nodes a $A_WS (pid $A_PID), b $B_WS (pid $B_PID), c $C_WS (pid $C_PID); no cluster $S_WS (pid $S_PID)"
echo "cluster-bench: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $RUNS run(s) per figure${NODE_THREADS:+, $NODE_THREADS thread(s) per server}"

# The subscriber placement of each layout (publishers are always on node a, or on the node
# without a cluster).
layout_args() {
  case $1 in
    solo) echo "--url $S_WS --broker-pid $S_PID" ;;
    one) echo "--url $A_WS --broker-pid $A_PID" ;;
    three) echo "--url $A_WS --sub-url $A_WS --sub-url $B_WS --sub-url $C_WS --broker-pid $A_PID" ;;
    cross) echo "--url $A_WS --sub-url $B_WS --sub-url $C_WS --broker-pid $A_PID" ;;
  esac
}

# The scenarios: NAME, the layouts it compares, and herald-load's arguments. Subscribers live
# in 2 worker processes; 100-byte bodies; WebSocket, as in docs/performance.md's other figures.
declare -A LAYOUTS ARGS
LAYOUTS[fanout]="one three solo"
ARGS[fanout]="fanout --subscribers 1000 --messages 3000 --rate 0"
LAYOUTS[fanout500]="one three"
ARGS[fanout500]="fanout --subscribers 1000 --messages 4000 --rate 500"
LAYOUTS[pairs]="one cross solo"
ARGS[pairs]="pubsub --pairs 100 --messages 2000 --rate 0"
LAYOUTS[hop]="one cross solo"
ARGS[hop]="pubsub --pairs 100 --messages 200 --rate 2000"
LAYOUTS[pairs20k]="one cross solo"
ARGS[pairs20k]="pubsub --pairs 100 --messages 1000 --rate 20000"
COMMON_ARGS=(--workers 2 --concurrency 50 --drain 30 --duration 120 --publish-after-ms 200
  --cpu-pid "node-b=$B_PID" --cpu-pid "node-c=$C_PID"
  --cpu-pid "nats=$NATS_PID")

for run in $(seq 1 "$RUNS"); do
  for scenario in $ONLY; do
    [[ -n "${ARGS[$scenario]:-}" ]] || {
      echo "cluster-bench: unknown scenario $scenario" >&2
      exit 2
    }
    for layout in ${LAYOUTS[$scenario]}; do
      tag="$scenario-$layout-$run"
      busy_before=$(wait_quiet)
      echo "$busy_before" >"$work/$tag.busy"
      # shellcheck disable=SC2046 # the argument lists are split on purpose
      if "$LOAD" ${ARGS[$scenario]} $(layout_args "$layout") "${COMMON_ARGS[@]}" \
        --destination "/topic/$scenario-$run$([[ $scenario == fanout* ]] || echo '-{i}')" \
        --json "$work/$tag.json" >"$work/$tag.out" 2>&1; then
        status=clean
      else
        status="NOT clean (exit $?)"
      fi
      echo "cluster-bench: $tag ($busy_before % busy before): $status: $(grep -E '^(deliveries/s|messages/s|latency):' "$work/$tag.out" | tr '\n' ' ')"
    done
  done
done

python3 - "$work" <<'EOF'
import json, pathlib, statistics, sys

work = pathlib.Path(sys.argv[1])
runs = {}
for path in sorted(work.glob("*.json")):
    scenario, layout, _ = path.stem.rsplit("-", 2)
    figures = json.loads(path.read_text())
    busy = path.with_suffix(".busy")
    figures["busy_before"] = int(busy.read_text()) if busy.exists() else float("nan")
    runs.setdefault((scenario, layout), []).append(figures)

def med(rows, key):
    values = [r[key] for r in rows if key in r]
    return statistics.median(values) if values else float("nan")

def cpu(rows, label):
    # CPU seconds over the delivery window, as a share of one core.
    shares = [r["cpu_seconds"][label] / r["delivery_window_s"] for r in rows
              if label in r.get("cpu_seconds", {}) and r.get("delivery_window_s")]
    return f"{100 * statistics.median(shares):.0f} %" if shares else "-"

names = {"solo": "no cluster", "one": "1 node", "three": "3 nodes", "cross": "cross-node"}
print()
print("| scenario | layout | runs | rate (median) | p50 ms | p99 ms | lost (sum) | publishers' node CPU | node b | node c | NATS | machine busy | busy before |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
figures = {}
for (scenario, layout), rows in sorted(runs.items()):
    key = "deliveries_per_s" if scenario.startswith("fanout") else "messages_per_s"
    rate, p50, p99 = med(rows, key), med(rows, "latency_p50_ms"), med(rows, "latency_p99_ms")
    figures[(scenario, layout)] = (rate, p50, p99)
    # The publishers' node: a, or the node without a cluster.
    node_a = f"{100 * statistics.median(r['broker_cpu_seconds'] / r['delivery_window_s'] for r in rows):.0f} %"
    print(f"| {scenario} | {names[layout]} | {len(rows)} | {rate:,.0f} | {p50:.2f} | {p99:.2f} | "
          f"{sum(r.get('lost', 0) for r in rows)} | {node_a} | {cpu(rows, 'node-b')} | "
          f"{cpu(rows, 'node-c')} | {cpu(rows, 'nats')} | {100 * med(rows, 'machine_cpu_busy_share'):.0f} % | "
          f"{'/'.join(str(r['busy_before']) for r in rows)} % |")
print()

def verdict(ok):
    return "met" if ok else "NOT met"

if ("fanout", "one") in figures and ("fanout", "three") in figures:
    share = figures[("fanout", "three")][0] / figures[("fanout", "one")][0]
    print(f"fan-out over 3 nodes / 1 node: {100 * share:.0f} % of single-node deliveries/s "
          f"(target >= 50 %: {verdict(share >= 0.5)})")
if ("hop", "one") in figures and ("hop", "cross") in figures:
    one, cross = figures[("hop", "one")], figures[("hop", "cross")]
    print(f"one cross-node hop at 2,000 msgs/s adds p50 {cross[1] - one[1]:+.2f} ms, "
          f"p99 {cross[2] - one[2]:+.2f} ms (cross-node minus 1 node)")
if ("pairs20k", "cross") in figures:
    p99 = figures[("pairs20k", "cross")][2]
    print(f"cross-node pairs at 20,000 msgs/s: p99 {p99:.2f} ms (target <= 5 ms: {verdict(p99 <= 5)})")
EOF
