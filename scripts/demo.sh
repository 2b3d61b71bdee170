#!/usr/bin/env bash
# Sets everything up, then runs a real backup and restore of a generated sample
# VictoriaMetrics-like snapshot on the fs:// remote, in a temporary directory,
# and prints the summaries. Pass a size in GiB to change it (default 0.25).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
scale="${1:-0.25}"
work="$(mktemp -d -t snapferry-demo.XXXXXX)"
trap 'rm -rf "$work"' EXIT
echo "== generating a ${scale} GiB sample snapshot in $work"
.venv/bin/python -m bench.datagen --workdir "$work" --scale "$scale" --seed 1 >/dev/null
snap="$(ls -d "$work"/datasets/snapshot-*/storage/snapshots/*)"
echo "== snapferry backup --src $snap --dst fs://$work/backup"
.venv/bin/snapferry backup --src "$snap" --dst "fs://$work/backup"
echo "== snapferry restore --src fs://$work/backup --dst $work/restored --json"
.venv/bin/snapferry restore --src "fs://$work/backup" --dst "$work/restored" --json
echo "== comparing the restored tree with the snapshot"
diff -r "$snap" "$work/restored" -x flock.lock && echo "identical: every file restored byte for byte"
