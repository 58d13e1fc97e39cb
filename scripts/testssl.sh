#!/usr/bin/env bash
# docs/security.md F26: testssl.sh (Debian) against auditgate's TLS listeners, with
# a development pair made by certs/make-dev-cert.sh in a temporary directory.
# Fails when testssl reports any finding of severity HIGH or CRITICAL about
# the server; prints the protocols, ALPN and certificate lines and every
# finding of severity MEDIUM or above. `cert_revocation` (no CRL or OCSP
# URI in the certificate) is shown but not counted: it is a property of the
# certificate installed, and a development CA has neither. Usage: scripts/testssl.sh   (env: PORTS="proxy query")
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v testssl >/dev/null; then
  apt-get update -qq && apt-get install -y -qq testssl.sh >/dev/null
fi
cargo build --release --quiet --bin auditgate --example upstream

# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
OUT="$work/certs" DAYS=365 certs/make-dev-cert.sh >/dev/null
up=$(free_port); proxy=$(free_port); query=$(free_port)
target/release/examples/upstream "127.0.0.1:$up" > /dev/null &
pids+=($!)
wait_port "$up"
mkdir -p "$work/rules"
AUDITGATE_TLS__CERT="$work/certs/dev.pem" AUDITGATE_TLS__KEY="$work/certs/dev-key.pem" \
  target/release/auditgate serve --upstream "http://127.0.0.1:$up" --listen "127.0.0.1:$proxy" \
  --query-listen "127.0.0.1:$query" --database "sqlite://$work/audit.db" --rules "$work/rules" \
  > "$work/auditgate.log" 2>&1 &
pids+=($!)
wait_port "$proxy"

status=0
for name in ${PORTS:-proxy query}; do
  port=$([ "$name" = proxy ] && echo "$proxy" || echo "$query")
  json="$work/testssl-$name.json"
  echo "== testssl against the $name port (127.0.0.1:$port)"
  testssl --quiet --warnings off --nodns none --color 0 --jsonfile "$json" \
    --add-ca "$work/certs/dev-ca.pem" "https://127.0.0.1:$port" > "$work/testssl-$name.txt" 2>&1 || true
  python3 - "$json" <<'EOF' || status=1
import json, sys
findings = json.load(open(sys.argv[1]))
show = ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3", "ALPN_HTTP2", "ALPN", "cipher_order",
        "cert_subjectAltName", "cert_trust", "cert_chain_of_trust")
of_the_certificate = {"cert_revocation"}
for f in findings:
    if f["id"] in show:
        print(f"  {f['id']:<22} {f['finding']}")
bad = [f for f in findings if f["severity"] in ("HIGH", "CRITICAL") and f["id"] not in of_the_certificate]
for f in findings:
    if f["severity"] in ("MEDIUM", "HIGH", "CRITICAL"):
        print(f"  {f['severity']:<8} {f['id']}: {f['finding']}")
print(f"  {len(findings)} checks, {len(bad)} HIGH or CRITICAL")
sys.exit(1 if bad else 0)
EOF
done
exit $status
