#!/usr/bin/env bash
# Benchmark: wrk against the real binary over keep-alive connections, through the whole path
# (ingest, scrub, durable spool with fdatasync before each 202, batched forwarding to the local
# fake TikTok, which validates every request), and in the same run the same load against nginx
# answering 204 as the ceiling. Not a test: run it by hand on an otherwise idle machine.
#   tests/bench/ingest.sh [RUNS=3]
#   env: BATCH (events per request, 1), CONNS (32), SECONDS_ (10), RATE (paced requests/s), BIN,
#        PROFILE=DIR (perf record -g of the proxy during each load, to DIR/perf-RUN.data),
#        SYNC_TRACE=DIR (perf trace of the group commit's fdatasync calls: DIR/sync-RUN.txt),
#        FLUSH_MS (limits.flush_interval_ms, default the proxy's 250),
#        SINK=fake (the strict Python fake TikTok, default) or SINK=nginx (nginx answering code 0:
#        measures the proxy without the fake's CPU cost),
#        QUEUES="local jetstream" (each run measures every queue named, in turn: the local spool
#        and/or the JetStream queue on a single nats-server started here; REPLICAS=3 starts a
#        3-node cluster on 127.0.0.1 instead)
# Prints one line per run and the medians. Per run also, where the tools allow: the group commit's
# fdatasync calls during the load (perf's syscall tracepoint) and events per sync; with
# SINK=nginx, the upstream requests the forwarders made and events per request (batch size).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
BIN=${BIN:-build/scrubgate}
export BATCH=${BATCH:-1} CONNS=${CONNS:-32} RATE=${RATE:-0}
SECONDS_=${SECONDS_:-10}
[ -x "$BIN" ] || { echo "build first: cmake -S . -B build && cmake --build build" >&2; exit 2; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
command -v nginx >/dev/null || { echo "needs nginx (apt-get install nginx-light)" >&2; exit 2; }

. tests/bench/lib.sh
QUEUES=${QUEUES:-local}
queue_json='{"type": "local"}'
if [[ " $QUEUES " == *" jetstream "* ]]; then
    command -v nats-server >/dev/null || { echo "needs nats-server" >&2; exit 2; }
    REPLICAS=${REPLICAS:-1}
    urls=() cports=()
    for i in $(seq "$REPLICAS"); do cports+=("$(free_port)"); done
    for i in $(seq "$REPLICAS"); do
        p=$(free_port); urls+=("\"nats://127.0.0.1:$p\"")
        if [ "$REPLICAS" -gt 1 ]; then
            routes=$(printf 'nats-route://127.0.0.1:%s,' "${cports[@]}")
            nats-server -js -a 127.0.0.1 -p "$p" -sd "$tmp/js$i" -n "n$i" --cluster_name sg \
                --cluster "nats://127.0.0.1:${cports[$((i-1))]}" --routes "${routes%,}" \
                > "$tmp/nats$i.log" 2>&1 &
        else
            nats-server -js -a 127.0.0.1 -p "$p" -sd "$tmp/js$i" > "$tmp/nats$i.log" 2>&1 &
        fi
    done
    sleep 3  # a cluster elects its JetStream meta leader
    js_json="{\"type\": \"jetstream\", \"servers\": [$(IFS=,; echo "${urls[*]}")], \"replicas\": $REPLICAS}"
fi
python3 tests/fake_tiktok.py --port 0 --token bench-token --pixel CBENCH > "$tmp/fake.out" &
for _ in $(seq 50); do grep -q "fake tiktok on" "$tmp/fake.out" && break; sleep 0.1; done
fake=$(sed -n 's/fake tiktok on //p' "$tmp/fake.out")
nport=$(free_port) sport=$(free_port)
[ "${SINK:-fake}" = nginx ] && fake="http://127.0.0.1:$sport"
NGINX_WORKERS=2 start_nginx <<NGINX
  log_format sink '\$request_length';
  server { listen 127.0.0.1:$nport; location / { return 204; } }
  server { listen 127.0.0.1:$sport; access_log $tmp/sink.log sink; $(json_reply 0 OK) }
NGINX
flush_json=${FLUSH_MS:+", \"flush_interval_ms\": $FLUSH_MS"}
write_conf() {  # write_conf QUEUE_JSON
cat > "$tmp/conf.json" <<JSON
{"listen": "127.0.0.1:0", "state_dir": "$tmp/var", "queue": $1,
 "limits": {"max_events_per_request": 1000, "max_body_bytes": 1048576, "rate_per_ip": 0$flush_json},
 "sites": [{"id": "shop", "rules": "$PWD/rules/default.json", "secret_env": "BENCH_SECRET",
   "destinations": [{"type": "tiktok", "pixel_code": "CBENCH", "access_token_env": "BENCH_TOKEN",
                     "api_base": "$fake"}]}]}
JSON
}
load() { wrk -t1 -c"$CONNS" -d"${SECONDS_}s" -s tests/bench/post.lua "$1" | grep RESULT; }
declare -A sg_eps sg_p99 fwd_eps
ng_eps=()
for r in $(seq "$RUNS"); do
  for q in $QUEUES; do
    if [ "$q" = jetstream ]; then write_conf "$js_json"; else write_conf "$queue_json"; fi
    rm -rf "$tmp/var"
    BENCH_SECRET=bench-secret-0123456789 BENCH_TOKEN=bench-token "$BIN" serve -c "$tmp/conf.json" \
        2> "$tmp/serve.log" &
    pid=$!
    for _ in $(seq 100); do grep -q "listening on" "$tmp/serve.log" && break; sleep 0.1; done
    grep -q "listening on" "$tmp/serve.log" || { cat "$tmp/serve.log" >&2; exit 1; }
    port=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/serve.log")
    : > "$tmp/sink.log"
    rm -f "$tmp/perf.csv"
    perf_pid=""
    if command -v perf >/dev/null; then
        perf stat -x, -e syscalls:sys_enter_fdatasync -p "$pid" -o "$tmp/perf.csv" \
            -- sleep "$SECONDS_" 2>/dev/null &
        perf_pid=$!
    fi
    if [ -n "${SYNC_TRACE:-}" ]; then
        mkdir -p "$SYNC_TRACE"
        timeout "$SECONDS_" perf trace -e fdatasync -p "$pid" -o "$SYNC_TRACE/sync-$r.txt" \
            > /dev/null 2>&1 &
    fi
    if [ -n "${PROFILE:-}" ]; then
        mkdir -p "$PROFILE"
        perf record -q -g -p "$pid" -o "$PROFILE/perf-$r.data" -- sleep "$SECONDS_" \
            > /dev/null 2>&1 &
    fi
    start=$(date +%s.%N)
    line=$(load "http://127.0.0.1:$port")
    want=$(( $(echo "$line" | field requests) * BATCH ))
    # Forwarding: until every event has its outcome in the sync log.
    for _ in $(seq 600); do
        got=$(grep -c '"status":"accepted"' "$tmp/var/sync-log.jsonl" 2>/dev/null || true)
        [ "${got:-0}" -ge "$want" ] && break
        sleep 0.1
    done
    fwd=$(python3 -c "import time; print(round($got / (time.time() - $start)))")
    extra=""
    [ -n "$perf_pid" ] && wait "$perf_pid" 2>/dev/null || true
    if [ -s "$tmp/perf.csv" ]; then
        syncs=$(grep fdatasync "$tmp/perf.csv" | cut -d, -f1)
        [ -n "$syncs" ] && [ "$syncs" -gt 0 ] 2>/dev/null &&
            extra+=" syncs=$syncs events_per_sync=$(( want / syncs ))"
    fi
    ups=$(wc -l < "$tmp/sink.log")
    [ "${SINK:-fake}" = nginx ] && [ "$ups" -gt 0 ] &&
        extra+=" upstream_requests=$ups events_per_upstream_request=$(( got / ups ))"
    kill -TERM "$pid"; wait "$pid" || true
    echo "run $r queue=$q: scrubgate $line accepted=$got/$want forward_events_per_s=$fwd$extra"
    sg_eps[$q]+="$(echo "$line" | field events_per_s) " sg_p99[$q]+="$(echo "$line" | field p99_ms) "
    fwd_eps[$q]+="$fwd "
  done
  ngx=$(load "http://127.0.0.1:$nport")
  echo "run $r: nginx-204 $ngx"
  ng_eps+=("$(echo "$ngx" | field requests_per_s)")
done
n=$(printf '%s\n' "${ng_eps[@]}" | median)
for q in $QUEUES; do
  s=$(printf '%s\n' ${sg_eps[$q]} | median)
  echo "median queue=$q: scrubgate events_per_s=$s p99_ms=$(printf '%s\n' ${sg_p99[$q]} | median)" \
       "forward_events_per_s=$(printf '%s\n' ${fwd_eps[$q]} | median)" \
       "nginx_requests_per_s=$n ratio=$(python3 -c "print(round($s / $BATCH / $n, 3))")"
done
