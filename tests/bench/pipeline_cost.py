#!/usr/bin/env python3
"""What one event costs on the ingest path, in instructions and heap allocations, counted by
callgrind (deterministic: the figure to compare between versions on a noisy machine).

The real binary runs under `valgrind --tool=callgrind`, collecting only inside the functions
of the path a request takes: the connection's read (recv, framing, reading the request in
place) with the ingest handler inside it (parse, site, context, consent, rules, format,
staging into the spool's buffer), the spool write of the request's generation, and the
deferred 202 (written and sent). The group commit's fdatasync and forwarding are not counted.
Each kind of request runs in its own process:

  bench    the benchmark's event (tests/bench/post.lua): email, phone, click id, one content
  denied   the same event with consent denied
  batch10  ten of the bench event in one request (cost per event)
  text     free text (a delivery note with a phone number, a search) and a 2 KB page URL

    tests/bench/pipeline_cost.py [--bin build-bench/scrubgate] [--requests 200] [--keep DIR]
                                 [--scope request|handler]

Prints, per kind, instructions and allocations (malloc, calloc, realloc) per event, and the
mean over the four kinds. Each figure is the difference between a process that served
--requests requests and one that served three times as many, divided by the extra events:
the steady-state cost, without one-time set-up.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import free_port  # noqa: E402
# What is counted (--scope): the whole request from its socket read, or the handler alone (the
# ingest handler, the spool write, the 202: the scope of the figures before scrubgate had its
# own HTTP server, and the only one a binary of that time has).
SCOPES = {"request": ["conn_read_cb", "sg_spool_write", "sg_ingest_answer"],
          "handler": ["sg_ingest_handle", "sg_spool_write", "sg_ingest_answer"]}
COLLECT = SCOPES["request"]

BENCH = {"event": "Purchase", "consent": "granted",
         "page": {"url": "https://shop.example.com/thanks?utm_source=tiktok&ttclid=E.C.P.bench"
                         "&email=jane%40example.com"},
         "properties": {"value": 19.99, "currency": "USD",
                        "contents": [{"content_id": "sku-1", "quantity": 1, "price": 19.99,
                                      "content_name": "Mug"}]},
         "user": {"email": "jane@example.com", "phone": "+12133734253"}}
DENIED = dict(BENCH, consent="denied")
LONG_URL = ("https://shop.example.com/search/results/ceramic-mugs-and-cups/page-2?"
            + "&".join("f%d=value-%d-%s" % (i, i, "x" * 20) for i in range(60))
            + "&utm_source=tiktok&utm_campaign=bf-2026&ttclid=E.C.P.CvcBx3V0d2JhbmRvbXN0cmluZw")
TEXT = {"event": "Search", "consent": "granted",
        "page": {"url": LONG_URL[:2048], "referrer": "https://www.google.com/search?q=mugs"},
        "properties": {"query": "white ceramic mug gift set for my sister",
                       "description": "Please gift-wrap it and deliver after 5 pm, call "
                                      "213-373-4253 if nobody answers; the side door is open"},
        "user": {"email": "jane@example.com"}}
KINDS = {"bench": [BENCH], "denied": [DENIED], "batch10": [BENCH] * 10, "text": [TEXT]}


def start_sink(tmp):
    """nginx answering TikTok's success reply: forwarding runs, at no cost worth counting."""
    port = free_port()
    reply = '{"code":0,"message":"OK","request_id":"bench","data":{}}'
    os.makedirs(os.path.join(tmp, "logs"), exist_ok=True)
    with open(os.path.join(tmp, "nginx.conf"), "w") as f:
        f.write("worker_processes 1; pid %s/nginx.pid; error_log %s/logs/error.log;\n"
                "events { worker_connections 256; }\n"
                "http { access_log off; client_body_temp_path %s; client_max_body_size 16m;\n"
                "  server { listen 127.0.0.1:%d; location / { default_type application/json;\n"
                "    return 200 '%s'; } } }\n" % (tmp, tmp, tmp, port, reply))
    subprocess.run(["nginx", "-p", tmp, "-c", "nginx.conf"], check=True)
    return port


def measure(binary, kind, requests, tmp, sink):
    """The marginal cost of an event: two processes, `requests` and 3 x `requests` requests,
    and the difference between them (so that one-time costs, such as the first use of an
    OpenSSL algorithm or a buffer's first growth, do not count)."""
    ir1, al1 = run(binary, kind, requests, tmp, sink)
    ir3, al3 = run(binary, kind, 3 * requests, tmp, sink)
    n = 2 * requests * len(KINDS[kind])
    return (ir3 - ir1) / n, (al3 - al1) / n


