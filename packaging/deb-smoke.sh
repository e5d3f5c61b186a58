#!/usr/bin/env bash
# CI: builds the .deb, installs it with dpkg -i, runs `bulkhead doctor` and a smoke test
# (init, tenant, ingest, ask) from /usr/bin/bulkhead on a temporary data directory with the
# repository's models, then the same ask with the baseline x86-64 build the package ships
# for CPUs without AVX2. Needs root (dpkg). Builds the release binary first (the test
# suite's last step leaves the test-only `ablation` build in target/release, which deb.sh
# refuses), and the baseline in its own target directory (its dependencies compile again
# for the other CPU target: several minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin bulkhead
RUSTFLAGS="-C target-cpu=x86-64" cargo build --release --locked --bin bulkhead \
  --target-dir target/baseline
deb=$(packaging/deb.sh target/release/bulkhead target/baseline/release/bulkhead)
dpkg -i "$deb" >/dev/null
test -x /usr/bin/bulkhead
getent passwd bulkhead >/dev/null
test -f /etc/bulkhead/config.toml && test -f /lib/systemd/system/bulkhead.service
test ! -e /var/lib/bulkhead/data/master.key   # the package never creates keys
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
run() { /usr/bin/bulkhead --data-dir "$data/data" --models-dir "$PWD/models" "$@"; }
run init >/dev/null
run doctor
tenant=$(run tenant create "Smoke Test")
run ingest --tenant "$tenant" data/contracts/LifewayFoods* >/dev/null
answer=$(run ask --tenant "$tenant" "Which state's laws govern the Lifeway endorsement agreement?")
echo "$answer" | grep -q Illinois || { echo "smoke ask failed: $answer" >&2; exit 1; }
# The baseline build, run directly (the launcher picks the v3 one on this CPU).
test -x /usr/lib/bulkhead/bulkhead-x86-64-v3
baseline=$(/usr/lib/bulkhead/bulkhead-x86-64 --data-dir "$data/data" --models-dir "$PWD/models" \
  ask --tenant "$tenant" "Which state's laws govern the Lifeway endorsement agreement?")
echo "$baseline" | grep -q Illinois || { echo "baseline smoke ask failed: $baseline" >&2; exit 1; }
echo "deb smoke test passed: $deb"
