#!/usr/bin/env bash
# Durable queues: herald-load's `queue` scenario against three targets on this machine, each a
# fresh queue per run:
#   memory     herald, queues.store = "memory" (no [cluster])
#   jetstream  herald, queues.store = "jetstream" over [cluster] to a nats-server of its own
#              (-js, file storage in a scratch directory)
#   rabbitmq   RabbitMQ's STOMP plugin on 127.0.0.1:61613 (bench/peers.sh), durable queue
#              (what /queue/NAME declares) and `persistent:true` on every SEND
# 1 producer, 4 consumers, client-individual ACKs, prefetch 100, MESSAGES messages of 100 bytes
# at full speed. The producer asks for a RECEIPT on every SEND with at most RECEIPT_WINDOW
# outstanding (a service that must know each message is stored before forgetting it), so with
# JetStream and RabbitMQ's persistent messages it is held to the store's pace.
#
#   scripts/queue-bench.sh                     # throughput: RUNS runs per target, interleaved
#   scripts/queue-bench.sh memory              # herald's memory per waiting message, both stores
#   RUNS=5 ONLY="memory rabbitmq" scripts/queue-bench.sh
#   KEEP=/tmp/qb scripts/queue-bench.sh        # keep every run's output, JSON and logs there
#   SKIP_BUILD=1 ...                           # use the release binaries already built
#   HERALD_BIN=... LOAD_BIN=...                # other binaries
#
# throughput: the runs go target after target (memory, jetstream, rabbitmq, then again), each
#   after waiting for the machine to be quiet; the table gives medians of msgs/s, end-to-end p99,
#   send-to-RECEIPT p99 and the CPU of the broker (and of NATS) as a share of one core, and the
#   ratios jetstream/memory and jetstream/rabbitmq.
# memory: for each herald target (ONLY's herald ones), RUNS times: a fresh herald, then
#   MEMORY_MESSAGES messages of 100 bytes to a queue nobody consumes (RECEIPT on each, as
#   above); herald-load reads herald's VmRSS before (idle) and after the last RECEIPT.
#
# RabbitMQ: used if something answers on 127.0.0.1:61613; else, as root, bench/peers.sh starts
# it and it is stopped again on exit (`bench/peers.sh stop`). Its queues are deleted after each
# run when rabbitmqctl may be used (root). A herald that logs that queues.store = "jetstream"
# is not in effect yet is flagged in every line and in the table.
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/herald-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
HERALD_BIN="${HERALD_BIN:-$CARGO_TARGET_DIR/release/herald}"
source scripts/lib/herald.sh
source scripts/lib/bench.sh

MODE="${1:-throughput}"
RUNS="${RUNS:-3}"
ONLY="${ONLY:-memory jetstream rabbitmq}"
MESSAGES="${MESSAGES:-100000}"
MEMORY_MESSAGES="${MEMORY_MESSAGES:-100000}"
RECEIPT_WINDOW="${RECEIPT_WINDOW:-256}"
NATS_SERVER="${NATS_SERVER_BIN:-$(command -v nats-server || echo /usr/sbin/nats-server)}"
RABBIT_URL=tcp://127.0.0.1:61613
case $MODE in
  throughput | memory) ;;
  *)
    echo "queue-bench: unknown mode $MODE (throughput or memory)" >&2
    exit 2
    ;;
esac
for target in $ONLY; do
  case $target in
    memory | jetstream | rabbitmq) ;;
    *)
      echo "queue-bench: unknown target $target (memory, jetstream, rabbitmq)" >&2
      exit 2
      ;;
  esac
done

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  cargo build --release -p herald -p herald-load --locked
fi
LOAD="${LOAD_BIN:-$CARGO_TARGET_DIR/release/herald-load}"

