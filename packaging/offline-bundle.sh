#!/usr/bin/env bash
# Builds an offline bundle for an air-gapped site: the release binary, the verified models
# and the systemd unit in one tarball. Run on a machine with registry access; copy the
# tarball across the air gap; nothing is downloaded at run time.
#
# Usage: packaging/offline-bundle.sh [OUT.tar.gz]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bulkhead-offline-$(uname -m).tar.gz}
models/fetch.sh
cargo build --release --locked
# A test build that can switch isolation layers off must never ship (src/isolation.rs).
if target/release/bulkhead --version | grep -q ablation; then
    echo "refusing to bundle an ablation test build: rebuild without --features ablation" >&2
    exit 1
fi
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bulkhead/models"
cp target/release/bulkhead "$stage/bulkhead/"
cp packaging/bulkhead.service README.md "$stage/bulkhead/"
cp models/manifest.tsv models/fetch.sh "$stage/bulkhead/models/"
cp -r models/minilm models/smollm2 "$stage/bulkhead/models/"
(cd "$stage/bulkhead" && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum > SHA256SUMS)
tar -C "$stage" -czf "$out" bulkhead
echo "offline bundle: $out"
