#!/usr/bin/env bash
# Runs the STOMP conformance suite against fresh Heralds on loopback, over WebSocket and TCP,
# twice: once on a tuned configuration and once on Herald's defaults.
#
#   scripts/conformance.sh [extra herald-conformance flags, e.g. --only heartbeat]
#   CONFORMANCE_CONFIGS="defaults" scripts/conformance.sh   # one of the two runs only
#
# Builds herald and herald-conformance. The "tuned" run starts herald on free ports with a small
# configuration (small frame limit, 1-second heart-beats, short CONNECT timeout, few
# subscriptions and connections per address, so the limit and timeout cases run fast and reach
# their limits). The "defaults" run starts herald with no configuration file: only the ports
# (free loopback ports) and the two users differ from the embedded defaults, so what a fresh
# install does is checked too (a 1 MiB message on the default outbox bound, 10-second server
# heart-beats, the 10-second CONNECT timeout). Both runs give herald and the suite two users
# (alice:secret, bob:secret; --user) for the auth and user-destination cases and run the suite
# with --profile herald. The exit status is non-zero when either run failed; a failed run's
# broker log is printed. Brokers are stopped on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
source scripts/lib/herald.sh

cargo build -p herald -p herald-conformance --locked
make_work_dir

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

extra_flags=("$@")
failed=()
for config in ${CONFORMANCE_CONFIGS:-tuned defaults}; do
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
    *)
      echo "conformance: unknown configuration $config (tuned, defaults)" >&2
      exit 2
      ;;
  esac
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "conformance: failed on: ${failed[*]}" >&2
  exit 1
fi
