#!/usr/bin/env bash
# Pass-through load benchmark, measured side by side in one run on 127.0.0.1:
# the upstream direct, nginx as a reverse proxy (upstream keepalive, as many
# workers as auditgate has threads) and auditgate. Prints a Markdown table of
# medians: requests/s, p50/p99 latency, proxy CPU µs per request (utime+stime
# from /proc), and auditgate's resident memory idle and after load.
#
# Usage: scripts/bench-proxy.sh   (env: CONNS=64 DURATION=10 RUNS=3 PATH_=/ CONFIGS=100
#        THREADS=1: nginx's workers and the example upstream's threads;
#        AG_THREADS: auditgate's worker_threads (unset: its default);
#        UPSTREAM=example|nginx: the example app, or nginx answering a JSON
#        body of its own (one worker);
#        AUDITGATE=path: another auditgate binary, to compare builds)
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=${THREADS:-1}
CONNS=${CONNS:-64}
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
CONFIGS=${CONFIGS:-100}
TARGET_PATH=${PATH_:-/}
UPSTREAM=${UPSTREAM:-example}

if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk nginx-light >/dev/null
fi
cargo build --release --quiet --bin auditgate --example upstream
AUDITGATE=${AUDITGATE:-target/release/auditgate}

# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

up_port=$(free_port); ngx_port=$(free_port); ag_port=$(free_port)
if [ "$UPSTREAM" = nginx ]; then
  start_json_nginx "$up_port" > /dev/null
else
  target/release/examples/upstream "127.0.0.1:$up_port" "$THREADS" > "$work/upstream.out" &
  pids+=($!)
  wait_port "$up_port"
fi

start_nginx "$ngx_port" "$up_port" "$THREADS" > "$work/nginx.pid.out"
ngx_pid=$(cat "$work/nginx.pid.out")

mkdir -p "$work/rules"
# Audit configurations loaded while passing through (issue 4): CONFIGS
# includes, one per resource type, every tenth with exclude lists.
for ((i = 0; i < CONFIGS; i++)); do
  printf '[[configuration]]\nname = "bench %d"\npriority = %d\naudit_actions = ["create", "update", "delete"]\naudit_resource_types = ["type%d"]\n' "$i" $((i % 5)) "$i"
  if ((i % 10 == 0)); then printf 'exclude_users = ["robot%d"]\n' "$i"; fi
done > "$work/rules/audit.toml"
if [ -n "${AG_THREADS:-}" ]; then export AUDITGATE_WORKER_THREADS=$AG_THREADS; fi
RUST_LOG=warn "$AUDITGATE" serve \
  --upstream "http://127.0.0.1:$up_port" --listen "127.0.0.1:$ag_port" --rules "$work/rules" \
  --query-listen 127.0.0.1:0 --database "sqlite://$work/audit.db" 2> "$work/auditgate.log" &
ag_pid=$!
pids+=("$ag_pid")
wait_port "$ag_port"
sleep 0.5
rss_idle=$(rss_kib "$ag_pid")

ngx_all() { echo "$ngx_pid" $(pgrep -P "$ngx_pid" || true); }
for run in $(seq "$RUNS"); do
  measure direct "http://127.0.0.1:$up_port$TARGET_PATH" "$ag_pid"
  # shellcheck disable=SC2046
  measure nginx "http://127.0.0.1:$ngx_port$TARGET_PATH" $(ngx_all)
  measure auditgate "http://127.0.0.1:$ag_port$TARGET_PATH" "$ag_pid"
done
rss_loaded=$(rss_kib "$ag_pid")

python3 - "$work/results.tsv" "$rss_idle" "$rss_loaded" "$CONFIGS" <<'PY'
import statistics, sys, math
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
by = {}
for name, *vals in rows:
    by.setdefault(name, []).append([float(v) for v in vals])
med = {n: [statistics.median(col) for col in zip(*vs)] for n, vs in by.items()}
print("| path | req/s | p50 ms | p99 ms | proxy CPU µs/req | non-2xx |")
print("|---|---|---|---|---|---|")
for n in ["direct", "nginx", "auditgate"]:
    rps, p50, p99, cpu, err = med[n]
    cpu_s = "–" if math.isnan(cpu) else f"{cpu:.1f}"
    print(f"| {n} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {cpu_s} | {err:.0f} |")
a, g = med["auditgate"], med["nginx"]
print()
print(f"auditgate / nginx: throughput {a[0]/g[0]:.2f}x, p99 {a[2]/g[2]:.2f}x, CPU per request {a[3]/g[3]:.2f}x")
print(f"auditgate / direct: throughput {a[0]/med['direct'][0]:.2f}x")
print(f"auditgate RSS: {int(sys.argv[2])/1024:.1f} MiB idle, {int(sys.argv[3])/1024:.1f} MiB after load")
print(f"runs per path: {len(by['auditgate'])} (medians shown); audit configurations loaded: {sys.argv[4]}")
PY
echo "auditgate worker_threads: ${AG_THREADS:-default ($(nproc) cores)}; nginx workers: $THREADS; upstream: $UPSTREAM"
