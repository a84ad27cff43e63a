#!/usr/bin/env bash
# Runs every check and test Herald has, on a fresh machine or a used one.
# Installs what it needs first, then: formatting, clippy with -D warnings, all tests.
set -euo pipefail

cd "$(dirname "$0")/.."
# Builds are reused between runs when the target dir lives outside the clone.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/herald-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

started=$SECONDS
current="start"
step() {
  current="$*"
  printf '\n== %s ==\n' "$*"
}
# One line at the end says how the whole run went, whatever stopped it.
verdict() {
  local status=$?
  if [[ $status -eq 0 ]]; then
    printf '\n== verdict: PASS, every step passed (%d s) ==\n' $((SECONDS - started))
  else
    printf '\n== verdict: FAIL in step "%s" (exit %d, after %d s) ==\n' \
      "$current" "$status" $((SECONDS - started))
  fi
}
trap verdict EXIT

step "toolchain components"
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
    rustup component add "$component"
  fi
done

step "system packages"
# The load tool's plot draws text with DejaVu Sans (its tests render a PNG).
if [[ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]]; then
  sudo_if_needed=()
  [[ $(id -u) -eq 0 ]] || sudo_if_needed=(sudo)
  "${sudo_if_needed[@]}" apt-get update
  "${sudo_if_needed[@]}" apt-get install -y fonts-dejavu-core
fi
# The cluster tests (broker/tests/cluster.rs) start real NATS servers.
if ! command -v nats-server >/dev/null && [[ ! -x /usr/sbin/nats-server ]]; then
  sudo_if_needed=()
  [[ $(id -u) -eq 0 ]] || sudo_if_needed=(sudo)
  "${sudo_if_needed[@]}" apt-get update
  "${sudo_if_needed[@]}" apt-get install -y nats-server
fi
# scripts/ops-check.sh checks the alerting rules with promtool and the unit with systemd-analyze.
if ! command -v promtool >/dev/null || ! command -v systemd-analyze >/dev/null; then
  sudo_if_needed=()
  [[ $(id -u) -eq 0 ]] || sudo_if_needed=(sudo)
  "${sudo_if_needed[@]}" apt-get update
  "${sudo_if_needed[@]}" apt-get install -y --no-install-recommends prometheus systemd
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

step "operations files: alerting rules (promtool), systemd unit (systemd-analyze)"
scripts/ops-check.sh

step "real clients: @stomp/stompjs over WebSocket, stomp.py over TCP"
scripts/client-tests.sh

step "client-js: the JavaScript client package, its demo in headless Chromium"
scripts/client-js-tests.sh

step "conformance suite against herald over WebSocket and TCP"
scripts/conformance.sh

step "session fuzz smoke against herald on its defaults, TCP and WebSocket"
scripts/fuzz-smoke.sh

step "herald-load: every scenario against real brokers"
scripts/load-smoke.sh
