#!/usr/bin/env bash
# Recorder throughput into PostgreSQL and the batching methods compared
# (benches/postgres.rs), on a throwaway local cluster started here.
# PG_OPTIONS: server settings (default `-c fsync=off`; pass
# PG_OPTIONS="-c fsync=on" to pay for real flushes).
# ENTRIES, BATCH: see benches/postgres.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg-lib.sh
start_postgres
trap stop_postgres EXIT
SERVER=$PG_URL cargo bench --locked --bench postgres
