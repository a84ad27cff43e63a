#!/usr/bin/env bash
# Runs the STOMP conformance suite against fresh Heralds on loopback, over WebSocket and TCP:
# once on a tuned configuration, once on Herald's defaults, and its cluster.* cases once more
# against a two-node cluster.
#
#   scripts/conformance.sh [extra herald-conformance flags, e.g. --only heartbeat]
#   CONFORMANCE_CONFIGS="defaults" scripts/conformance.sh   # some of the runs only
#
# Builds herald and herald-conformance. The "tuned" run starts herald on free ports with a small
# configuration (small frame limit, 1-second heart-beats, short CONNECT timeout, few
# subscriptions and connections per address, so the limit and timeout cases run fast and reach
# their limits). The "defaults" run starts herald with no configuration file: only the ports
# (free loopback ports) and the two users differ from the embedded defaults, so what a fresh
# install does is checked too (a 1 MiB message on the default outbox bound, 10-second server
# heart-beats, the 10-second CONNECT timeout). Both runs give herald and the suite two users
# (alice:secret, bob:secret; --user) for the auth and user-destination cases and run the suite
# with --profile herald. The "cluster" run starts nats-server (NATS_SERVER_BIN, else the one on
# PATH or /usr/sbin; scripts/test.sh installs it) on a free loopback port and two heralds joined
# through it ([cluster] servers, node ids "nodea" and "nodeb", otherwise the defaults), and runs
# only the cluster.* cases with --url on node A and --peer-url on node B. The exit status is
# non-zero when any run failed; a failed run's broker logs are printed. Brokers and nats-server
# are stopped on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
source scripts/lib/herald.sh

cargo build -p herald -p herald-conformance --locked
make_work_dir
nats_pid=""
# make_work_dir's EXIT trap, with nats-server stopped first.
trap 'stop_nats; stop_heralds; rm -rf "$work"' EXIT

# The suite is told these values below; everything else stays at Herald's defaults.
max_frame_bytes=131072
max_subscriptions=64
max_connections_per_address=40
connect_timeout_ms=2000
cat >"$work/herald.toml" <<TOML
[stomp]
heartbeat_send_ms = 1000
heartbeat_receive_ms = 1000
heartbeat_floor_ms = 500
connect_timeout_ms = $connect_timeout_ms

[limits]
max_frame_bytes = $max_frame_bytes
max_subscriptions_per_session = $max_subscriptions
max_connections_per_address = $max_connections_per_address

[log]
level = "info"
format = "text"
TOML

# Users for the identity and user-destination cases, given to herald and to the suite.
users=(alice:secret bob:secret)
user_flags=()
for user in "${users[@]}"; do
  user_flags+=(--user "$user")
done

# Runs the suite against a herald started with the given flags; $1 names the run, the suite's
# own limit flags follow `--`.
run_suite() {
  local name=$1
  shift
  local herald_flags=() suite_flags=()
  while [[ $# -gt 0 && $1 != -- ]]; do
    herald_flags+=("$1")
    shift
  done
  [[ $# -gt 0 ]] && shift
  suite_flags=("$@")
  local log="$work/herald-$name.log"
  start_herald HERALD "$log" "${herald_flags[@]}" "${user_flags[@]}"
  echo "conformance ($name): herald listening on $HERALD_WS and $HERALD_TCP"
  local status=0
  "$CARGO_TARGET_DIR/debug/herald-conformance" \
    --profile herald \
    --url "$HERALD_WS" \
    --url "$HERALD_TCP" \
    "${user_flags[@]}" \
    "${suite_flags[@]}" \
    "${extra_flags[@]}" || status=$?
  stop_heralds
  if [[ $status -ne 0 ]]; then
    echo "conformance ($name): the suite failed (exit $status); herald's log:" >&2
    cat "$log" >&2
  fi
  return "$status"
}

stop_nats() {
  if [[ -n $nats_pid ]]; then
    kill "$nats_pid" 2>/dev/null || true
    wait "$nats_pid" 2>/dev/null || true
    nats_pid=""
  fi
}

# Starts nats-server on a free loopback port (it picks one: -p -1) and sets NATS_URL.
start_nats() {
  local bin=${NATS_SERVER_BIN:-$(command -v nats-server || echo /usr/sbin/nats-server)}
  local log="$work/nats.log" line="" deadline=$((SECONDS + 30))
  local pattern='Listening for client connections on ([0-9.]+:[0-9]+)'
  : >"$log"
  "$bin" -a 127.0.0.1 -p -1 >"$log" 2>&1 </dev/null &
  nats_pid=$!
  while ! grep -q 'Server is ready' "$log"; do
    if ! kill -0 "$nats_pid" 2>/dev/null || ((SECONDS >= deadline)); then
      echo "conformance (cluster): nats-server did not start; its log:" >&2
      cat "$log" >&2
      return 1
    fi
    sleep 0.1
  done
  line=$(grep -E "$pattern" "$log") && [[ $line =~ $pattern ]] || return 1
  NATS_URL="nats://${BASH_REMATCH[1]}"
}

# The cluster.* cases against two heralds joined through one nats-server. Called after `||`,
# where errexit does not apply, so each step's failure returns explicitly.
run_cluster() {
  start_nats || return 1
  local node
  for node in a b; do
    cat >"$work/cluster-$node.toml" <<TOML
[cluster]
servers = ["$NATS_URL"]
node_id = "node$node"

[log]
level = "info"
format = "text"
TOML
  done
  start_herald NODE_A "$work/herald-cluster-a.log" --config "$work/cluster-a.toml" \
    "${user_flags[@]}" || return 1
  start_herald NODE_B "$work/herald-cluster-b.log" --config "$work/cluster-b.toml" \
    "${user_flags[@]}" || return 1
  echo "conformance (cluster): node A on $NODE_A_WS and $NODE_A_TCP," \
    "node B on $NODE_B_WS and $NODE_B_TCP, NATS on $NATS_URL"
  local status=0
  "$CARGO_TARGET_DIR/debug/herald-conformance" \
    --profile herald \
    --url "$NODE_A_WS" \
    --url "$NODE_A_TCP" \
    --peer-url "$NODE_B_WS" \
    --peer-url "$NODE_B_TCP" \
    --only cluster \
    "${user_flags[@]}" \
    "${extra_flags[@]}" || status=$?
  stop_heralds
  stop_nats
  if [[ $status -ne 0 ]]; then
    echo "conformance (cluster): the suite failed (exit $status); the logs:" >&2
    local log
    for log in "$work/herald-cluster-a.log" "$work/herald-cluster-b.log" "$work/nats.log"; do
      echo "--- $log" >&2
      cat "$log" >&2
    done
  fi
  return "$status"
}

extra_flags=("$@")
failed=()
for config in ${CONFORMANCE_CONFIGS:-tuned defaults cluster}; do
  case "$config" in
    tuned)
      run_suite tuned --config "$work/herald.toml" -- \
        --max-frame-bytes "$max_frame_bytes" \
        --max-subscriptions "$max_subscriptions" \
        --max-connections-per-address "$max_connections_per_address" \
        --connect-timeout-ms "$connect_timeout_ms" || failed+=(tuned)
      ;;
    defaults)
      # No --config: the suite's own defaults for every limit are Herald's.
      run_suite defaults -- || failed+=(defaults)
      ;;
    cluster)
      run_cluster || failed+=(cluster)
      ;;
    *)
      echo "conformance: unknown configuration $config (tuned, defaults, cluster)" >&2
      exit 2
      ;;
  esac
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "conformance: failed on: ${failed[*]}" >&2
  exit 1
fi
