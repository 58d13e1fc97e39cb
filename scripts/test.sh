#!/usr/bin/env bash
# The whole test suite, as CI runs it: format, lints, then every unit,
# property and integration test (which build and spawn the example upstream).
# Installs what the tests need; today that is only the Rust toolchain's
# rustfmt and clippy components.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
# The integration tests spawn target/debug/examples/upstream: build it as a
# plain binary first (`cargo test --all-targets` would build it as a test
# harness under another name). --benches runs each criterion benchmark once.
cargo build --locked --examples
cargo test --locked --lib --bins --tests --benches
