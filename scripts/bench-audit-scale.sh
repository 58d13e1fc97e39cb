#!/usr/bin/env bash
# The audited path's cost as the trail grows (issue 32, item 12): audited
# PATCHes through auditgate in front of one nginx worker answering JSON
# (the cheapest upstream: what is left is auditgate's own cost), in ROUNDS
# rounds of DURATION seconds, on a store that starts empty and on a copy of
# a store already holding PREFILL entries (a realistic trail, filled by
# `cargo bench --bench trail_scale` with ENTRIES=PREFILL). For each round:
# the entries stored before it, req/s, p50/p99, and auditgate's CPU µs per
# audited request, user and system apart, by thread kind.
#
# Usage: scripts/bench-audit-scale.sh   (env: CONNS=4 DURATION=5 ROUNDS=3
#        PREFILL=1000000: 0 measures the empty store only;
#        AUDITGATE=path: another auditgate binary, to compare builds)
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${CONNS:-4}
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
PREFILL=${PREFILL:-1000000}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
cargo build --release --quiet --bin auditgate
AUDITGATE=${AUDITGATE:-target/release/auditgate}
filled="target/scale/trail-$PREFILL.db"
if [ "$PREFILL" -gt 0 ] && [ ! -f "$filled" ]; then
  echo "== filling $filled (once; kept between runs)"
  ENTRIES=$PREFILL ONLY=nothing-at-all cargo bench --quiet --bench trail_scale > /dev/null
fi

# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

up=$(free_port)
start_json_nginx "$up" > /dev/null
mkdir -p "$work/rules"
cat > "$work/patch.lua" <<'LUA'
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("PATCH", "/api/items/" .. ((counter % 64) + 1) .. "/",
    {["Content-Type"] = "application/json"}, '{"email": "e' .. counter .. '@example.com"}')
end
LUA

# One store: measure_store LABEL DATABASE_FILE
measure_store() {
  local label=$1 db=$2 ag q pid
  ag=$(free_port); q=$(free_port)
  RUST_LOG=warn AUDITGATE_RECORDER__SPOOL="$work/$label.spool" "$AUDITGATE" serve \
    --upstream "http://127.0.0.1:$up" --listen "127.0.0.1:$ag" --query-listen "127.0.0.1:$q" \
    --rules "$work/rules" --database "sqlite://$db" 2> "$work/$label.log" &
  pid=$!
  pids+=("$pid")
  wait_port "$ag"; wait_port "$q"
  for round in $(seq "$ROUNDS"); do
    local stored; stored=$(curl -s "http://127.0.0.1:$q/api/v1/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
    threads "$pid" > "$work/t0"
    wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$work/patch.lua" "http://127.0.0.1:$ag" > "$work/out"
    sleep 0.5 # the writer finishes the last batch
    threads "$pid" > "$work/t1"
    python3 - "$label" "$round" "$stored" "$work" "$(getconf CLK_TCK)" <<'PY'
import re, sys
label, round_, stored, work, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
out = open(f"{work}/out").read()
def ms(v, unit): return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
n = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p50 = ms(*re.search(r"50%\s+([\d.]+)(us|ms|s)", out).groups())
p99 = ms(*re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups())
def load(name):
    rows = (line.split(maxsplit=3) for line in open(f"{work}/{name}"))
    return {tid: (int(u), int(s), comm.strip()) for tid, u, s, comm in rows}
t0, t1, kinds = load("t0"), load("t1"), {}
for tid, (u, s, comm) in t1.items():
    u0, s0, _ = t0.get(tid, (0, 0, comm))
    k = kinds.setdefault(comm, [0, 0])
    k[0] += u - u0
    k[1] += s - s0
per = lambda ticks: ticks * 1e6 / hz / n
user = sum(u for u, _ in kinds.values())
system = sum(s for _, s in kinds.values())
split = ", ".join(f"{c} {per(u):.1f}/{per(s):.1f}" for c, (u, s) in sorted(kinds.items()) if u + s)
print(f"| {label} | {round_} | {stored:,} | {rps:,.0f} | {p50:.3f} | {p99:.3f} | {per(user) + per(system):.1f} | {per(user):.1f} | {per(system):.1f} | {split} |")
PY
  done
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

echo "| store | round | entries before | req/s | p50 ms | p99 ms | CPU µs/req | user | system | by thread (user/system) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
measure_store empty "$work/empty.db"
if [ "$PREFILL" -gt 0 ]; then
  cp "$filled" "$work/filled.db"
  measure_store "$PREFILL" "$work/filled.db"
fi
