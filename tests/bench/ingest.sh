#!/usr/bin/env bash
# Benchmark: wrk against the real binary over keep-alive connections, through the whole path
# (ingest, scrub, durable spool with fdatasync before each 202, batched forwarding to the local
# fake TikTok, which validates every request), and in the same run the same load against nginx
# answering 204 as the ceiling. Not a test: run it by hand on an otherwise idle machine.
#   tests/bench/ingest.sh [RUNS=3]
#   env: BATCH (events per request, 1), CONNS (32), SECONDS_ (10), RATE (paced requests/s), BIN,
#        SINK=fake (the strict Python fake TikTok, default) or SINK=nginx (nginx answering code 0:
#        measures the proxy without the fake's CPU cost)
# Prints one line per run and the medians.
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
python3 tests/fake_tiktok.py --port 0 --token bench-token --pixel CBENCH > "$tmp/fake.out" &
for _ in $(seq 50); do grep -q "fake tiktok on" "$tmp/fake.out" && break; sleep 0.1; done
fake=$(sed -n 's/fake tiktok on //p' "$tmp/fake.out")
nport=$(free_port) sport=$(free_port)
[ "${SINK:-fake}" = nginx ] && fake="http://127.0.0.1:$sport"
NGINX_WORKERS=2 start_nginx <<NGINX
  server { listen 127.0.0.1:$nport; location / { return 204; } }
  server { listen 127.0.0.1:$sport; $(json_reply 0 OK) }
NGINX
cat > "$tmp/conf.json" <<JSON
{"listen": "127.0.0.1:0", "state_dir": "$tmp/var",
 "limits": {"max_events_per_request": 1000, "max_body_bytes": 1048576, "rate_per_ip": 0},
 "sites": [{"id": "shop", "rules": "rules/default.json", "secret_env": "BENCH_SECRET",
   "destinations": [{"type": "tiktok", "pixel_code": "CBENCH", "access_token_env": "BENCH_TOKEN",
                     "api_base": "$fake"}]}]}
JSON
load() { wrk -t1 -c"$CONNS" -d"${SECONDS_}s" -s tests/bench/post.lua "$1" | grep RESULT; }
sg_eps=() sg_p99=() ng_eps=() fwd_eps=()
for r in $(seq "$RUNS"); do
    rm -rf "$tmp/var"
    BENCH_SECRET=bench-secret-0123456789 BENCH_TOKEN=bench-token "$BIN" serve -c "$tmp/conf.json" \
        2> "$tmp/serve.log" &
    pid=$!
    for _ in $(seq 50); do grep -q "listening on" "$tmp/serve.log" && break; sleep 0.1; done
    port=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/serve.log")
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
    kill -TERM "$pid"; wait "$pid" || true
    ngx=$(load "http://127.0.0.1:$nport")
    echo "run $r: scrubgate $line accepted=$got/$want forward_events_per_s=$fwd | nginx-204 $ngx"
    sg_eps+=("$(echo "$line" | field events_per_s)") sg_p99+=("$(echo "$line" | field p99_ms)")
    ng_eps+=("$(echo "$ngx" | field requests_per_s)") fwd_eps+=("$fwd")
done
s=$(printf '%s\n' "${sg_eps[@]}" | median); n=$(printf '%s\n' "${ng_eps[@]}" | median)
echo "median: scrubgate events_per_s=$s p99_ms=$(printf '%s\n' "${sg_p99[@]}" | median)" \
     "forward_events_per_s=$(printf '%s\n' "${fwd_eps[@]}" | median)" \
     "nginx_requests_per_s=$n ratio=$(python3 -c "print(round($s / $BATCH / $n, 3))")"
