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
export DEBIAN_FRONTEND=noninteractive

if [[ $(id -u) -ne 0 ]]; then
  echo "peers.sh: run as root (it installs and starts rabbitmq-server)" >&2
  exit 2
fi

if ! dpkg -s rabbitmq-server >/dev/null 2>&1; then
  apt-get update
  apt-get install -y rabbitmq-server
fi

# Loopback listeners; everything else stays at RabbitMQ's defaults.
conf=/etc/rabbitmq/rabbitmq.conf
if [[ ! -e $conf ]] || grep -q '^# written by herald conformance/peers.sh' "$conf"; then
  cat >"$conf" <<'CONF'
# written by herald conformance/peers.sh
listeners.tcp.default = 127.0.0.1:5672
stomp.listeners.tcp.1 = 127.0.0.1:61613
web_stomp.tcp.ip = 127.0.0.1
web_stomp.tcp.port = 15674
CONF
fi
rabbitmq-plugins --offline enable rabbitmq_stomp rabbitmq_web_stomp >/dev/null

cargo build -p herald-conformance --locked

started=""
stop_broker() {
  if [[ -n "$started" ]]; then
    rabbitmqctl stop >/dev/null 2>&1 || true
  fi
}
trap stop_broker EXIT

if ! rabbitmqctl status >/dev/null 2>&1; then
  # Debian's wrapper drops to the rabbitmq user; no init system is needed.
  (cd /var/lib/rabbitmq && su rabbitmq -s /bin/sh -c /usr/lib/rabbitmq/bin/rabbitmq-server \
    >/var/log/rabbitmq/peers-sh.log 2>&1 &)
  started=yes
fi
up=""
for _ in $(seq 1 60); do
  # Fails at once while the node is not reachable yet, so retry.
  if timeout 30 rabbitmqctl await_startup >/dev/null 2>&1; then
    up=yes
    break
  fi
  sleep 2
done
if [[ -z "$up" ]]; then
  echo "peers.sh: RabbitMQ did not start within 2 minutes; its log:" >&2
  tail -n 50 /var/log/rabbitmq/peers-sh.log >&2 || true
  exit 1
fi
for port in 61613 15674; do
  for _ in $(seq 1 60); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 1
  done
done
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
