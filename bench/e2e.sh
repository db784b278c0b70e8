#!/usr/bin/env bash
# End to end: app threads → local ziggyd → master ziggyd → files, against raw ZeroMQ
# PUSH → PULL → file of the same number of same-size messages, in the same run; and the latency
# from an event's `end` to its bytes in the master's file (a probe event every 5 ms), idle and
# under that load. (The local daemon's memory under a burst: bench/burst.sh.)
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
read probes p50 p99 pmax < <(./target/release/e2e_load probe 127.0.0.1:$lc "$work/logs" 2)
printf 'latency end→in the master file, idle: %d probes, p50 %.1f ms, p99 %.1f ms, max %.1f ms\n' "$probes" "$p50" "$p99" "$pmax"
./target/release/e2e_load probe 127.0.0.1:$lc "$work/logs" 4 > "$work/probe.out" &
probe_pid=$!
start=$(date +%s.%N)
read emitted dropped app_s < <(./target/release/e2e_load ziggy 127.0.0.1:$lc "$n" "$threads")
# Wait until the master has written what the app sent (or nothing moved for 5 s: what ZeroMQ
# still held when the app exited past its 5 s linger is lost, and reported below). The waiter
# asks STATUS every 10 ms from one small process: a poller that starts an interpreter per look
# would take a good part of a core from the daemons being measured.
read w end < <(./target/release/e2e_load wait 127.0.0.1:$mk "$((emitted - dropped))")
wait $probe_pid
read probes p50 p99 pmax < "$work/probe.out"
printf 'latency end→in the master file, under load: %d probes, p50 %.1f ms, p99 %.1f ms, max %.1f ms\n' "$probes" "$p50" "$p99" "$pmax"
rm -f "$work/logs"/*/probe.*
echo "written by the master: $w of $emitted"
emitted=$w
e2e_s=$(echo "$end - $start" | bc -l)
size=$(python3 -c "import os,glob; fs=glob.glob('$work/logs/*/*.bson'); print(sum(os.path.getsize(f) for f in fs)//$emitted)")
raw_s=$(./target/release/e2e_load raw "$emitted" "$size" "$work/raw.bin")
printf 'ziggy e2e: %d events (%d dropped by the app) of ~%d B in %.2f s = %.0f events/s (app side done in %.2f s)\n' "$emitted" "$dropped" "$size" "$e2e_s" "$(echo "$emitted / $e2e_s" | bc -l)" "$app_s"
printf 'raw ZeroMQ PUSH→PULL→file: %d messages in %.2f s = %.0f msgs/s\n' "$emitted" "$raw_s" "$(echo "$emitted / $raw_s" | bc -l)"
printf 'ratio: %.0f%%\n' "$(echo "100 * $raw_s / $e2e_s" | bc -l)"
