#!/usr/bin/env bash
# Benchmark: ingest throughput while TikTok throttles everything, against the healthy figure
# in the same run. Two upstreams on 127.0.0.1 (nginx): one answers code 0, the other code 40100
# (rate limited) to every request. For each: start the proxy, (throttled only) fill the retry
# backlog with PREFILL events, then wrk posts single events over CONNS keep-alive connections
# for SECONDS_ and reports events/s and p99. The figure to watch is the ratio throttled/healthy:
# per-event work must not grow with the retry backlog (a min-heap, a destination-level backoff).
# Not a test: run by hand (needs wrk and nginx-light).
#   tests/bench/throttled.sh [RUNS=3]     env: PREFILL (50000), CONNS (32), SECONDS_ (10), BIN
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
BIN=${BIN:-build/scrubgate}
PREFILL=${PREFILL:-50000}
export CONNS=${CONNS:-32} RATE=0
SECONDS_=${SECONDS_:-10}
[ -x "$BIN" ] || { echo "build first: cmake -S . -B build && cmake --build build" >&2; exit 2; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
command -v nginx >/dev/null || { echo "needs nginx (apt-get install nginx-light)" >&2; exit 2; }

. tests/bench/lib.sh
ok_port=$(free_port) throttle_port=$(free_port)
start_nginx <<NGINX
  server { listen 127.0.0.1:$ok_port; $(json_reply 0 OK) }
  server { listen 127.0.0.1:$throttle_port; $(json_reply 40100 "Too many requests") }
NGINX
conf() {
    cat > "$tmp/conf.json" <<JSON
{"listen": "127.0.0.1:0", "state_dir": "$tmp/var",
 "limits": {"max_events_per_request": 1000, "max_body_bytes": 1048576, "rate_per_ip": 0,
            "queue_max_events": 1000000, "spool_max_bytes": 4294967296},
 "sites": [{"id": "shop", "rules": "rules/default.json", "secret_env": "BENCH_SECRET",
   "destinations": [{"type": "tiktok", "pixel_code": "CBENCH", "access_token_env": "BENCH_TOKEN",
                     "api_base": "http://127.0.0.1:$1"}]}]}
JSON
}
measure() {  # upstream-port prefill -> "events_per_s p99_ms"
    conf "$1"
    rm -rf "$tmp/var"
    BENCH_SECRET=bench-secret-0123456789 BENCH_TOKEN=bench-token "$BIN" serve -c "$tmp/conf.json" \
        2> "$tmp/serve.log" &
    local pid=$!
    for _ in $(seq 300); do grep -q "listening on" "$tmp/serve.log" && break; sleep 0.1; done
    local p
    p=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/serve.log")
    [ -n "$p" ] || { echo "scrubgate did not start:" >&2; cat "$tmp/serve.log" >&2; exit 1; }
    if [ "$2" -gt 0 ]; then  # the backlog: PREFILL events in batches of 1000, then in retry
        BATCH=1000 wrk -t1 -c4 -d60s -s tests/bench/post.lua "http://127.0.0.1:$p" \
            >/dev/null 2>&1 &
        local w=$!
        for _ in $(seq 600); do
            sz=$(du -sb "$tmp/var/spool" | cut -f1)
            [ "$sz" -ge $(( $2 * 770 )) ] && break  # ~770 bytes per spooled event
            sleep 0.1
        done
        kill "$w" 2>/dev/null; wait "$w" 2>/dev/null || true
    fi
    BATCH=1 wrk -t1 -c"$CONNS" -d"${SECONDS_}s" -s tests/bench/post.lua "http://127.0.0.1:$p" |
        grep RESULT | sed 's/RESULT //'
    kill -TERM "$pid"; wait "$pid" || true
}
ok_eps=() th_eps=() ratios=()
for r in $(seq "$RUNS"); do
    ok=$(measure "$ok_port" 0)
    th=$(measure "$throttle_port" "$PREFILL")
    o=$(echo "$ok" | field events_per_s) t=$(echo "$th" | field events_per_s)
    echo "run $r: healthy $ok | throttled (backlog ~$PREFILL) $th"
    ok_eps+=("$o") th_eps+=("$t") ratios+=("$(python3 -c "print(round($t / $o, 3))")")
done
echo "median: healthy events_per_s=$(printf '%s\n' "${ok_eps[@]}" | median)" \
     "throttled events_per_s=$(printf '%s\n' "${th_eps[@]}" | median)" \
     "ratio=$(printf '%s\n' "${ratios[@]}" | median)"
