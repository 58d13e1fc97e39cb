#!/usr/bin/env bash
# Audited-mutation benchmark, measured side by side in one run on 127.0.0.1:
# the upstream's own PATCH, POST and GET latency direct, then the same
# PATCHes (GET before + PATCH + GET after + diff + SQLite write) and POSTs
# (POST through the tee + GET after + SQLite write) through auditgate.
# Prints p50/p99, auditgate's CPU µs per audited request (all its threads:
# proxy, snapshots, diff, writer; the figure that holds on a noisy box), and
# the ratios audited PATCH p50 / (PATCH p50 + 2 × GET p50) and audited POST
# p50 / (POST p50 + GET p50), the inherent cost of snapshots; then checks
# that every request has one entry, and auditgate's resident memory idle and
# after each audited load, split into anonymous memory (heap, SQLite's page
# caches) and file pages (the database mapped with mmap), from /proc; the
# audited requests' CPU by thread kind, user and system; and the recorder's
# batches.
#
# Usage: scripts/bench-audit.sh   (env: CONNS=4 DURATION=10 ITEMS=64
#        APP=example|json-server|nginx: the in-memory example upstream,
#        json-server 0.17 from tests/json-server, a real app at ~1 ms/request,
#        or one nginx worker answering every request with the same JSON (the
#        cheapest upstream: what is left is auditgate's own cost; its diffs
#        are empty, its entries still written);
#        AUDITGATE=path: another auditgate binary, to compare builds;
#        AG_THREADS: auditgate's worker_threads (unset: its default);
#        DURABILITY=async|sync: [recorder] durability)
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${CONNS:-4}
DURATION=${DURATION:-10}
ITEMS=${ITEMS:-64}
APP=${APP:-example}
DURABILITY=${DURABILITY:-async}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet --bin auditgate --example upstream
AUDITGATE=${AUDITGATE:-target/release/auditgate}

# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

up=$(free_port); ag=$(free_port); q=$(free_port)
if [ "$APP" = json-server ]; then
  [ -d tests/json-server/node_modules ] || npm ci --prefix tests/json-server --no-audit --no-fund --loglevel=error
  python3 -c "import json; print(json.dumps({'items': []}))" > "$work/db.json"
  echo '{"/api/*": "/$1"}' > "$work/routes.json"
  (cd "$work" && exec node "$OLDPWD/tests/json-server/node_modules/json-server/lib/cli/bin.js" \
    --host 127.0.0.1 --port "$up" --routes routes.json --quiet db.json > /dev/null) &
  pids+=($!)
elif [ "$APP" = nginx ]; then
  command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
  start_json_nginx "$up" > /dev/null
else
  target/release/examples/upstream "127.0.0.1:$up" 1 > /dev/null &
  pids+=($!)
fi
wait_port "$up"
mkdir -p "$work/rules"
if [ -n "${AG_THREADS:-}" ]; then export AUDITGATE_WORKER_THREADS=$AG_THREADS; fi
RUST_LOG=warn AUDITGATE_RECORDER__DURABILITY=$DURABILITY \
  AUDITGATE_RECORDER__SPOOL="$work/audit.spool" "$AUDITGATE" serve --upstream "http://127.0.0.1:$up" \
  --listen "127.0.0.1:$ag" --query-listen "127.0.0.1:$q" --rules "$work/rules" \
  --database "sqlite://$work/audit.db" 2> "$work/auditgate.log" &
pids+=($!)
agpid=$!
wait_port "$ag"; wait_port "$q"
# Resident memory of auditgate, "total anon file" in KiB.
rss() { awk '/^VmRSS/ {t=$2} /^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {print t, a, f}' "/proc/$agpid/status"; }
rss > "$work/idle.rss"

for _ in $(seq "$ITEMS"); do
  curl -s -o /dev/null -X POST -H 'content-type: application/json' \
    -d '{"name": "Alice Example", "email": "alice@example.com", "address": {"city": "Paris", "zip": "75001"}}' \
    "http://127.0.0.1:$up/api/items/"
done

cat > "$work/patch.lua" <<LUA
counter = 0
request = function()
  counter = counter + 1
  local id = (counter % $ITEMS) + 1
  return wrk.format("PATCH", "/api/items/" .. id .. "/", {["Content-Type"] = "application/json"},
    '{"email": "e' .. counter .. '@example.com"}')
end
LUA
cat > "$work/post.lua" <<LUA
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "/api/items/", {["Content-Type"] = "application/json"},
    '{"name": "Created ' .. counter .. '", "email": "c' .. counter .. '@example.com", "address": {"city": "Lyon", "zip": "69001"}}')
end
LUA
cat > "$work/get.lua" <<LUA
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/api/items/" .. ((counter % $ITEMS) + 1) .. "/")
end
LUA

