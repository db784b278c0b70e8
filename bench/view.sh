#!/usr/bin/env bash
# ziggyview throughput on a large channel file, against `cat` of the same file in the same run.
# Usage: bash bench/view.sh [BYTES]   (default 1 GiB; the file goes to $TMPDIR and is removed)
set -euo pipefail
cd "$(dirname "$0")/.."
bytes=${1:-1073741824}
cargo build -q --release -p ziggyview -p ziggy-examples --bin ziggyview --bin gen_events
file=$(mktemp --suffix=.bson)
trap 'rm -f "$file"' EXIT
./target/release/gen_events "$file" "$bytes"
events=$(./target/release/ziggyview --json "$file" | wc -l)
cat "$file" > /dev/null # warm the page cache so both read from memory
secs() { local s e; s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
for run in 1 2 3; do
  cat_s=$(secs cat "$file")
  filter_s=$(secs ./target/release/ziggyview --channel rare --json "$file")
  json_s=$(secs ./target/release/ziggyview --json "$file")
  printf 'run %d: cat %.3f s (%.0f MB/s) | filter 1%% %.3f s (%.0f MB/s, %.0f%% of cat) | --json all %.3f s (%.0f events/s)\n' \
    "$run" "$cat_s" "$(echo "$bytes / $cat_s / 1000000" | bc -l)" "$filter_s" "$(echo "$bytes / $filter_s / 1000000" | bc -l)" \
    "$(echo "100 * $cat_s / $filter_s" | bc -l)" "$json_s" "$(echo "$events / $json_s" | bc -l)"
done
