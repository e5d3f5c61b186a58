#!/usr/bin/env bash
# The demo on a fresh machine: fetch and verify the models, build, run `bulkhead demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
models/fetch.sh
cargo run --release --quiet -- demo
