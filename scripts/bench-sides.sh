#!/usr/bin/env bash
# Pass-through CPU per request of several builds (or settings) side by side,
# alternated in one run, nginx among them if asked: each variant in front of
# one upstream, wrk with 64 connections for DUR seconds, RUNS rounds. Prints
# medians of requests/s and of user and system CPU µs per request (from
# /proc/PID/stat).
#
# Usage: scripts/bench-sides.sh "NAME|ENV|BINARY" ...   (BINARY `nginx` for nginx
#        as the proxy; ENV like `A=1 B=2` or empty; env RUNS=5 DUR=5;
#        UPSTREAM=nginx|example: nginx answering JSON (one worker) or the
#        example app; AG_THREADS: every auditgate's worker_threads)
# Example: scripts/bench-sides.sh "nginx||nginx" "before||/tmp/ag-old" "after||target/release/auditgate"
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
DUR=${DUR:-5}
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk nginx-light >/dev/null
fi
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
up=$(free_port)
if [ "${UPSTREAM:-nginx}" = nginx ]; then
  start_json_nginx "$up" > /dev/null
else
  cargo build --release --quiet --example upstream
  target/release/examples/upstream "127.0.0.1:$up" 1 > /dev/null &
  pids+=($!)
  wait_port "$up"
fi
if [ -n "${AG_THREADS:-}" ]; then export AUDITGATE_WORKER_THREADS=$AG_THREADS; fi
names=(); ports=(); procs=()
i=0
for variant in "$@"; do
  IFS='|' read -r name envs bin <<< "$variant"
  port=$(free_port)
  mkdir -p "$work/v$i"
  if [ "$bin" = nginx ]; then
    start_nginx "$port" "$up" 1 > "$work/v$i/pid"
    p=$(pgrep -P "$(cat "$work/v$i/pid")")
  else
    # shellcheck disable=SC2086
    env $envs RUST_LOG=warn "$bin" serve --upstream "http://127.0.0.1:$up" --listen "127.0.0.1:$port" \
      --query-listen 127.0.0.1:0 --database "sqlite://$work/v$i/audit.db" --rules "$work/v$i" > /dev/null 2>&1 &
    p=$!
    pids+=("$p")
    wait_port "$port"
  fi
  names+=("$name"); ports+=("$port"); procs+=("$p")
  i=$((i + 1))
done
hz=$(getconf CLK_TCK)
for _ in $(seq "$RUNS"); do
  for j in "${!names[@]}"; do
    read -r -a before < "/proc/${procs[$j]}/stat"
    n=$(wrk -t1 -c64 -d"${DUR}s" "http://127.0.0.1:${ports[$j]}/" | awk '/requests in/ {print $1}')
    read -r -a after < "/proc/${procs[$j]}/stat"
    echo "${names[$j]} $n $((after[13] - before[13])) $((after[14] - before[14]))" >> "$work/res"
  done
done
python3 - "$work/res" "$DUR" "$hz" <<'PY'
import statistics, sys
dur, hz = float(sys.argv[2]), int(sys.argv[3])
by = {}
for line in open(sys.argv[1]):
    name, n, user, system = line.split()
    n = int(n)
    by.setdefault(name, []).append((n / dur, int(user) * 1e6 / hz / n, int(system) * 1e6 / hz / n))
print("| | req/s | user µs/req | system µs/req | total µs/req |")
print("|---|---|---|---|---|")
for name, runs in by.items():
    med = lambda k: statistics.median(r[k] for r in runs)
    total = statistics.median(r[1] + r[2] for r in runs)
    print(f"| {name} | {med(0):,.0f} | {med(1):.2f} | {med(2):.2f} | {total:.2f} |")
PY
