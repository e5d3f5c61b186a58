#!/usr/bin/env bash
# Installs an offline bundle (run from the unpacked bundle as root): verifies every file
# against SHA256SUMS and that the SBOM is among them, then installs the two builds to
# /usr/local/lib/bulkhead and, as /usr/local/bin/bulkhead, the launcher that runs the
# x86-64-v3 one where the CPU has its features and the baseline one elsewhere; the systemd unit, the models to /var/lib/bulkhead/models and creates the
# `bulkhead` user. Never creates keys: `bulkhead init` is the operator's step.
# PREFIX (default /) installs under another root, for tests.
set -euo pipefail
cd "$(dirname "$0")"
prefix=${PREFIX:-/}
[ -f SHA256SUMS ] || { echo "SHA256SUMS is missing: the bundle is incomplete" >&2; exit 1; }
grep -q ' \./sbom\.cdx\.json$' SHA256SUMS || { echo "the SBOM is not covered by SHA256SUMS" >&2; exit 1; }
# Every file of the bundle must be listed (nothing added) and match (nothing changed).
listed=$(sed 's/^[0-9a-f]*  //' SHA256SUMS | sort)
present=$(find . -type f ! -name SHA256SUMS | sort)
[ "$listed" = "$present" ] || { echo "the bundle's files differ from SHA256SUMS" >&2; exit 1; }
sha256sum --quiet -c SHA256SUMS || { echo "checksum mismatch: do not install this bundle" >&2; exit 1; }
python3 -c 'import json,sys; d=json.load(open("sbom.cdx.json")); sys.exit(d.get("bomFormat")!="CycloneDX")' \
  || { echo "sbom.cdx.json is not a CycloneDX SBOM" >&2; exit 1; }
echo "bundle verified: $(wc -l < SHA256SUMS) files, SBOM $(python3 -c 'import json; print(len(json.load(open("sbom.cdx.json"))["components"]))') components"
install -D -m 0755 bulkhead-x86-64-v3 "$prefix/usr/local/lib/bulkhead/bulkhead-x86-64-v3"
install -D -m 0755 bulkhead-x86-64 "$prefix/usr/local/lib/bulkhead/bulkhead-x86-64"
sed 's#^dir=/usr/lib/bulkhead$#dir=/usr/local/lib/bulkhead#' bulkhead-launcher \
  | install -D -m 0755 /dev/stdin "$prefix/usr/local/bin/bulkhead"
grep -q '^dir=/usr/local/lib/bulkhead$' "$prefix/usr/local/bin/bulkhead" \
  || { echo "the launcher does not point at /usr/local/lib/bulkhead" >&2; exit 1; }
install -D -m 0644 bulkhead.service "$prefix/etc/systemd/system/bulkhead.service"
install -d -m 0755 "$prefix/var/lib/bulkhead/models"
cp -r models/. "$prefix/var/lib/bulkhead/models/"
if [ "$prefix" = / ]; then
  getent passwd bulkhead >/dev/null || useradd --system --home /var/lib/bulkhead --shell /usr/sbin/nologin bulkhead
  install -d -o bulkhead -g bulkhead -m 0700 /var/lib/bulkhead/data
  chown -R bulkhead:bulkhead /var/lib/bulkhead
fi
echo "installed. Next: sudo -u bulkhead bulkhead --data-dir /var/lib/bulkhead/data init; bulkhead doctor; systemctl enable --now bulkhead"
