#!/usr/bin/env bash
# Pass-through over TLS, side by side in one run on 127.0.0.1: nginx and
# auditgate terminating TLS with the same pair (ECDSA P-256, from
# certs/make-dev-cert.sh) in front of the same cleartext upstream. Two loads,
# alternated RUNS times, medians shown:
# - keep-alive: CONNS connections reused (req/s, p50/p99, CPU µs a request);
# - handshakes: `Connection: close`, so every request is a new connection
#   and a full handshake (nginx's session cache and tickets are off).
# Prints the TLS version and suite each one chose for wrk's OpenSSL client.
# Usage: scripts/bench-tls.sh   (env: THREADS=1 CONNS=64 DURATION=8 RUNS=3)
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=${THREADS:-1}
CONNS=${CONNS:-64}
DURATION=${DURATION:-8}
RUNS=${RUNS:-3}

if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk nginx-light >/dev/null
fi
cargo build --release --quiet --bin auditgate --example upstream

# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
OUT="$work/certs" certs/make-dev-cert.sh > /dev/null
cert="$work/certs/dev.pem"; key="$work/certs/dev-key.pem"
chmod 644 "$key"   # nginx's workers read it as another user
up=$(free_port); ngx=$(free_port); ag=$(free_port)
target/release/examples/upstream "127.0.0.1:$up" "$THREADS" > /dev/null &
pids+=($!)
wait_port "$up"
ngx_pid=$(start_nginx "$ngx" "$up" "$THREADS" "$cert" "$key")
mkdir -p "$work/rules"
RUST_LOG=warn AUDITGATE_WORKER_THREADS=$THREADS AUDITGATE_TLS__CERT=$cert AUDITGATE_TLS__KEY=$key \
  target/release/auditgate serve --upstream "http://127.0.0.1:$up" --listen "127.0.0.1:$ag" \
  --rules "$work/rules" --query-listen 127.0.0.1:0 --database "sqlite://$work/audit.db" 2> "$work/auditgate.log" &
ag_pid=$!
pids+=("$ag_pid")
wait_port "$ag"

for port in "$ngx" "$ag"; do
  echo | openssl s_client -connect "127.0.0.1:$port" -CAfile "$work/certs/dev-ca.pem" 2>/dev/null \
    | awk -v p="$port" '/^New, / {print "  port " p ": " $0}'
done

ngx_all() { echo "$ngx_pid" $(pgrep -P "$ngx_pid" || true); }
for _ in $(seq "$RUNS"); do
  for load in keepalive handshake; do
    if [ "$load" = handshake ]; then export WRK_HEADER="Connection: close"; else export WRK_HEADER=""; fi
    # shellcheck disable=SC2046
    measure "nginx/$load" "https://127.0.0.1:$ngx/" $(ngx_all)
    measure "auditgate/$load" "https://127.0.0.1:$ag/" "$ag_pid"
  done
done

python3 - "$work/results.tsv" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
by = {}
for name, *vals in rows:
    by.setdefault(name, []).append([float(v) for v in vals])
med = {n: [statistics.median(col) for col in zip(*vs)] for n, vs in by.items()}
print("| load | server | req/s | p50 ms | p99 ms | CPU µs/req | non-2xx |")
print("|---|---|---|---|---|---|---|")
for load in ["keepalive", "handshake"]:
    for server in ["nginx", "auditgate"]:
        rps, p50, p99, cpu, err = med[f"{server}/{load}"]
        print(f"| {load} | {server} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {cpu:.1f} | {err:.0f} |")
for load in ["keepalive", "handshake"]:
    a, g = med[f"auditgate/{load}"], med[f"nginx/{load}"]
    print(f"{load}: auditgate / nginx throughput {a[0]/g[0]:.2f}x, p99 {a[2]/g[2]:.2f}x, CPU per request {a[3]/g[3]:.2f}x")
print(f"runs: {len(by['auditgate/keepalive'])} (medians shown)")
PY