work="${KEEP:-$(mktemp -d)}"
mkdir -p "$work"
NATS_PID=""
RABBIT_STARTED=""
stop_nats() {
  if [[ -n "$NATS_PID" ]] && kill -0 "$NATS_PID" 2>/dev/null; then
    kill "$NATS_PID"
    wait "$NATS_PID" 2>/dev/null || true
  fi
  NATS_PID=""
}
cleanup() {
  stop_heralds
  stop_nats
  if [[ -n "$RABBIT_STARTED" ]]; then
    bench/peers.sh stop || true
  fi
  [[ -n "${KEEP:-}" ]] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# The queue bounds of both herald targets: room for a whole run's backlog (JetStream's stream
# has no bound by default either), so neither store blocks or drops on its own limits.
QUEUE_BOUNDS="max_messages_per_queue = $((2 * (MESSAGES > MEMORY_MESSAGES ? MESSAGES : MEMORY_MESSAGES)))
max_bytes_per_queue = 268435456
max_total_bytes = 536870912"

# A nats-server with JetStream on file storage in $work/js-$1, on a port of its own choosing;
# sets NATS_PID and NATS_URL.
start_nats() {
  rm -rf "$work/js-$1"
  : >"$work/nats-$1.log"
  "$NATS_SERVER" -a 127.0.0.1 -p -1 -js -sd "$work/js-$1" >"$work/nats-$1.log" 2>&1 </dev/null &
  NATS_PID=$!
  local line
  line=$(wait_for_line "$work/nats-$1.log" "Listening for client connections on")
  NATS_URL="nats://${line##* }"
}

# Starts herald target $1 (memory or jetstream) as NAME $2 with log $3; for jetstream, NATS
# must be up. Sets NOT_IN_EFFECT when herald says the JetStream store is not in effect yet.
start_target() {
  local target=$1 name=$2 log=$3 config="$work/$1.toml"
  if [[ $target == memory ]]; then
    printf '[queues]\nstore = "memory"\n%s\n' "$QUEUE_BOUNDS" >"$config"
    start_herald "$name" "$log" --config "$config"
  else
    printf '[cluster]\nservers = ["%s"]\nnode_id = "qb"\n\n[queues]\nstore = "jetstream"\n%s\n' \
      "$NATS_URL" "$QUEUE_BOUNDS" >"$config"
    start_herald "$name" "$log" --config "$config"
    wait_for_line "$log" "NATS link up" >/dev/null
  fi
  NOT_IN_EFFECT=""
  if grep -q "is not in effect yet" "$log"; then
    NOT_IN_EFFECT=" (NOT IN EFFECT: this herald keeps queues in memory)"
    echo "queue-bench: WARNING: $target herald: $(grep -m1 -o 'queues.store = .*not in effect yet' "$log")" >&2
  fi
}

# RabbitMQ up for a rabbitmq target: one already answering, or started by bench/peers.sh.
if [[ " $ONLY " == *" rabbitmq "* && $MODE == throughput ]]; then
  if ! (exec 3<>/dev/tcp/127.0.0.1/61613) 2>/dev/null; then
    if [[ $(id -u) -ne 0 ]]; then
      echo "queue-bench: nothing answers on 127.0.0.1:61613; start RabbitMQ with 'sudo bench/peers.sh'" >&2
      exit 2
    fi
    bench/peers.sh
    RABBIT_STARTED=yes
  fi
fi
RABBITMQCTL=""
if [[ $(id -u) -eq 0 ]] && command -v rabbitmqctl >/dev/null; then
  RABBITMQCTL=rabbitmqctl
fi

COMMON_ARGS=(--producers 1 --ack client-individual --prefetch 100 --size 100
  --receipt-every 1 --receipt-window "$RECEIPT_WINDOW" --duration 300 --drain 60)
stamp=$(date +%s)
echo "queue-bench: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), mode $MODE, $RUNS run(s) per target, targets: $ONLY"

if [[ $MODE == memory ]]; then
  for run in $(seq 1 "$RUNS"); do
    for target in $ONLY; do
      [[ $target != rabbitmq ]] || continue
      tag="$target-$run"
      [[ $target != jetstream ]] || start_nats "$tag"
      start_target "$target" H "$work/$tag.log"
      busy_before=$(wait_quiet)
      if "$LOAD" queue "${COMMON_ARGS[@]}" --consumers 0 --messages "$MEMORY_MESSAGES" \
        --url "$H_TCP" --broker-pid "$H_PID" --destination "/queue/qb-wait-$stamp-$tag" \
        --label "$target" --json "$work/$tag.json" >"$work/$tag.out" 2>&1; then
        status=clean
      else
        status="NOT clean (exit $?)"
      fi
      echo "queue-bench: memory $tag$NOT_IN_EFFECT ($busy_before % busy before): $status: $(grep -E '^(broker RSS|broker memory|receipts:)' "$work/$tag.out" | tr '\n' ' ')"
      echo "$NOT_IN_EFFECT" >"$work/$tag.flag"
      stop_heralds
      stop_nats
    done
  done
  python3 - "$work" <<'EOF'
import json, pathlib, statistics, sys

work = pathlib.Path(sys.argv[1])
rows = {}
for path in sorted(work.glob("*.json"), key=lambda p: int(p.stem.rsplit("-", 1)[1])):
    target, _ = path.stem.rsplit("-", 1)
    figures = json.loads(path.read_text())
    figures["flag"] = path.with_suffix(".flag").read_text().strip()
    rows.setdefault(target, []).append(figures)
print()
print("| store | runs | waiting messages | RSS idle (MiB, median) | RSS after (MiB, median) | bytes per waiting message (runs) | median |")
print("|---|---|---|---|---|---|---|")
for target in ("memory", "jetstream"):
    if target not in rows:
        continue
    r = rows[target]
    per = [x["broker_bytes_per_waiting_message"] for x in r if "broker_bytes_per_waiting_message" in x]
    mib = lambda key: statistics.median(x[key] for x in r) / 2**20
    flag = " " + r[0]["flag"] if r[0]["flag"] else ""
    print(f"| {target}{flag} | {len(r)} | {r[0].get('sent', 0):,} | {mib('broker_rss_before_bytes'):.1f} | "
          f"{mib('broker_rss_after_bytes'):.1f} | {' / '.join(f'{p:,.0f}' for p in per)} | "
          f"{statistics.median(per):,.0f} |")
EOF
  exit 0
fi

# Throughput: one herald per herald target for all runs (one NATS for the jetstream one).
declare -A URL EXTRA FLAG
for target in $ONLY; do
  case $target in
    memory)
      start_target memory M "$work/memory.log"
      URL[memory]=$M_TCP
      EXTRA[memory]="--broker-pid $M_PID"
      FLAG[memory]=$NOT_IN_EFFECT
      ;;
    jetstream)
      start_nats jetstream
      start_target jetstream J "$work/jetstream.log"
      URL[jetstream]=$J_TCP
      EXTRA[jetstream]="--broker-pid $J_PID --cpu-pid nats=$NATS_PID"
      FLAG[jetstream]=$NOT_IN_EFFECT
      echo "queue-bench: NATS $NATS_URL (pid $NATS_PID), JetStream in $work/js-jetstream"
      ;;
    rabbitmq)
      URL[rabbitmq]=$RABBIT_URL
      EXTRA[rabbitmq]="--login guest --passcode guest --host / --header persistent:true"
      # Its Erlang VM's process, for its CPU time (rabbitmqctl needs root).
      if [[ -n "$RABBITMQCTL" ]] && rabbit_pid=$($RABBITMQCTL eval 'os:getpid().' 2>/dev/null); then
        EXTRA[rabbitmq]+=" --broker-pid ${rabbit_pid//\"/}"
      fi
      FLAG[rabbitmq]=""
      ;;
  esac
