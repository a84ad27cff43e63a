#!/usr/bin/env bash
# Real-client conformance: builds herald, starts two on free loopback ports (one plain, one
# with TLS on both listeners and the test certificate of broker/tests/fixtures/tls), then runs
#   - conformance/clients/js      @stomp/stompjs over WebSocket and wss:// (node --test), once
#                                 plain and once through the client-js package's connection
#   - conformance/clients/python  stomp.py over TCP and TLS (pytest)
# against them, and stops them with SIGTERM (which must end each cleanly).
#
# Needs: cargo, Node 20+ with npm, Python 3 (3.11 tested). Installs its packages locally only:
# node_modules via `npm ci`, a virtualenv in $HERALD_VENV (default ~/.cache/herald-venv).
# On Debian, whose python3 lacks venv support until `python3-venv` is installed, that one
# package is installed with apt-get when running as root.
#
# Exits non-zero if the build, the broker start, any suite or the clean stop fails; the broker
# log is printed on failure, then the failed tests of each failed suite again (a CI log's tail).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/herald-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
VENV="${HERALD_VENV:-$HOME/.cache/herald-venv}"
PYTHON="${PYTHON:-python3}"
# herald's default drain is 10 s; allow a little more before calling the stop unclean.
STOP_TIMEOUT_S="${HERALD_STOP_TIMEOUT_S:-15}"

step() { printf '\n== %s ==\n' "$*"; }
die() {
  printf 'client-tests: %s\n' "$*" >&2
  exit 1
}

for tool in cargo node npm "$PYTHON"; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found on PATH"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/herald-client-tests.XXXXXX")
LOG="$WORK/herald.log"
HERALD_PID=""
STATUS=0

print_log() {
  local log
  for log in "$LOG" "$WORK/herald-tls.log"; do
    if [[ -s "$log" ]]; then
      printf '\n== herald log (%s) ==\n' "$log" >&2
      cat "$log" >&2
    fi
  done
}

# The failed tests of every suite that failed, printed after the broker logs so that they
# are the last thing a CI log shows: TAP `not ok` blocks (node --test), pytest's summary.
FAILED_SUITES=()
print_failures() {
  local suite out
  for suite in "${FAILED_SUITES[@]}"; do
    out="$WORK/$suite.out"
    printf '\n== failed: %s ==\n' "$suite" >&2
    if grep -q 'not ok' "$out" 2>/dev/null; then
      # Each `not ok` line with the diagnostics block under it (which ends with `...`).
      awk '/not ok/ { on = 1 } on { print } on && /^ *\.\.\.$/ { on = 0 }' "$out" >&2
    else
      tail -n 60 "$out" >&2
    fi
  done
}

# Runs suite $1 (a name for the logs) as function $2 in a subshell, its output shown and kept
# in $WORK/$1.out; a failure is recorded for print_failures.
run_suite() {
  local suite=$1 body=$2
  # `set -e` does not apply inside an `if` condition: the bodies chain their steps with &&.
  if ("$body") 2>&1 | tee "$WORK/$suite.out"; then
    echo "$suite: ok"
  else
    echo "$suite: FAILED" >&2
    FAILED_SUITES+=("$suite")
    STATUS=1
  fi
}

