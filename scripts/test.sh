#!/usr/bin/env bash
# The whole test suite, as CI runs it: format, lints, then every unit,
# property and integration test (which build and spawn the example upstream).
# Installs what the tests need: rustfmt and clippy, h2load (Debian
# nghttp2-client), Node.js (Debian) and
# json-server 0.17 (npm, pinned by tests/json-server/package-lock.json), and
# FastAPI + uvicorn in a virtualenv (PyPI, pinned by
# tests/fastapi/requirements.txt), and PostgreSQL (Debian): a throwaway
# cluster on 127.0.0.1 that the integration tests run against a second time,
# Chromium with chromedriver (Debian) for the web console's tests, and
# rsyslog (Debian; run by the tests on a port of their own, never as the
# system's logger) as a real syslog receiver for the sinks, and php-cli
# (Debian) whose built-in server runs the PHP apps under tests/php, and
# Django in a virtualenv (PyPI, pinned by tests/django/requirements.txt)
# for the server-rendered app under tests/django.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg-lib.sh

if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "== installing Node.js"
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
if ! command -v h2load >/dev/null; then
  echo "== installing h2load (nghttp2-client: many HTTP/2 streams, no entry lost)"
  apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null
fi
if ! command -v openssl >/dev/null; then
  echo "== installing openssl (the JWT tests make their keys with it)"
  apt-get update -qq && apt-get install -y -qq openssl >/dev/null
fi
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "== installing chromium and chromium-driver (the web console's browser tests)"
  apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if ! command -v php >/dev/null; then
  echo "== installing php-cli (a PHP app, served by php -S, behind auditgate in the tests)"
  apt-get update -qq && apt-get install -y -qq php-cli >/dev/null
fi
if ! command -v rsyslogd >/dev/null; then
  echo "== installing rsyslog (a real syslog receiver for the sink tests)"
  apt-get update -qq && apt-get install -y -qq rsyslog >/dev/null
fi
echo "== npm ci (json-server for the end-to-end tests)"
npm ci --prefix tests/json-server --no-audit --no-fund --loglevel=error

echo "== pip install (FastAPI and uvicorn for the end-to-end tests)"
if ! command -v python3 >/dev/null; then
  apt-get update -qq && apt-get install -y -qq python3 >/dev/null
fi
if [ ! -x tests/fastapi/.venv/bin/python ]; then
  if ! python3 -m venv tests/fastapi/.venv 2>/dev/null; then
    rm -rf tests/fastapi/.venv
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv tests/fastapi/.venv
  fi
fi
tests/fastapi/.venv/bin/pip install --quiet --disable-pip-version-check -r tests/fastapi/requirements.txt
echo "== pip install (Django, a server-rendered app with CSRF and session login)"
[ -x tests/django/.venv/bin/python ] || python3 -m venv tests/django/.venv
tests/django/.venv/bin/pip install --quiet --disable-pip-version-check -r tests/django/requirements.txt
echo "== pip install (schemathesis, against the query port's OpenAPI document)"
[ -x tests/schemathesis/.venv/bin/python ] || python3 -m venv tests/schemathesis/.venv
tests/schemathesis/.venv/bin/pip install --quiet --disable-pip-version-check -r tests/schemathesis/requirements.txt

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== the Dockerfile's build stage, from exactly what it copies"
scripts/dockerfile-check.sh
echo "== cargo test"
# A failing test's message, not a backtrace, ends its output: CI shows the
# output's start and end.
export RUST_BACKTRACE=0
# The integration tests spawn target/debug/examples/upstream: build it as a
# plain binary first (`cargo test --all-targets` would build it as a test
# harness under another name). --benches runs each criterion benchmark once.
# `allocations` counts the heap allocations of a request passed through
# (its own binary: its global allocator counts everything in the process).
cargo build --locked --examples
cargo test --locked --lib --bins --benches --test allocations
# postgres:: needs a server: run below, with everything else again.
cargo test --locked --test it -- --skip postgres::

echo "== cargo test: the integration tests again, against PostgreSQL"
# A small WAL: a full run makes some 200 databases, each written to the WAL
# whole, and a CI disk is small (the default keeps up to 1 GB of it).
PG_OPTIONS="-c fsync=off -c max_wal_size=64MB -c min_wal_size=32MB" start_postgres
trap stop_postgres EXIT
# TEST_POSTGRES_URL: every test database is made on this server (tests
# that are about SQLite itself, or about the process, keep their files);
# TEST_POSTGRES_BIN: the fault tests start and stop servers of their own.
TEST_POSTGRES_URL=$PG_URL TEST_POSTGRES_BIN=$PG_BIN cargo test --locked --test it
