#!/usr/bin/env bash
# The web view over one large day: how long the first search page and a timer's histogram take,
# and the server's peak memory (VmHWM). Usage: bash bench/web.sh [BYTES]  (default 1 GiB; the log
# directory goes to $TMPDIR and is removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
bytes=${1:-1073741824}
target=${CARGO_TARGET_DIR:-target}
cargo build -q --release -p ziggyview -p ziggy-examples --bin ziggyview --bin gen_events
logs=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$logs"' EXIT
"$target/release/gen_events" --log-path "$logs" "$bytes"
du -sh "$logs/20240229"
cat "$logs"/20240229/*.bson > /dev/null # the page cache holds the day, as on a server that wrote it
"$target/release/ziggyview" serve --log-path "$logs" --listen 127.0.0.1:0 > "$logs/serve.out" &
server=$!
for _ in $(seq 50); do grep -q serving "$logs/serve.out" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's#^serving \(http://[^ ]*\)/$#\1#p' "$logs/serve.out")
rss() { awk -v k="$1:" '$1 == k { print $2 / 1024 " MiB" }' "/proc/$server/status"; }
timed() { # NAME PATH: seconds to answer, answer size, events or values in it
  local out
  out=$(curl -s -o "$logs/answer.json" -w '%{http_code} %{time_total} %{size_download}' "$base$2")
  printf '%-44s HTTP %s  %6.3f s  %9d bytes\n' "$1" $out
}
echo "server $base, RSS after start $(rss VmRSS)"
day="from=20240229&to=20240229"
for run in 1 2 3; do
  timed "search, first page (request*)" "/api/search?channel=request*&$day"
done
timed "search, first page (rare, 1%)" "/api/search?channel=rare&$day"
timed "search, filter no event matches (1 s cap)" "/api/search?channel=request&filter=request_time%3E5&$day"
next=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["next"])' "$logs/answer.json")
timed "  ... its next page" "/api/search?channel=request&filter=request_time%3E5&$day&cursor=$next"
timed "one request (id of event 300,000)" "/api/request?id=$(printf '%032x' 100000)&$day"
timed "timers: request_time of request" "/api/timers?channel=request&key=request_time&$day"
python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["channels"][0]; print("  count %d p50 %.4f p90 %.4f p99 %.4f, %d minutes" % (c["count"], c["p50"], c["p90"], c["p99"], len(c["per_minute"])))' "$logs/answer.json"
timed "timers: request_time of request*" "/api/timers?channel=request*&key=request_time&$day"
echo "server peak RSS (VmHWM) $(rss VmHWM), now $(rss VmRSS)"
time_cli=$( { /usr/bin/time -f '%e s, peak %M KiB' "$target/release/ziggyview" --log-path "$logs" request \
  --start-date 20240229 --end-date 20240229 --stats request_time > /dev/null; } 2>&1 )
echo "ziggyview --stats request_time (the same numbers, CLI): $time_cli"