cleanup() {
  local rc=$?
  if [[ -n "$HERALD_PID" ]] && kill -0 "$HERALD_PID" 2>/dev/null; then
    kill -TERM "$HERALD_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$HERALD_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$HERALD_PID" 2>/dev/null || true
    wait "$HERALD_PID" 2>/dev/null || true
  fi
  # The TLS broker, if the tests did not stop it (stop_heralds comes from scripts/lib/herald.sh).
  if declare -F stop_heralds >/dev/null; then
    stop_heralds
  fi
  if [[ $rc -ne 0 ]]; then
    print_log
    print_failures
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "cargo build -p herald"
cargo build -p herald --locked
HERALD_BIN="$CARGO_TARGET_DIR/debug/herald"
[[ -x "$HERALD_BIN" ]] || die "no binary at $HERALD_BIN after the build"

step "start herald"
# Tokens signed with this secret authenticate (the stompjs JWT test makes its own).
export HERALD_JWT_SECRET="client-tests-secret-$RANDOM$RANDOM"
cat >"$WORK/herald.toml" <<TOML
[jwt]
enabled = true
algorithm = "HS256"
secret = "$HERALD_JWT_SECRET"
audience = "herald-client-tests"
TOML
# start_herald sets HERALD_PID, HERALD_WS and HERALD_TCP once both listeners are up.
source "$ROOT/scripts/lib/herald.sh"
start_herald HERALD "$LOG" --config "$WORK/herald.toml" || die "herald did not start"

export HERALD_WS_URL="$HERALD_WS"
export HERALD_TCP_HOST=127.0.0.1
export HERALD_TCP_PORT="${HERALD_TCP##*:}"
echo "herald pid $HERALD_PID: HERALD_WS_URL=$HERALD_WS_URL HERALD_TCP_HOST=$HERALD_TCP_HOST HERALD_TCP_PORT=$HERALD_TCP_PORT"

step "start herald with TLS"
FIXTURES="$ROOT/broker/tests/fixtures/tls"
cat >"$WORK/herald-tls.toml" <<TOML
[websocket.tls]
enabled = true
cert_file = "$FIXTURES/server.pem"
key_file = "$FIXTURES/server-key.pem"

[tcp.tls]
enabled = true
cert_file = "$FIXTURES/server.pem"
key_file = "$FIXTURES/server-key.pem"
TOML
TLS_LOG="$WORK/herald-tls.log"
start_herald TLS "$TLS_LOG" --config "$WORK/herald-tls.toml" || die "herald with TLS did not start"
# The test certificate names localhost and 127.0.0.1.
export HERALD_WSS_URL="wss://${TLS_WS#ws://}"
export HERALD_TLS_HOST=127.0.0.1
export HERALD_TLS_PORT="${TLS_TCP##*:}"
export HERALD_TLS_CA="$FIXTURES/ca.pem"
echo "herald pid $TLS_PID: HERALD_WSS_URL=$HERALD_WSS_URL HERALD_TLS_HOST=$HERALD_TLS_HOST HERALD_TLS_PORT=$HERALD_TLS_PORT"

step "@stomp/stompjs (conformance/clients/js)"
js_suite() {
  cd "$ROOT/conformance/clients/js" &&
    npm ci --no-audit --no-fund &&
    npm test
}
run_suite "js suite" js_suite

step "@stomp/stompjs through the client-js package (conformance/clients/js)"
js_package_suite() {
  cd "$ROOT/client-js" &&
    npm ci --no-audit --no-fund &&
    npm run build &&
    cd "$ROOT/conformance/clients/js" &&
    HERALD_CLIENT_PACKAGE="$ROOT/client-js/dist/esm/index.js" npm test
}
run_suite "js suite through client-js" js_package_suite

step "stomp.py (conformance/clients/python)"
venv_ok() { [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; }

ensure_venv() {
  venv_ok && return 0
  rm -rf "$VENV" && mkdir -p "$(dirname "$VENV")" || return 1
  if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    # Debian ships venv/ensurepip separately (python3-venv).
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
      echo "python venv support missing; installing python3-venv with apt-get"
      apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null ||
        return 1
    else
      echo "python venv support missing: install python3-venv (Debian/Ubuntu)" >&2
      return 1
    fi
  fi
  "$PYTHON" -m venv "$VENV" || { rm -rf "$VENV"; return 1; }
}

python_suite() {
  # Keep the work tree clean: no .pytest_cache, no __pycache__.
  cd "$ROOT/conformance/clients/python" &&
    ensure_venv &&
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt &&
    PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider
}
run_suite "python suite" python_suite

# Stops broker $2 (pid $1) with SIGTERM; it must exit 0 within STOP_TIMEOUT_S.
stop_cleanly() {
  local pid=$1 name=$2
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "$name is no longer running (it died during the tests)" >&2
    return 1
  fi
  kill -TERM "$pid"
  local deadline=$((SECONDS + STOP_TIMEOUT_S))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "$name did not stop within ${STOP_TIMEOUT_S} s of SIGTERM" >&2
    return 1
  fi
  local rc=0
  wait "$pid" || rc=$?
  if [[ $rc -ne 0 ]]; then
    echo "$name exited with status $rc after SIGTERM" >&2
    return 1
  fi
  echo "$name stopped cleanly"
}

step "stop herald and herald with TLS (SIGTERM)"
stop_cleanly "$HERALD_PID" herald || STATUS=1
HERALD_PID=""
stop_cleanly "$TLS_PID" "herald with TLS" || STATUS=1

if [[ $STATUS -ne 0 ]]; then
  echo "client tests: FAILED" >&2
  exit 1
fi
echo "client tests: all suites passed"
