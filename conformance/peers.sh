#!/usr/bin/env bash
# Runs the conformance suite against RabbitMQ (STOMP and Web-STOMP plugins) and records the
# result in conformance/expected/rabbitmq.txt. docs/compatibility.md explains every failure.
#
#   sudo conformance/peers.sh            (needs root: installs Debian's rabbitmq-server)
#
# RabbitMQ listens on loopback only: AMQP 5672, STOMP 61613, Web-STOMP 15674 (path /ws).
# A broker this script started is stopped when it ends; one already running is left alone.
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/herald-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if [[ $(id -u) -ne 0 ]]; then
  echo "peers.sh: run as root (it installs and starts rabbitmq-server)" >&2
  exit 2
fi

cargo build -p herald-conformance --locked

# Installing, configuring and starting RabbitMQ is bench/peers.sh's job; it stops only a
# broker it started itself.
trap 'bench/peers.sh stop >/dev/null' EXIT
bench/peers.sh
version="$(rabbitmqctl version 2>/dev/null || echo unknown)"

mkdir -p conformance/expected
out=conformance/expected/rabbitmq.txt
{
  echo "# herald-conformance --profile generic against RabbitMQ $version (Debian rabbitmq-server,"
  echo "# plugins rabbitmq_stomp and rabbitmq_web_stomp, default settings). Written by"
  echo "# conformance/peers.sh; docs/compatibility.md explains every FAIL."
} >"$out.tmp"
set +e
"$CARGO_TARGET_DIR/debug/herald-conformance" \
  --profile generic \
  --login guest --passcode guest \
  --url ws://127.0.0.1:15674/ws \
  --url tcp://127.0.0.1:61613 \
  "$@" | tee -a "$out.tmp"
status=${PIPESTATUS[0]}
set -e
mv "$out.tmp" "$out"
echo "peers.sh: wrote $out (suite exit status $status: 1 means some cases failed, as expected)"
# Failing cases are the point of the record; only a suite that could not run is an error.
[[ $status -le 1 ]]
