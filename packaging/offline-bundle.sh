#!/usr/bin/env bash
# Builds an offline bundle for an air-gapped site: the release binaries (the default
# x86-64-v3 build, a baseline x86-64 build for CPUs without AVX2, and the launcher that
# picks one at every start, as the .deb does), the verified models,
# the systemd unit, a CycloneDX SBOM (sbom.cdx.json, from Cargo.lock), SHA256SUMS of every
# file, and install.sh, which verifies both before installing. Run on a machine with registry access; copy the
# tarball across the air gap; nothing is downloaded at run time.
#
# Usage: packaging/offline-bundle.sh [OUT.tar.gz]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bulkhead-offline-$(uname -m).tar.gz}
models/fetch.sh
cargo build --release --locked
RUSTFLAGS="-C target-cpu=x86-64" cargo build --release --locked --target-dir target/baseline
# A test build that can switch isolation layers off must never ship (src/isolation.rs).
for build in target/release/bulkhead target/baseline/release/bulkhead; do
    if "$build" --version | grep -q ablation; then
        echo "refusing to bundle an ablation test build ($build): rebuild without --features ablation" >&2
        exit 1
    fi
done
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bulkhead/models"
cp target/release/bulkhead "$stage/bulkhead/bulkhead-x86-64-v3"
cp target/baseline/release/bulkhead "$stage/bulkhead/bulkhead-x86-64"
cp packaging/deb/bulkhead-launcher "$stage/bulkhead/bulkhead-launcher"
if command -v strip >/dev/null; then
    strip --strip-debug "$stage/bulkhead/bulkhead-x86-64-v3" "$stage/bulkhead/bulkhead-x86-64"
fi
cp packaging/bulkhead.service packaging/install.sh README.md "$stage/bulkhead/"
packaging/sbom.py Cargo.lock > "$stage/bulkhead/sbom.cdx.json"
cp models/manifest.tsv models/optional.tsv models/fetch.sh "$stage/bulkhead/models/"
cp -rL models/minilm models/smollm2 "$stage/bulkhead/models/"
(cd "$stage/bulkhead" && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum > SHA256SUMS)
PREFIX="$stage/check" "$stage/bulkhead/install.sh" >/dev/null   # the bundle verifies as shipped
rm -rf "$stage/check"
tar -C "$stage" -czf "$out" bulkhead
echo "offline bundle: $out"
