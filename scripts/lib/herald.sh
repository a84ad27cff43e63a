# Starting a herald on free loopback ports, for scripts that test against a real broker.
# Source it, then:
#   start_herald NAME LOG [herald flags...]
# starts "$HERALD_BIN" (default: the debug build) with --ws-bind/--tcp-bind 127.0.0.1:0 and the
# flags, waits (up to 30 s) for its two `listening` log lines, and sets NAME_PID, NAME_WS
# (ws://127.0.0.1:PORT/ws) and NAME_TCP (tcp://127.0.0.1:PORT). `stop_heralds` stops every
# broker started so (call it from an EXIT trap). Sourcing it also sets CARGO_TARGET_DIR and
# CARGO_TERM_COLOR to the scripts' defaults where unset. `make_work_dir` makes a scratch
# directory, $work, and on exit stops every broker and removes it.

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/herald-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
HERALD_BIN="${HERALD_BIN:-$CARGO_TARGET_DIR/debug/herald}"
HERALD_PIDS=()

# The address from `listening transport="$2" addr=HOST:PORT` in log $1. `read` yields complete
# lines only, so a line still being written is not taken with half a port number.
herald_listen_addr() {
  local line pattern="listening transport=\"$2\" addr=([^ ]+)"
  while IFS= read -r line; do
    if [[ $line =~ $pattern ]]; then
      printf '%s\n' "${BASH_REMATCH[1]}"
      return 0
    fi
  done <"$1"
}

start_herald() {
  local name=$1 log=$2
  shift 2
  : >"$log"
  # RUST_LOG would override --log-level and could hide the `listening` lines.
  env -u RUST_LOG NO_COLOR=1 "$HERALD_BIN" --ws-bind 127.0.0.1:0 --tcp-bind 127.0.0.1:0 \
    --log-level info "$@" >"$log" 2>&1 </dev/null &
  local pid=$!
  HERALD_PIDS+=("$pid")
  local ws="" tcp="" deadline=$((SECONDS + 30))
  while :; do
    ws=$(herald_listen_addr "$log" websocket)
    tcp=$(herald_listen_addr "$log" tcp)
    [[ -n "$ws" && -n "$tcp" ]] && break
    if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
      echo "herald ($name) did not report both listeners; its log:" >&2
      cat "$log" >&2
      return 1
    fi
    sleep 0.1
  done
  printf -v "${name}_PID" '%s' "$pid"
  printf -v "${name}_WS" 'ws://127.0.0.1:%s/ws' "${ws##*:}"
  printf -v "${name}_TCP" 'tcp://127.0.0.1:%s' "${tcp##*:}"
}

stop_heralds() {
  local pid
  for pid in "${HERALD_PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  HERALD_PIDS=()
}

make_work_dir() {
  work="$(mktemp -d)"
  trap 'stop_heralds; rm -rf "$work"' EXIT
}
