#!/usr/bin/env bash
# Runs the STOMP conformance suite against a fresh Herald on loopback, over WebSocket and TCP.
#
#   scripts/conformance.sh [extra herald-conformance flags, e.g. --only heartbeat]
#
# Builds herald and herald-conformance, starts herald on free ports with a small configuration
# (small frame limit, 1-second heart-beats, short CONNECT timeout, so the limit and timeout
# cases run fast) and two users (alice:secret, bob:secret, given to herald and to the suite
# with --user for the auth and user-destination cases), runs the suite with --profile herald
# and exits with its status. The broker
# is stopped on exit; its log is printed when the suite fails.
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/herald-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

cargo build -p herald -p herald-conformance --locked

source scripts/lib/herald.sh

work="$(mktemp -d)"
cleanup() {
  stop_heralds
  rm -rf "$work"
}
trap cleanup EXIT

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

log="$work/herald.log"
start_herald HERALD "$log" --config "$work/herald.toml" "${user_flags[@]}"
echo "conformance: herald listening on $HERALD_WS and $HERALD_TCP"

status=0
"$CARGO_TARGET_DIR/debug/herald-conformance" \
  --profile herald \
  --url "$HERALD_WS" \
  --url "$HERALD_TCP" \
  --max-frame-bytes "$max_frame_bytes" \
  --max-subscriptions "$max_subscriptions" \
  --max-connections-per-address "$max_connections_per_address" \
  --connect-timeout-ms "$connect_timeout_ms" \
  "${user_flags[@]}" \
  "$@" || status=$?

if [[ $status -ne 0 ]]; then
  echo "conformance: the suite failed (exit $status); herald's log:" >&2
  cat "$log" >&2
fi
exit "$status"
