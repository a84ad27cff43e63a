#!/usr/bin/env bash
# Starts RabbitMQ (Debian's rabbitmq-server with the STOMP and Web-STOMP plugins) on loopback,
# as a peer for herald-load A/B runs; `stop` stops it again if this script started it.
#
#   sudo bench/peers.sh          install if missing, start if not running, wait until ready
#   sudo bench/peers.sh stop     stop the broker this script started (one it found running
#                                is left alone)
#
# Endpoints: tcp://127.0.0.1:61613 and ws://127.0.0.1:15674/ws, login guest / passcode guest.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
# Marks a broker this script started, so `stop` never stops someone else's.
marker=/var/lib/rabbitmq/.herald-bench-started
log=/var/log/rabbitmq/herald-bench.log

if [[ $(id -u) -ne 0 ]]; then
  echo "bench/peers.sh: run as root (it installs and starts rabbitmq-server)" >&2
  exit 2
fi

if [[ ${1:-start} == stop ]]; then
  if [[ -e $marker ]]; then
    rabbitmqctl stop >/dev/null 2>&1 || true
    rm -f "$marker"
    echo "bench/peers.sh: RabbitMQ stopped"
  else
    echo "bench/peers.sh: RabbitMQ was not started by this script; left alone"
  fi
  exit 0
fi

if ! dpkg -s rabbitmq-server >/dev/null 2>&1; then
  apt-get update
  apt-get install -y rabbitmq-server
fi

# Loopback listeners only. A config written by conformance/peers.sh says the same; any other
# existing config is left as it is.
conf=/etc/rabbitmq/rabbitmq.conf
if [[ ! -e $conf ]] || grep -q '^# written by herald .*peers.sh' "$conf"; then
  cat >"$conf" <<'CONF'
# written by herald bench/peers.sh
listeners.tcp.default = 127.0.0.1:5672
stomp.listeners.tcp.1 = 127.0.0.1:61613
web_stomp.tcp.ip = 127.0.0.1
web_stomp.tcp.port = 15674
CONF
fi
rabbitmq-plugins --offline enable rabbitmq_stomp rabbitmq_web_stomp >/dev/null

if rabbitmqctl status >/dev/null 2>&1; then
  echo "bench/peers.sh: RabbitMQ already running; using it"
else
  # Debian's wrapper drops to the rabbitmq user; no init system is needed.
  # Its own session, and none of this script's descriptors: a caller piping this script's
  # output (`bench/peers.sh | tail`) must not wait for the broker to exit.
  # The descriptor limit raised to the hard limit: at the default 1024 RabbitMQ stops
  # accepting connections ("out of file descriptors") long before a 1,000-subscriber run.
  (cd /var/lib/rabbitmq && setsid su rabbitmq -s /bin/sh \
    -c 'ulimit -n "$(ulimit -Hn)" && exec /usr/lib/rabbitmq/bin/rabbitmq-server' \
    </dev/null >"$log" 2>&1 &) </dev/null >/dev/null 2>&1
  touch "$marker"
fi

up=""
for _ in $(seq 1 60); do
  # Fails at once while the node is not reachable yet, so retry (60 x at most 30 s).
  if timeout 30 rabbitmqctl await_startup >/dev/null 2>&1; then
    up=yes
    break
  fi
  sleep 2
done
if [[ -z $up ]]; then
  echo "bench/peers.sh: RabbitMQ did not start in time; its log:" >&2
  tail -n 50 "$log" >&2 || true
  exit 1
fi
for port in 61613 15674; do
  ok=""
  for _ in $(seq 1 60); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      ok=yes
      break
    fi
    sleep 1
  done
  [[ -n $ok ]] || { echo "bench/peers.sh: nothing listens on 127.0.0.1:$port" >&2; exit 1; }
done
echo "bench/peers.sh: RabbitMQ $(rabbitmqctl version 2>/dev/null || echo '?') ready:" \
  "tcp://127.0.0.1:61613, ws://127.0.0.1:15674/ws (guest/guest)"
