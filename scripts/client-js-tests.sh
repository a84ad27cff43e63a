#!/usr/bin/env bash
# The JavaScript client package, client-js/: `npm ci && npm test` there, which builds it and
# runs its node:test suites: unit tests (backoff, offline queue, bodies), integration tests
# against real heralds the tests start (receipts, ERROR, user destinations, request/reply,
# kill and restart, a two-node cluster over nats-server, 1,000 clients reconnecting), headless
# Chromium end to end on the chat demo (screenshots in client-js/test-artifacts/) and an
# `npm pack` install into a fresh project. (The stompjs conformance cases through the package
# run in scripts/client-tests.sh, which starts the brokers they need.)
#
# Installs what a fresh Debian machine lacks: chromium and nats-server (apt-get, as root or
# with sudo). Builds herald's debug binary, which the tests start.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/herald-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n== %s ==\n' "$*"; }

apt_install() {
  local sudo_if_needed=()
  [[ $(id -u) -eq 0 ]] || sudo_if_needed=(sudo)
  "${sudo_if_needed[@]}" apt-get update -qq
  "${sudo_if_needed[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

step "system packages: chromium, nats-server"
export CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
export NATS_SERVER_BIN="${NATS_SERVER_BIN:-$(command -v nats-server || echo /usr/sbin/nats-server)}"
missing=()
[[ -x $CHROMIUM_BIN ]] || missing+=(chromium)
[[ -x $NATS_SERVER_BIN ]] || missing+=(nats-server)
if ((${#missing[@]} > 0)); then
  echo "installing ${missing[*]}"
  apt_install "${missing[@]}"
fi

step "cargo build -p herald"
cargo build -p herald --locked
export HERALD_BIN="$CARGO_TARGET_DIR/debug/herald"

step "client-js: npm ci && npm test"
cd "$ROOT/client-js"
npm ci --no-audit --no-fund
npm test
echo "client-js: all suites passed; screenshots in $ROOT/client-js/test-artifacts/"
