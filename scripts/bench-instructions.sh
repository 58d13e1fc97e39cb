#!/usr/bin/env bash
# Instructions per request, counted by callgrind (repeatable on a noisy
# machine, unlike time): auditgate runs under valgrind in front of the
# example upstream, a client sends N sequential audited PATCHes (or audited
# POSTs, or pass-through GETs) over one keep-alive connection, and the count for 200 requests is taken from the
# count for 1,200, leaving 1,000 requests' worth without start-up and
# shutdown. valgrind hides SHA-NI, so hashing counts as software SHA-256
# here; the comparison between builds is what this is for.
#
# Usage: scripts/bench-instructions.sh [patch|post|get]   (env: AUDITGATE=path
#        to count another build)
set -euo pipefail
cd "$(dirname "$0")/.."
KIND=${1:-patch}
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
cargo build --release --quiet --bin auditgate --example upstream
AUDITGATE=${AUDITGATE:-target/release/auditgate}

# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

count() {
  local n=$1 up ag q
  up=$(free_port); ag=$(free_port); q=$(free_port)
  target/release/examples/upstream "127.0.0.1:$up" 1 > /dev/null &
  local upid=$!
  wait_port "$up"
  for _ in $(seq 64); do
    curl -s -o /dev/null -X POST -H 'content-type: application/json' \
      -d '{"name": "Alice Example", "email": "alice@example.com", "address": {"city": "Paris", "zip": "75001"}}' \
      "http://127.0.0.1:$up/api/items/"
  done
  mkdir -p "$work/rules"; rm -f "$work"/audit.db*
  RUST_LOG=warn AUDITGATE_WORKER_THREADS=1 valgrind --tool=callgrind --callgrind-out-file="$work/cg.$n" \
    "$AUDITGATE" serve --upstream "http://127.0.0.1:$up" --listen "127.0.0.1:$ag" --query-listen "127.0.0.1:$q" \
    --rules "$work/rules" --database "sqlite://$work/audit.db" 2> "$work/valgrind.log" &
  local agpid=$!
  for _ in $(seq 600); do (echo > "/dev/tcp/127.0.0.1/$ag") 2>/dev/null && break; sleep 0.1; done
  python3 - "$ag" "$KIND" "$n" <<'PY'
import http.client, json, sys
port, kind, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port)
for i in range(n):
    if kind == "get":
        c.request("GET", f"/api/items/{i % 64 + 1}/")
    elif kind == "patch":
        c.request("PATCH", f"/api/items/{i % 64 + 1}/", json.dumps({"email": f"e{i}@example.com"}),
                  {"content-type": "application/json"})
    else:
        body = {"name": f"Created {i}", "email": f"c{i}@example.com", "address": {"city": "Lyon", "zip": "69001"}}
        c.request("POST", "/api/items/", json.dumps(body), {"content-type": "application/json"})
    r = c.getresponse(); r.read()
    assert r.status in (200, 201), r.status
PY
  sleep 2
  kill -INT "$agpid"; wait "$agpid" || true
  kill "$upid"; wait "$upid" 2>/dev/null || true
  awk '/^summary:/ {print $2}' "$work/cg.$n"
}

low=$(count 200)
high=$(count 1200)
echo "$KIND: $(( (high - low) / 1000 )) instructions per request ($AUDITGATE)"
