#!/usr/bin/env bash
# The create storm (issue 10): DURATION seconds of audited creates whose
# answers all name the same id (`/framed/same/items/`, whose read takes
# 1 ms), so after-snapshots queue up on one resource behind its lock. Prints
# wrk's count, auditgate's peak resident memory during the storm, the
# pending audits it reported, how long it took to drain afterwards, and
# whether every 2xx has its entry.
#
# Usage: scripts/bench-storm.sh   (env: CONNS=64 DURATION=20 MAX_PENDING=N
#        (default: the binary's own), KEEP=dir: keep the log, database and
#        metrics; AUDITGATE=path: another auditgate binary, to compare builds)
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${CONNS:-64}
DURATION=${DURATION:-20}
MAX_PENDING=${MAX_PENDING:-}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet --bin auditgate --example upstream
AUDITGATE=${AUDITGATE:-target/release/auditgate}

# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

up=$(free_port); ag=$(free_port); q=$(free_port)
target/release/examples/upstream "127.0.0.1:$up" 1 > /dev/null &
pids+=($!)
wait_port "$up"
mkdir -p "$work/rules"
extra=()
[ -n "$MAX_PENDING" ] && extra=(AUDITGATE_RECORDER__MAX_PENDING="$MAX_PENDING" AUDITGATE_RECORDER__SPOOL="$work/audit.spool")
env RUST_LOG=warn "${extra[@]}" \
  "$AUDITGATE" serve --upstream "http://127.0.0.1:$up" \
  --listen "127.0.0.1:$ag" --query-listen "127.0.0.1:$q" --rules "$work/rules" \
  --database "sqlite://$work/audit.db" 2> "$work/auditgate.log" &
agpid=$!
pids+=($agpid)
wait_port "$ag"; wait_port "$q"

cat > "$work/post.lua" <<'LUA'
request = function()
  return wrk.format("POST", "/framed/same/items/", {["Content-Type"] = "application/json"},
    '{"name": "storm", "email": "storm@example.com", "address": {"city": "Lyon", "zip": "69001"}}')
end
LUA

metric() { curl -s "http://127.0.0.1:$q/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
# Peak RSS and pending while the storm runs.
(
  peak=0; most=0
  while kill -0 "$agpid" 2>/dev/null && [ ! -e "$work/stop" ]; do
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$agpid/status")
    pending=$(metric auditgate_audits_pending || echo 0)
    [ "$rss" -gt "$peak" ] && peak=$rss
    [ "${pending:-0}" -gt "$most" ] && most=${pending:-0}
    echo "$peak $most" > "$work/peak"
    sleep 0.2
  done
) &
pids+=($!)
wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$work/post.lua" "http://127.0.0.1:$ag" > "$work/wrk.out"
answered=$(awk '/requests in/ {print $1}' "$work/wrk.out")
non2xx=$(awk '/Non-2xx/ {print $5}' "$work/wrk.out")
ended=$(date +%s.%N)
# Drain: wait until every answered create is written (or 120 s pass).
for _ in $(seq 1200); do
  written=$(metric auditgate_entries_written_total)
  [ "${written:-0}" -ge "$((answered - ${non2xx:-0}))" ] && break
  sleep 0.1
done
drained=$(python3 -c "import time; print(f'{time.time() - $ended:.1f}')")
touch "$work/stop"; sleep 0.3
read -r peak most < "$work/peak"
verify=$(curl -s "http://127.0.0.1:$q/api/v1/verify")
if [ -n "${KEEP:-}" ]; then cp "$work/auditgate.log" "$work/audit.db" "$KEEP/" 2>/dev/null; curl -s "http://127.0.0.1:$q/metrics" > "$KEEP/metrics"; cp "$work/audit.db-wal" "$KEEP/" 2>/dev/null || true; fi
echo "max_pending ${MAX_PENDING:-default}: $answered creates answered (${non2xx:-0} non-2xx) in ${DURATION}s, $(metric auditgate_entries_written_total) written, $(metric auditgate_entries_dropped_total) dropped; peak RSS $((peak / 1024)) MiB, most pending $most; drained ${drained}s after the load; verify $verify"
