#!/usr/bin/env bash
# Builds target/bulkhead_<version>_<arch>.deb with dpkg-deb from the release binary: the
# binary in /usr/bin, the systemd unit, /etc/bulkhead/config.toml (a conffile), and a
# postinst that creates the `bulkhead` user and /var/lib/bulkhead but never any key.
# Refuses a test build with the `ablation` feature. Usage: packaging/deb.sh [BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-${CARGO_TARGET_DIR:-target}/release/bulkhead}
[ -x "$binary" ] || { echo "no binary at $binary: run cargo build --release" >&2; exit 1; }
if "$binary" --version | grep -qi ablation; then
  echo "refusing to package an ablation test build" >&2; exit 1
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root"
install -D -m 0755 "$binary" "$root/usr/bin/bulkhead"
# The release profile keeps line tables for backtraces; the package ships without them.
if command -v strip >/dev/null; then strip --strip-debug "$root/usr/bin/bulkhead"; fi
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
