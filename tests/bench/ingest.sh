#!/usr/bin/env bash
# Ingest benchmark: wrk against the real binary over keep-alive connections, forwarding to the
# local fake TikTok (tests/fake_tiktok.py, which validates every request). Prints one RESULT line
# per run and the median. Not a test: run it by hand on an otherwise idle machine.
#   tests/bench/ingest.sh [RUNS=3] ; env: BATCH (events per request), CONNS, SECONDS, BIN
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
BIN=${BIN:-build/scrubgate}
BATCH=${BATCH:-1} CONNS=${CONNS:-32} SECONDS_=${SECONDS_:-10}
export BATCH
[ -x "$BIN" ] || { echo "build first: cmake -S . -B build && cmake --build build" >&2; exit 2; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
python3 tests/fake_tiktok.py --port 0 --token bench-token --pixel CBENCH > "$tmp/fake.out" &
for _ in $(seq 50); do grep -q "fake tiktok on" "$tmp/fake.out" && break; sleep 0.1; done
fake=$(sed -n 's/fake tiktok on //p' "$tmp/fake.out")
cat > "$tmp/conf.json" <<JSON
{"listen": "127.0.0.1:0", "state_dir": "$tmp/var",
 "limits": {"max_events_per_request": 1000, "max_body_bytes": 1048576},
 "sites": [{"id": "shop", "rules": "rules/default.json", "secret_env": "BENCH_SECRET",
   "destinations": [{"type": "tiktok", "pixel_code": "CBENCH", "access_token_env": "BENCH_TOKEN",
                     "api_base": "$fake"}]}]}
JSON
results=()
for r in $(seq "$RUNS"); do
    rm -rf "$tmp/var"
    BENCH_SECRET=bench-secret-0123456789 BENCH_TOKEN=bench-token "$BIN" serve -c "$tmp/conf.json" \
        2> "$tmp/serve.log" &
    pid=$!
    for _ in $(seq 50); do grep -q "listening on" "$tmp/serve.log" && break; sleep 0.1; done
    port=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/serve.log")
    line=$(wrk -t1 -c"$CONNS" -d"${SECONDS_}s" -s tests/bench/post.lua "http://127.0.0.1:$port" | grep RESULT)
    kill -TERM "$pid"; wait "$pid" || true
    accepted=$(grep -c '"status":"accepted"' "$tmp/var/sync-log.jsonl" || true)
    lines=$(wc -l < "$tmp/var/sync-log.jsonl")
    echo "run $r: $line synclog_lines=$lines accepted=$accepted"
    results+=("$(echo "$line" | sed -n 's/.*events_per_s=\([0-9]*\).*/\1/p')")
done
printf '%s\n' "${results[@]}" | sort -n | awk '{a[NR]=$1} END {print "median events_per_s=" a[int((NR+1)/2)]}'
