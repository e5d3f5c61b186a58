#!/usr/bin/env bash
# The whole test suite on a fresh machine: fetch and verify the models, check formatting
# and lints, then run every test with the real models (release profile: candle is too slow
# unoptimised, and one profile means one dependency build).
set -euo pipefail
cd "$(dirname "$0")/.."
models/fetch.sh
cargo fmt --all -- --check
cargo clippy --release --all-targets -- -D warnings
cargo test --release