def run(binary, kind, requests, tmp, sink):
    """Instructions and allocations collected in one process that served `requests`."""
    events = KINDS[kind]
    state = os.path.join(tmp, "var-%s-%d" % (kind, requests))
    conf = os.path.join(tmp, "conf-%s.json" % kind)
    with open(conf, "w") as f:
        json.dump({"listen": "127.0.0.1:0", "state_dir": state, "workers": 1,
                   "limits": {"rate_per_ip": 0},
                   "sites": [{"id": "shop", "rules": os.path.join(ROOT, "rules", "default.json"),
                              "secret_env": "BENCH_SECRET",
                              "consent": {"default": "denied", "honor_gpc": True},
                              "destinations": [{"type": "tiktok", "pixel_code": "CBENCH",
                                                "access_token_env": "BENCH_TOKEN",
                                                "api_base": "http://127.0.0.1:%d" % sink}]}]},
                  f)
    out = os.path.join(tmp, "callgrind-%s.out" % kind)
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, "--collect-atstart=no"]
    cmd += ["--toggle-collect=" + fn for fn in COLLECT]
    cmd += [binary, "serve", "-c", conf]
    env = dict(os.environ, BENCH_SECRET="bench-secret-0123456789", BENCH_TOKEN="bench-token")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    port = None
    deadline = time.time() + 120
    for line in proc.stderr:
        m = re.search(r"listening on [^ ]+:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
        if time.time() > deadline:
            break
    if port is None:
        proc.kill()
        sys.exit("scrubgate did not start under valgrind")
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # never a full pipe
    body = json.dumps(events).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "Mozilla/5.0 (bench)",
               "Cookie": "sg_sid=0123456789abcdef0123456789abcdef; _ttp=bench-ttp"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _ in range(requests):
        conn.request("POST", "/v1/events?site=shop", body, headers)
        r = conn.getresponse()
        r.read()
        if r.status != 202:
            sys.exit("%s: HTTP %d" % (kind, r.status))
    conn.close()
    proc.send_signal(signal.SIGTERM)
    proc.wait(120)
    return parse(out)


def parse(path):
    """Instructions (the collected total) and calls to the allocator."""
    names, total, allocs, fn, fn_target = {}, 0, 0, None, None
    alloc_fns = {"malloc", "calloc", "realloc"}
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
            m = re.match(r"(c?)fn=\((\d+)\)(?: (.*))?", line)  # one name space for fn and cfn
            if m:
                if m.group(3):
                    names[m.group(2)] = m.group(3).strip()
                if m.group(1):
                    fn_target = names.get(m.group(2))
                else:
                    fn = names.get(m.group(2))
                continue
            # An allocation is a call into the allocator from outside it: realloc(NULL, n)
            # calling malloc is one allocation, not two.
            if line.startswith("calls=") and fn_target in alloc_fns and fn not in alloc_fns:
                allocs += int(line.split("=")[1].split()[0])
    return total, allocs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build-bench", "scrubgate"))
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--keep", metavar="DIR", help="keep the callgrind files there (for "
                    "callgrind_annotate: where the instructions go)")
    ap.add_argument("--scope", choices=sorted(SCOPES), default="request")
    a = ap.parse_args()
    COLLECT[:] = SCOPES[a.scope]
    for tool in ("valgrind", "nginx"):
        if not shutil.which(tool):
            sys.exit("needs %s" % tool)
    tmp = tempfile.mkdtemp(prefix="sg-cost-")
    sink = start_sink(tmp)
    try:
        rows = []
        for kind in KINDS:
            rows.append(measure(a.bin, kind, a.requests, tmp, sink))
            if a.keep:
                os.makedirs(a.keep, exist_ok=True)
                shutil.copy(os.path.join(tmp, "callgrind-%s.out" % kind), a.keep)
            print("%-8s instructions/event %9.0f  allocations/event %6.1f"
                  % ((kind,) + rows[-1]), flush=True)
        print("%-8s instructions/event %9.0f  allocations/event %6.1f"
              % ("mean", sum(r[0] for r in rows) / len(rows), sum(r[1] for r in rows) / len(rows)))
    finally:
        subprocess.run(["nginx", "-p", tmp, "-c", "nginx.conf", "-s", "stop"],
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
