#!/usr/bin/env bash
# An audited form post against an audited JSON PATCH of the same fields,
# side by side in one run on 127.0.0.1 (issue 33): two PHP apps on `php -S`,
# each behind its own auditgate (release build, SQLite, default settings):
# tests/php/customers.php, whose state is its edit page's form (a post
# urlencoded, answered 302; the before- and after-snapshots are pages read
# by their form), and tests/php/users.php, a JSON API (PATCH answered with
# the JSON state). N requests each, one at a time on one kept-alive
# connection, each changing one field of six; prints the p50 latency
# through auditgate and direct to the app, and auditgate's CPU per audited
# request (utime + stime of its process over the run: proxy, snapshots,
# reading, diff, writer), then checks each request has its entry.
#
# Usage: scripts/bench-forms.sh   (env: N=2000)
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-2000}
command -v php >/dev/null || { apt-get update -qq && apt-get install -y -qq php-cli >/dev/null; }
cargo build --release --quiet --bin auditgate

# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

serve_php() { # script port
  mkdir -p "$work/$1"
  APP_DB="$work/$1/rows.json" php -S "127.0.0.1:$2" "tests/php/$1" > /dev/null 2>&1 &
  pids+=($!)
}
serve_auditgate() { # name upstream-port proxy-port query-port [env...]
  local name=$1 up=$2 ag=$3 q=$4
  shift 4
  mkdir -p "$work/ag-$name/rules"
  env RUST_LOG=warn AUDITGATE_RECORDER__SPOOL="$work/ag-$name/audit.spool" "$@" \
    target/release/auditgate serve --upstream "http://127.0.0.1:$up" --listen "127.0.0.1:$ag" \
    --query-listen "127.0.0.1:$q" --rules "$work/ag-$name/rules" \
    --database "sqlite://$work/ag-$name/audit.db" > /dev/null 2>&1 &
  pids+=($!)
}

forms_up=$(free_port); forms_ag=$(free_port); forms_q=$(free_port)
json_up=$(free_port); json_ag=$(free_port); json_q=$(free_port)
serve_php customers.php "$forms_up"
serve_php users.php "$json_up"
mkdir -p "$work/ag-forms/rules"
cp tests/php/customers.toml "$work/ag-forms/rules/resources.toml"
serve_auditgate forms "$forms_up" "$forms_ag" "$forms_q" \
  AUDITGATE_ACTOR__WHOAMI_URL=/whoami AUDITGATE_ACTOR__WHOAMI_FIELD=/username
forms_pid=${pids[-1]}
serve_auditgate json "$json_up" "$json_ag" "$json_q"
json_pid=${pids[-1]}
for p in "$forms_up" "$json_up" "$forms_ag" "$json_ag"; do wait_port "$p"; done

# One client, one kept-alive connection, N changes; prints "p50_ms".
client() { # kind port
  python3 - "$1" "$2" "$N" <<'PY'
import http.client, re, statistics, sys, time, urllib.parse
kind, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port)
def call(method, path, body=None, headers=None):
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    return r, data
fields = {"email": "ann@example.com", "plan": "pro", "notes": "a customer since 2019", "active": "1",
          "tags[]": "vip"}
times = []
if kind == "forms":
    r, _ = call("POST", "/login/", "username=alice&password=wonder",
                {"Content-Type": "application/x-www-form-urlencoded"})
    cookie = r.getheader("Set-Cookie").split(";")[0]
    _, page = call("GET", "/customers/new/", headers={"Cookie": cookie})
    token = re.search(rb'name="_token" value="([^"]+)"', page).group(1).decode()
    form = lambda name: urllib.parse.urlencode({"_token": token, "name": name, **fields})
    h = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
    call("POST", "/customers/new/", form("Ann"), h)
    for i in range(n):
        t = time.perf_counter()
        r, _ = call("POST", "/customers/1/edit/", form(f"Ann {i % 2}"), h)
        times.append(time.perf_counter() - t)
        assert r.status == 302, r.status
else:
    import json
    h = {"Authorization": "Basic YWxpY2U6cHc=", "Content-Type": "application/json"}
    state = {k.rstrip("[]"): ([v] if k.endswith("[]") else v) for k, v in fields.items()}
    call("POST", "/api/v1/users/", json.dumps({"name": "Ann", **state}), h)
    for i in range(n):
        t = time.perf_counter()
        r, _ = call("PATCH", "/api/v1/users/1", json.dumps({"name": f"Ann {i % 2}", **state}), h)
        times.append(time.perf_counter() - t)
        assert r.status == 200, r.status
print(f"{statistics.median(times) * 1000:.3f}")
PY
}

entries() { # query-port
  python3 -c "import json,sys,urllib.request
n=0; cur=''
while True:
    d=json.load(urllib.request.urlopen('http://127.0.0.1:$1/api/v1/audit-logs?limit=1000'+cur))
    n+=len(d['items'])
    if not d['next_cursor']: break
    cur='&cursor='+d['next_cursor']
print(n)"
}

run() { # kind app-port auditgate-port auditgate-pid query-port
  local direct through before after cpu
  direct=$(client "$1" "$2")
  before=$(ticks "$4")
  through=$(client "$1" "$3")
  after=$(ticks "$4")
  sleep 1
  cpu=$(( (after - before) * 1000000 / $(getconf CLK_TCK) / N ))
  echo "$1: p50 direct ${direct} ms, through auditgate ${through} ms, auditgate CPU ${cpu} µs per audited request, entries $(entries "$5")"
}

echo "N=$N changes of one field of six, one at a time"
run forms "$forms_up" "$forms_ag" "$forms_pid" "$forms_q"
run json "$json_up" "$json_ag" "$json_pid" "$json_q"
