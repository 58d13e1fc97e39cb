#!/usr/bin/env bash
# A/B on the pass-through path: two auditgate builds side by side in front of
# one upstream, alternated RUNS times (`scripts/bench-sides.sh` with two
# variants); prints requests/s and the proxy's CPU µs per request.
# Usage: A=old/auditgate B=target/release/auditgate scripts/bench-ab.sh
#        (env: RUNS=8; AG_THREADS: both builds' worker_threads;
#        UPSTREAM=example|nginx: the example app or nginx answering JSON)
# Run it with A and B swapped too: on a 2-core box the second of a pair is
# measured a few percent worse even when both are the same build.
set -euo pipefail
cd "$(dirname "$0")/.."
A=${A:?the first build}
B=${B:-target/release/auditgate}
RUNS=${RUNS:-8} UPSTREAM=${UPSTREAM:-example} exec scripts/bench-sides.sh "a||$A" "b||$B"
