#!/usr/bin/env bash
# The web example under load: ziggyd (files under a temp dir) ← the instrumented axum service ←
# a few thousand HTTP requests from curl; then the events through ziggyview --group and --stats.
# Usage: bash examples/load.sh [REQUESTS]   (default 3000; users 1..2000 exist, the rest are 404s)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-3000}
command -v curl > /dev/null || { echo "load.sh needs curl"; exit 2; }
cargo build -q --release -p ziggyd -p ziggyview -p ziggy-examples --bin ziggyd --bin ziggyview --bin web
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
collect=$(free_port); control=$(free_port); http=$(free_port)
./target/release/ziggyd -H 127.0.0.1:$collect --control 127.0.0.1:$control --log-path "$work/logs" > "$work/ziggyd.out" &
zpid=$!
./target/release/web 127.0.0.1:$http 127.0.0.1:$collect > "$work/web.out" &
wpid=$!
trap 'kill $wpid $zpid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$http/users/1" && break; sleep 0.1; done
curl -s -H "x-request-id: load-test-0001" "http://127.0.0.1:$http/users/7"; echo
start=$(date +%s.%N)
curl -s --parallel --parallel-max 16 -o /dev/null "http://127.0.0.1:$http/users/[1-$n]" 2> /dev/null
end=$(date +%s.%N)
echo "$n requests in $(echo "$end - $start" | bc -l | cut -c1-5) s"
sleep 1.5 # one flush interval
./target/release/ziggyd --control 127.0.0.1:$control status | head -12
echo "--- one request, grouped (id from the x-request-id header):"
./target/release/ziggyview --log-path "$work/logs" 'request*' --group --color never | grep -A12 "group load-test-0001"
echo "--- timers:"
./target/release/ziggyview --log-path "$work/logs" 'request*' --stats request_time | head -4
./target/release/ziggyview --log-path "$work/logs" request.db --stats query_time | head -4
for ch in request request.db; do
  echo "--- $ch: $(./target/release/ziggyview --log-path "$work/logs" $ch --json | grep -c '"error"') events carry body.error"
done
