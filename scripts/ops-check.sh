#!/usr/bin/env bash
# Checks the shipped operations files: the Prometheus alerting rules with promtool (and their
# unit tests), the systemd unit with systemd-analyze verify. The Grafana dashboard is checked
# by broker/tests/ops_http.rs (every metric it queries is exported).
# Needs promtool (Debian package prometheus) and systemd-analyze; scripts/test.sh installs them.
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/herald-target}"

promtool check rules config/prometheus/alerts.yml
promtool test rules config/prometheus/alerts_test.yml

# verify refuses a unit whose ExecStart binary does not exist: check a copy that runs the
# binary just built instead of /usr/local/bin/herald.
cargo build --quiet --locked -p herald
unit_dir=$(mktemp -d)
trap 'rm -rf "$unit_dir"' EXIT
sed "s|/usr/local/bin/herald|$CARGO_TARGET_DIR/debug/herald|g" config/systemd/herald.service \
  > "$unit_dir/herald.service"
# Without systemd as PID 1 (containers, CI), verify still parses and checks the unit.
output=$(systemd-analyze verify "$unit_dir/herald.service" 2>&1) || {
  echo "$output"
  exit 1
}
# Warnings go to the output with exit 0: any line naming the unit is a problem in it.
if grep -F "herald.service" <<<"$output"; then
  exit 1
fi
echo "config/systemd/herald.service: ok"
