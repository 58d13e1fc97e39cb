#!/usr/bin/env bash
# Makes a self-signed development key pair for localhost with openssl:
# certs/dev.pem (certificate) and certs/dev-key.pem (private key).
# Never commit the key; .gitignore excludes *.pem here.
set -euo pipefail
cd "$(dirname "$0")"
days=${DAYS:-30}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout dev-key.pem -out dev.pem -days "$days" -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
  -addext "keyUsage=digitalSignature" -addext "extendedKeyUsage=serverAuth"
chmod 600 dev-key.pem
echo "wrote $(pwd)/dev.pem and $(pwd)/dev-key.pem (valid $days days)"