done

for run in $(seq 1 "$RUNS"); do
  for target in $ONLY; do
    tag="$target-$run"
    queue="qb-$stamp-$tag"
    busy_before=$(wait_quiet)
    echo "$busy_before" >"$work/$tag.busy"
    echo "${FLAG[$target]}" >"$work/$tag.flag"
    # shellcheck disable=SC2086 # EXTRA is split on purpose
    if "$LOAD" queue "${COMMON_ARGS[@]}" --consumers 4 --messages "$MESSAGES" \
      --url "${URL[$target]}" ${EXTRA[$target]} --destination "/queue/$queue" \
      --label "$target" --json "$work/$tag.json" >"$work/$tag.out" 2>&1; then
      status=clean
    else
      status="NOT clean (exit $?)"
    fi
    echo "queue-bench: $tag${FLAG[$target]} ($busy_before % busy before): $status: $(grep -E '^(messages/s|latency|receipts):' "$work/$tag.out" | tr '\n' ' ')"
    if [[ $target == rabbitmq && -n "$RABBITMQCTL" ]]; then
      $RABBITMQCTL delete_queue "$queue" >/dev/null 2>&1 || true
    fi
  done
done

python3 - "$work" <<'EOF'
import json, pathlib, statistics, sys

work = pathlib.Path(sys.argv[1])
runs = {}
for path in work.glob("*.json"):
    target, run = path.stem.rsplit("-", 1)
    figures = json.loads(path.read_text())
    figures["run"] = int(run)
    figures["busy_before"] = int(path.with_suffix(".busy").read_text())
    figures["flag"] = path.with_suffix(".flag").read_text().strip()
    runs.setdefault(target, []).append(figures)
