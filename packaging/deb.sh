#!/usr/bin/env bash
# Builds target/bulkhead_<version>_<arch>.deb with dpkg-deb from the release binaries: the
# default x86-64-v3 build and a baseline x86-64 build for CPUs without AVX2 (the v3 one
# stops there with an illegal instruction) in /usr/lib/bulkhead, and /usr/bin/bulkhead, a
# launcher that picks one by the CPU's flags at every start; the systemd unit,
# /etc/bulkhead/config.toml (a conffile), and a postinst that creates the `bulkhead` user
# and /var/lib/bulkhead but never any key. Refuses a test build with the `ablation`
# feature. Usage: packaging/deb.sh [BINARY [BASELINE_BINARY]]; the baseline is built with
#   RUSTFLAGS="-C target-cpu=x86-64" cargo build --release --target-dir target/baseline
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-${CARGO_TARGET_DIR:-target}/release/bulkhead}
baseline=${2:-target/baseline/release/bulkhead}
[ -x "$binary" ] || { echo "no binary at $binary: run cargo build --release" >&2; exit 1; }
[ -x "$baseline" ] || {
  echo "no baseline binary at $baseline: run RUSTFLAGS=\"-C target-cpu=x86-64\" cargo build --release --target-dir target/baseline" >&2
  exit 1
}
for build in "$binary" "$baseline"; do
  if "$build" --version | grep -qi ablation; then
    echo "refusing to package an ablation test build ($build)" >&2; exit 1
  fi
done
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root"
install -D -m 0755 "$binary" "$root/usr/lib/bulkhead/bulkhead-x86-64-v3"
install -D -m 0755 "$baseline" "$root/usr/lib/bulkhead/bulkhead-x86-64"
install -D -m 0755 packaging/deb/bulkhead-launcher "$root/usr/bin/bulkhead"
# The release profile keeps line tables for backtraces; the package ships without them.
if command -v strip >/dev/null; then
  strip --strip-debug "$root/usr/lib/bulkhead/bulkhead-x86-64-v3" "$root/usr/lib/bulkhead/bulkhead-x86-64"
fi
sed -e 's#/usr/local/bin/bulkhead serve --listen 127.0.0.1:8080#/usr/bin/bulkhead serve --config /etc/bulkhead/config.toml#' \
  -e '/^# systemd unit/,/^#   systemctl enable/d' packaging/bulkhead.service \
  | install -D -m 0644 /dev/stdin "$root/lib/systemd/system/bulkhead.service"
install -D -m 0644 packaging/deb/config.toml "$root/etc/bulkhead/config.toml"
install -D -m 0644 packaging/deb/README.Debian "$root/usr/share/doc/bulkhead/README.Debian"
install -d -m 0755 "$root/var/lib/bulkhead"
install -d -m 0755 "$root/DEBIAN"
install -m 0755 packaging/deb/postinst "$root/DEBIAN/postinst"
echo /etc/bulkhead/config.toml > "$root/DEBIAN/conffiles"
size=$(du -sk "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: bulkhead
Version: $version
Architecture: $arch
Maintainer: Bulkhead maintainers <bulkhead@localhost>
Installed-Size: $size
Depends: adduser, libc6
Section: net
Priority: optional
Description: multi-tenant contract Q&A appliance
 One binary: per-tenant encrypted indexes, local models, grounded answers with
 citations, an HTTP API, a web app and an OpenAI-compatible endpoint.
CONTROL
out="${CARGO_TARGET_DIR:-target}/bulkhead_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$out" >/dev/null
echo "$out"
