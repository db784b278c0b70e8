#!/usr/bin/env bash
# End to end: app threads → local ziggyd → master ziggyd → files, against raw ZeroMQ
# PUSH → PULL → file of the same number of same-size messages, in the same run; and the local
# daemon's peak RSS under a burst with the master down.
# Usage: bash bench/e2e.sh [EVENTS] [THREADS]   (defaults 2000000, 2)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000000}; threads=${2:-2}
cargo build -q --release -p ziggyd -p ziggy-examples --bin ziggyd --bin e2e_load
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mc=$(free_port); mk=$(free_port); lc=$(free_port); lk=$(free_port)
pids=()
trap 'kill ${pids[@]} 2>/dev/null; rm -rf "$work"' EXIT
./target/release/ziggyd -H 127.0.0.1:$mc --control 127.0.0.1:$mk --log-path "$work/logs" > /dev/null & pids+=($!)
./target/release/ziggyd -H 127.0.0.1:$lc --control 127.0.0.1:$lk --publish 127.0.0.1:$mc --publish-control 127.0.0.1:$mk --spool-dir "$work/spool" > /dev/null & pids+=($!)
sleep 0.5
written() { ./target/release/ziggyd --control 127.0.0.1:$mk status --json | python3 -c 'import sys,json; print(json.load(sys.stdin)["events_written"])'; }
start=$(date +%s.%N)
read emitted dropped app_s < <(./target/release/e2e_load ziggy 127.0.0.1:$lc "$n" "$threads")
while [ "$(written)" -lt "$((emitted - dropped))" ]; do sleep 0.05; done
end=$(date +%s.%N)
e2e_s=$(echo "$end - $start" | bc -l)
size=$(python3 -c "import os,glob; fs=glob.glob('$work/logs/*/*.bson'); print(sum(os.path.getsize(f) for f in fs)//$emitted)")
raw_s=$(./target/release/e2e_load raw "$emitted" "$size" "$work/raw.bin")
printf 'ziggy e2e: %d events (%d dropped by the app) of ~%d B in %.2f s = %.0f events/s (app side done in %.2f s)\n' "$emitted" "$dropped" "$size" "$e2e_s" "$(echo "$emitted / $e2e_s" | bc -l)" "$app_s"
printf 'raw ZeroMQ PUSH→PULL→file: %d messages in %.2f s = %.0f msgs/s\n' "$emitted" "$raw_s" "$(echo "$emitted / $raw_s" | bc -l)"
printf 'ratio: %.0f%%\n' "$(echo "100 * $raw_s / $e2e_s" | bc -l)"
