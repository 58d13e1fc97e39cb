#!/usr/bin/env bash
# Slow-client attacks with slowhttptest (Debian) against both ports of a
# release auditgate in front of the example upstream, and nginx in front of
# the same upstream for comparison: slowloris (-H), slow body (-B) and slow
# read (-X), each with CONNS connections for LENGTH seconds, while a probe sends a normal GET every
# 100 ms on a new connection and times it (and a second probe the upstream
# directly). Prints a Markdown table per attack and port: slowhttptest's own
# verdict, probe answers, failures, p50/p99/max, the direct probe's p99.
#
# Usage: scripts/slow-clients.sh   (env: CONNS=1000 LENGTH=30 MAX_CONNECTIONS=10000
#        ATTACKS="-H -B -X" TARGETS="proxy nginx query" AUDITGATE=path)
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${CONNS:-1000}
LENGTH=${LENGTH:-30}
MAX_CONNECTIONS=${MAX_CONNECTIONS:-10000}
ATTACKS=${ATTACKS:-"-H -B -X"}
TARGETS=${TARGETS:-"proxy nginx query"}
# Each slow connection holds a socket, and one to the upstream.
ulimit -n "$(ulimit -Hn)"

if ! command -v slowhttptest >/dev/null || ! command -v nginx >/dev/null; then
  apt-get update -qq && apt-get install -y -qq slowhttptest nginx-light >/dev/null
fi
cargo build --release --quiet --bin auditgate --example upstream

# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

up_port=$(free_port); ag_port=$(free_port); q_port=$(free_port); ngx_port=$(free_port)
# The upstream gets a thread per core, as a real app server has workers: with
# one thread it is the first thing the attack saturates (its own probe p99
# then equals the proxy's).
target/release/examples/upstream "127.0.0.1:$up_port" "$(nproc)" > "$work/upstream.out" &
pids+=($!)
wait_port "$up_port"
mkdir -p "$work/rules"
# nginx as bench-proxy.sh runs it, with as many workers as auditgate has threads.
start_nginx "$ngx_port" "$up_port" "$(nproc)" > /dev/null
RUST_LOG=warn \
  AUDITGATE_LIMITS__MAX_CONNECTIONS=$MAX_CONNECTIONS \
  AUDITGATE_LIMITS__HEADER_READ_TIMEOUT=5s \
  AUDITGATE_LIMITS__IDLE_TIMEOUT=10s \
  AUDITGATE_LIMITS__BODY_TIMEOUT=5s \
  "${AUDITGATE:-target/release/auditgate}" serve --upstream "http://127.0.0.1:$up_port" --listen "127.0.0.1:$ag_port" \
  --query-listen "127.0.0.1:$q_port" --rules "$work/rules" --database "sqlite://$work/audit.db" \
  2> "$work/auditgate.log" &
pids+=($!)
wait_port "$ag_port"
wait_port "$q_port"

# probe URL out: one line per request, "<http code> <seconds>", until killed.
probe() {
  while true; do
    curl -s -o /dev/null --max-time 5 -w '%{http_code} %{time_total}\n' "$1" || echo "000 5"
    sleep 0.1
  done > "$2"
}

# attack target label flag port url-path probe-path (skipped unless both
# the target and the flag were asked for)
attack() {
  local target=$1 label=$2; shift 2
  local flag=$1 port=$2 path=$3 probe_path=$4 name
  [[ " $TARGETS " == *" $target "* && " $ATTACKS " == *" $flag "* ]] || return 0
  name="${flag}-${port}"
  probe "http://127.0.0.1:$port$probe_path" "$work/$name.probe" &
  local probe_pid=$!
  # The same GET straight to the upstream: what the upstream itself answers
  # under the load the attack puts on the machine.
  probe "http://127.0.0.1:$up_port/" "$work/$name.direct" &
  local direct_pid=$!
  # -i 3: follow-up data every 3 s; -r: connections per second; -p: probe
  # timeout; -X reads 1 byte every 2 s from a 32-byte window.
  local extra=()
  case $flag in
    -X) extra=(-k 3 -n 2 -w 16 -y 32 -z 1) ;;
    -B) extra=(-s 100000) ;;
  esac
  slowhttptest "$flag" -c "$CONNS" -r 200 -i 3 -l "$LENGTH" -p 3 "${extra[@]}" \
    -u "http://127.0.0.1:$port$path" > "$work/$name.out" 2>&1 &
  local attack_pid=$!
  # What auditgate still holds near the end (slowhttptest's own count
  # misses resets it has not read yet).
  sleep $((LENGTH - 3))
  ss -Htn state established "( sport = :$port )" | wc -l > "$work/$name.held"
  wait "$attack_pid" || true
  kill "$probe_pid" "$direct_pid" 2>/dev/null || true
  wait "$probe_pid" "$direct_pid" 2>/dev/null || true
  python3 - "$flag" "$label" "$work/$name.out" "$work/$name.probe" "$work/$name.held" "$work/$name.direct" <<'PY'
import re, statistics, sys
flag, where, out, probe, held, direct = sys.argv[1:7]
held = open(held).read().strip()
text = re.sub(r"\x1b\[[0-9;]*m", "", open(out, errors="replace").read())
connected = max((int(n) for n in re.findall(r"connected:\s+(\d+)", text)), default=0)
unavailable = len(re.findall(r"service available:\s+NO", text))
verdict = re.search(r"Exit status:\s*([^\n]+)", text)
def timed(path):
    samples = [l.split() for l in open(path) if l.strip()]
    return samples, sorted(float(t) * 1000 for c, t in samples if c == "200")
samples, times = timed(probe)
failed = sum(1 for c, _ in samples if c != "200")
q = lambda p, ts=times: ts[min(len(ts) - 1, int(p * len(ts)))] if ts else float("nan")
_, direct_times = timed(direct)
kind = {"-H": "slowloris", "-B": "slow body", "-X": "slow read"}[flag]
print(f"| {kind} | {where} | {connected} | {held} | {unavailable} | {verdict.group(1).strip() if verdict else '?'} | {len(samples)} | {failed} | {q(0.5):.1f} | {q(0.99):.1f} | {max(times) if times else float('nan'):.1f} | {q(0.99, direct_times):.1f} |")
PY
}

echo "| attack | target | most connected | held 3 s before the end | seconds slowhttptest saw the service down | exit status | probe requests | probe failures | p50 ms | p99 ms | max ms | upstream direct p99 ms |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for target in "proxy:auditgate proxy port:$ag_port" "nginx:nginx:$ngx_port"; do
  name=${target%%:*}; rest=${target#*:}; label=${rest%:*}; port=${rest##*:}
  attack "$name" "$label" -H "$port" / /
  attack "$name" "$label" -B "$port" /echo /
  attack "$name" "$label" -X "$port" "/big?bytes=20000000" /
done
attack query "auditgate query port" -H "$q_port" /healthz /healthz
attack query "auditgate query port" -B "$q_port" /api/v1/audit-configurations /healthz
attack query "auditgate query port" -X "$q_port" /api/v1/audit-logs/export?format=ndjson /healthz
echo
echo "connections per attack: $CONNS for ${LENGTH}s; max_connections $MAX_CONNECTIONS; header_read_timeout 5s, idle_timeout 10s, body_timeout 5s"
