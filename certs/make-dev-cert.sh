#!/usr/bin/env bash
# Makes a development CA and a server pair it signs, for localhost,
# 127.0.0.1 and ::1, with openssl (ECDSA P-256):
#   dev-ca.pem, dev-ca-key.pem  the CA (kept if already there; valid 365 days)
#   dev.pem                     the server certificate, then the CA (the chain served)
#   dev-key.pem                 the server's key
# Clients trust dev-ca.pem (`curl --cacert certs/dev-ca.pem https://localhost:8080/`).
# OUT=dir writes elsewhere (default: this directory); DAYS=n the server
# certificate's validity (default 30). Never commit the keys: .gitignore
# excludes *.pem here.
set -euo pipefail
out=${OUT:-$(dirname "$0")}
days=${DAYS:-30}
mkdir -p "$out"
cd "$out"
if [ ! -f dev-ca.pem ] || [ ! -f dev-ca-key.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout dev-ca-key.pem -out dev-ca.pem -days 365 -subj "/CN=auditgate development CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
ext=$(mktemp)
trap 'rm -f "$ext" dev.csr dev-leaf.pem dev-ca.srl' EXIT
printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" "basicConstraints=CA:FALSE" \
  "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" > "$ext"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout dev-key.pem -out dev.csr -subj "/CN=localhost" 2>/dev/null
openssl x509 -req -in dev.csr -CA dev-ca.pem -CAkey dev-ca-key.pem -CAcreateserial \
  -out dev-leaf.pem -days "$days" -extfile "$ext" 2>/dev/null
cat dev-leaf.pem dev-ca.pem > dev.pem
chmod 600 dev-key.pem dev-ca-key.pem
echo "wrote $(pwd)/dev.pem and dev-key.pem (valid $days days), signed by dev-ca.pem"
