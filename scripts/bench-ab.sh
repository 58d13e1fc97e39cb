#!/usr/bin/env bash
# A/B on the pass-through path: two auditgate builds side by side in front of
# one upstream (one worker thread each), wrk alternated RUNS times; prints
# requests/s and the proxy's CPU µs per request (utime+stime from /proc).
# Usage: A=old/auditgate B=target/release/auditgate scripts/bench-ab.sh
#        (env: RUNS=8; AG_THREADS=1: both builds' worker_threads;
#        UPSTREAM=example|nginx: the example app or nginx answering JSON)
# Run it with A and B swapped too: on a 2-core box the second of a pair is
# measured a few percent worse even when both are the same build.
set -euo pipefail
cd "$(dirname "$0")/.."
A=${A:?the first build}; B=${B:-target/release/auditgate}; RUNS=${RUNS:-8}
cargo build --release --quiet --example upstream
. scripts/bench-lib.sh
up=$(free_port); a=$(free_port); b=$(free_port); qa=$(free_port); qb=$(free_port)
if [ "${UPSTREAM:-example}" = nginx ]; then
  start_json_nginx "$up" > /dev/null
else
  target/release/examples/upstream "127.0.0.1:$up" 1 >/dev/null &
  pids+=($!)
  wait_port $up
fi
for side in a b; do
  bin=$([ $side = a ] && echo "$A" || echo "$B")
  port=$([ $side = a ] && echo $a || echo $b); q=$([ $side = a ] && echo $qa || echo $qb)
  mkdir -p $work/$side
  AUDITGATE_WORKER_THREADS=${AG_THREADS:-1} $bin serve --upstream http://127.0.0.1:$up --listen 127.0.0.1:$port --query-listen 127.0.0.1:$q --database sqlite://$work/$side/a.db --rules $work/$side >/dev/null 2>&1 &
  pids+=($!)
  eval pid_$side=$!
  wait_port $port
done
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
for _ in $(seq "$RUNS"); do
  for side in a b; do
    port=$([ $side = a ] && echo $a || echo $b); pid=$([ $side = a ] && echo $pid_a || echo $pid_b)
    t0=$(ticks $pid)
    out=$(wrk -t1 -c64 -d5s http://127.0.0.1:$port/ | awk '/Requests\/sec/ {print $2}')
    t1=$(ticks $pid)
    echo "$side $out req/s $(python3 -c "print(round(($t1-$t0)*1e6/$hz/($out*5),1))") µs/req"
  done
done