for rows in runs.values():
    rows.sort(key=lambda r: r["run"])

def med(rows, key):
    values = [r[key] for r in rows if key in r]
    return statistics.median(values) if values else float("nan")

print()
def cpu(rows, figure):
    # CPU seconds from first send to done, as a share of one core.
    shares = [figure(r) / r["cpu_window_s"] for r in rows if figure(r) is not None and r.get("cpu_window_s")]
    return f"{100 * statistics.median(shares):.0f} %" if shares else "-"

print("| target | runs | msgs/s (runs) | msgs/s median | p99 ms median | RECEIPT p99 ms median | lost (sum) | broker CPU | NATS CPU | machine busy | busy before |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
medians = {}
for target in ("memory", "jetstream", "rabbitmq"):
    if target not in runs:
        continue
    rows = runs[target]
    rate, p99 = med(rows, "messages_per_s"), med(rows, "latency_p99_ms")
    medians[target] = (rate, p99)
    flag = " " + rows[0]["flag"] if rows[0]["flag"] else ""
    each = " / ".join(f"{r['messages_per_s']:,.0f}" for r in rows)
    print(f"| {target}{flag} | {len(rows)} | {each} | "
          f"{rate:,.0f} | {p99:.1f} | {med(rows, 'receipt_p99_ms'):.1f} | "
          f"{sum(r.get('lost', 0) for r in rows)} | {cpu(rows, lambda r: r.get('broker_cpu_seconds'))} | "
          f"{cpu(rows, lambda r: r.get('cpu_seconds', {}).get('nats'))} | "
          f"{100 * med(rows, 'machine_cpu_busy_share'):.0f} % | "
          f"{'/'.join(str(r['busy_before']) for r in rows)} % |")
print()
# Ratios of the medians, and of the runs made next to each other (round by round).
for other in ("memory", "rabbitmq"):
    if "jetstream" in medians and other in medians:
        (jr, jp), (orate, op) = medians["jetstream"], medians[other]
        theirs = {r["run"]: r for r in runs[other]}
        rounds = [r["messages_per_s"] / theirs[r["run"]]["messages_per_s"]
                  for r in runs["jetstream"] if r["run"] in theirs]
        print(f"jetstream/{other}: msgs/s {jr / orate:.2f}, p99 {jp / op:.2f} (ratios of the medians); "
              f"msgs/s round by round: {' / '.join(f'{x:.2f}' for x in rounds)}")
EOF
