#!/usr/bin/env bash
# ziggyd's memory under a burst with its master down: EVENTS events from 2 app threads into a
# local ziggyd that forwards to a master that is not running, so everything goes to the spool.
# Prints the local daemon's RSS each second and its peak (VmHWM). Goal: peak ≤ 64 MiB.
# Usage: bash bench/burst.sh [EVENTS]   (default 10000000)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000000}
cargo build -q --release -p ziggyd -p ziggy-examples --bin ziggyd --bin e2e_load
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
lc=$(free_port); lk=$(free_port); dead=$(free_port); deadk=$(free_port)
./target/release/ziggyd -H 127.0.0.1:$lc --control 127.0.0.1:$lk --publish 127.0.0.1:$dead \
  --publish-control 127.0.0.1:$deadk --spool-dir "$work/spool" > /dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
sleep 0.5
rss() { awk '/^VmRSS/ {print int($2/1024)}' /proc/$pid/status; }
( while kill -0 $pid 2>/dev/null; do printf '%s ' "$(rss)"; sleep 1; done ) > "$work/rss" &
sampler=$!
read emitted dropped app_s < <(./target/release/e2e_load ziggy 127.0.0.1:$lc "$n" 2)
# Until the daemon has spooled all it received.
spooled() { ./target/release/ziggyd --control 127.0.0.1:$lk status --json | python3 -c 'import sys,json; s=json.load(sys.stdin); print(s["events_in"], s["forward"]["spooled"], s["forward"]["spool_bytes"])'; }
for _ in $(seq 600); do
  read got done bytes < <(spooled)
  [ "$got" -ge "$((emitted - dropped))" ] && [ "$done" -eq "$got" ] && break
  sleep 0.5
done
sleep 1
kill $sampler 2>/dev/null || true
echo "emitted $emitted, dropped by the app $dropped, spooled $done, spool $((bytes / 1048576)) MiB on disk, app side $app_s s"
echo "local ziggyd RSS each second (MiB): $(cat "$work/rss")"
echo "peak (VmHWM): $(awk '/^VmHWM/ {print int($2/1024)}' /proc/$pid/status) MiB"