run() {
  threads "$agpid" > "$work/$3.threads0"
  local before; before=$(ticks "$agpid")
  wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$2" "http://127.0.0.1:$1" > "$work/$3.out"
  sleep 0.5 # the writer finishes the last batch
  echo "$(( $(ticks "$agpid") - before ))" > "$work/$3.ticks"
  rss > "$work/$3.rss"
  threads "$agpid" > "$work/$3.threads1"
}
run "$up" "$work/patch.lua" direct-patch
run "$up" "$work/get.lua" direct-get
run "$ag" "$work/patch.lua" audited-patch
run "$up" "$work/post.lua" direct-post
run "$ag" "$work/post.lua" audited-post
sleep 1

python3 - "$work" "$q" "$(getconf CLK_TCK)" <<'PY'
import json, re, sys, urllib.request
work, q, hz = sys.argv[1], sys.argv[2], int(sys.argv[3])
def ms(v, unit): return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
res = {}
for name in ["direct-patch", "direct-get", "audited-patch", "direct-post", "audited-post"]:
    out = open(f"{work}/{name}.out").read()
    res[name] = dict(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        n=int(re.search(r"(\d+) requests in", out).group(1)),
        p50=ms(*re.search(r"50%\s+([\d.]+)(us|ms|s)", out).groups()),
        p99=ms(*re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()),
        errors=int((re.search(r"Non-2xx or 3xx responses: (\d+)", out) or [0, 0])[1]),
    )
    ticks = int(open(f"{work}/{name}.ticks").read())
    res[name]["cpu"] = ticks * 1e6 / hz / res[name]["n"] if name.startswith("audited") else float("nan")
print("| path | req/s | p50 ms | p99 ms | auditgate CPU µs/req | non-2xx |")
print("|---|---|---|---|---|---|")
for name, r in res.items():
    cpu = "–" if r["cpu"] != r["cpu"] else f"{r['cpu']:.0f}"
    print(f"| {name} | {r['rps']:,.0f} | {r['p50']:.3f} | {r['p99']:.3f} | {cpu} | {r['errors']} |")
inherent = res["direct-patch"]["p50"] + 2 * res["direct-get"]["p50"]
print()
print(f"inherent (PATCH p50 + 2 × GET p50): {inherent:.3f} ms")
print(f"audited PATCH p50 / inherent: {res['audited-patch']['p50'] / inherent:.2f}")
created = res["direct-post"]["p50"] + res["direct-get"]["p50"]
print(f"inherent (POST p50 + GET p50): {created:.3f} ms")
print(f"audited POST p50 / inherent: {res['audited-post']['p50'] / created:.2f}")
stats = json.load(urllib.request.urlopen(f"http://127.0.0.1:{q}/api/v1/stats"))
verify = json.load(urllib.request.urlopen(f"http://127.0.0.1:{q}/api/v1/verify"))
n = res["audited-patch"]["n"] + res["audited-post"]["n"]
by = stats["by_action"]
for name in ["idle", "audited-patch", "audited-post"]:
    total, anon, mapped = (int(v) / 1024 for v in open(f"{work}/{name}.rss").read().split())
    after = "idle" if name == "idle" else f"after {name}"
    print(f"auditgate RSS {after}: {total:.1f} MiB ({anon:.1f} anonymous, {mapped:.1f} file pages)")
print(f"entries: {stats['total']} ({by.get('update', 0)} updates, {by.get('create', 0)} creates) for {n} audited requests; chain ok: {verify['ok']}")
# Where an audited request's CPU went: user and system time by thread
# kind (the tokio workers: proxy, snapshots, diff, sealing; SQLite's
# connection threads: the statements).
for name in ["audited-patch", "audited-post"]:
    def load(suffix):
        rows = (line.split(maxsplit=3) for line in open(f"{work}/{name}.threads{suffix}"))
        return {tid: (int(u), int(s), comm.strip()) for tid, u, s, comm in rows}
    t0, t1, kinds = load(0), load(1), {}
    for tid, (u, s, comm) in t1.items():
        u0, s0, _ = t0.get(tid, (0, 0, comm))
        k = kinds.setdefault(comm, [0, 0])
        k[0] += u - u0
        k[1] += s - s0
    per = lambda ticks: ticks * 1e6 / hz / res[name]["n"]
    split = ", ".join(f"{c} user {per(u):.1f} sys {per(s):.1f}" for c, (u, s) in sorted(kinds.items()) if u + s)
    print(f"{name} CPU µs/req by thread: {split}")
metrics = urllib.request.urlopen(f"http://127.0.0.1:{q}/metrics").read().decode()
def metric(name):
    return sum(float(l.split()[-1]) for l in metrics.splitlines() if l.startswith(name + " "))
batches = metric("auditgate_batches_total")
print(f"recorder batches: {batches:.0f}, {metric('auditgate_batch_entries_sum') / max(batches, 1):.1f} entries each")
PY
