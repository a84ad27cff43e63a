#!/usr/bin/env bash
# A short session-level fuzz run for CI: `herald-conformance fuzz` against a fresh Herald on its
# default configuration (only the ports differ), over TCP and WebSocket in turn.
#
#   scripts/fuzz-smoke.sh [extra fuzz flags, e.g. --conns 5]
#   FUZZ_SEED=123 FUZZ_ITERATIONS=5000 FUZZ_DURATION=10m FUZZ_OUT=/tmp/found scripts/fuzz-smoke.sh
#
# Builds herald and herald-conformance, starts herald ($HERALD_BIN, the debug build by default)
# on free loopback ports, runs 1,000 iterations (FUZZ_ITERATIONS; about 30 s, stopped at
# FUZZ_DURATION, 90 s, on a slow machine) with a fixed seed (FUZZ_SEED, so a CI failure
# reproduces) and the parser's fuzz corpus as extra mutation seeds, and exits with the
# fuzzer's status. On a failure it prints the saved reproducers (kept in FUZZ_OUT when set) and
# the broker's log. docs/testing.md describes the long run.
set -euo pipefail

cd "$(dirname "$0")/.."
source scripts/lib/herald.sh

cargo build -p herald -p herald-conformance --locked
make_work_dir

log="$work/herald.log"
start_herald HERALD "$log"
echo "fuzz-smoke: herald (pid $HERALD_PID) listening on $HERALD_TCP and $HERALD_WS"

status=0
"$CARGO_TARGET_DIR/debug/herald-conformance" fuzz \
  --url "$HERALD_TCP" \
  --url "$HERALD_WS" \
  --pid "$HERALD_PID" \
  --broker-log "$log" \
  --seed "${FUZZ_SEED:-20261203}" \
  --iterations "${FUZZ_ITERATIONS:-1000}" \
  --duration "${FUZZ_DURATION:-90s}" \
  --corpus protocol/fuzz/corpus/parse \
  --out "${FUZZ_OUT:-$work/failures}" \
  "$@" || status=$?

if [[ $status -ne 0 ]]; then
  echo "fuzz-smoke: the fuzzer failed (exit $status); saved reproducers:" >&2
  for summary in "${FUZZ_OUT:-$work/failures}"/*/failure.txt; do
    [[ -f "$summary" ]] && cat "$summary" >&2
  done
  echo "fuzz-smoke: herald's log:" >&2
  tail -n 200 "$log" >&2
fi
exit "$status"
