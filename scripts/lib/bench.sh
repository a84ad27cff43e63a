# Helpers of the benchmark scripts (cluster-bench.sh, queue-bench.sh). Source it, then:
#   wait_for_line LOG REGEX      waits up to 30 s for a line of LOG matching REGEX; prints it
#   busy_percent                 the share of all cores busy over the next second, in percent
#   wait_quiet                   waits (up to QUIET_WAIT s, default 30) until under QUIET_BELOW
#                                percent (default 30) of the cores are busy; prints what it saw

wait_for_line() {
  local deadline=$((SECONDS + 30))
  until grep -m1 -E -- "$2" "$1"; do
    if ((SECONDS >= deadline)); then
      echo "${0##*/}: no line matching '$2' in $1:" >&2
      cat "$1" >&2
      return 1
    fi
    sleep 0.1
  done
}

# From /proc/stat.
busy_percent() {
  local a b
  read -r -a a < <(head -1 /proc/stat)
  sleep 1
  read -r -a b < <(head -1 /proc/stat)
  local total=0 idle i
  for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
  idle=$((b[4] - a[4] + b[5] - a[5]))
  echo $((100 * (total - idle) / (total > 0 ? total : 1)))
}

# On a machine shared with builds: called before each run.
wait_quiet() {
  local deadline=$((SECONDS + ${QUIET_WAIT:-30})) busy
  while :; do
    busy=$(busy_percent)
    if ((busy < ${QUIET_BELOW:-30})) || ((SECONDS >= deadline)); then
      echo "$busy"
      return
    fi
  done
}
