#!/usr/bin/env bash
# Instructions per call of the application thread's hot path, counted by callgrind (repeatable
# whatever else the machine runs). Usage: bash bench/callgrind.sh [COUNT]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-20000}
cargo build -q --release -p ziggy --example hot_path
exe=target/release/examples/hot_path
out=$(mktemp -d)
for mode in bare disabled enabled; do
  fn='hot_path::handle'
  [ "$mode" = bare ] && fn='hot_path::bare'
  valgrind --tool=callgrind --callgrind-out-file="$out/$mode" --toggle-collect="$fn" \
    "$exe" "$mode" "$count" >/dev/null 2>"$out/$mode.log"
  total=$(grep -E '^(summary|totals):' "$out/$mode" | head -1 | awk '{print $2}')
  awk -v m="$mode" -v t="$total" -v n="$count" \
    'BEGIN { printf "%-9s %10.1f instructions per call\n", m, t / n }'
done
echo "profiles in $out (callgrind_annotate $out/enabled)"
