#!/usr/bin/env python3
"""Benchmark: duplicates and losses across kill -9 rounds under load.

Runs the real binary (SCRUBGATE_BIN, default build/scrubgate) against the fake TikTok on
127.0.0.1. Each round: SENDERS threads post batches of 10 events for SECONDS, the proxy is
killed with SIGKILL mid-load, then restarted on the same state_dir. At the end every event
answered 202 must have been delivered (lost = 0); duplicates are deliveries beyond the first
per event_id, as a share of the events answered 202. Delivery is at least once: events in
flight to TikTok at the kill are sent again, so the share depends on how much is in flight.

    python3 tests/bench/kill9.py [ROUNDS=3] [SECONDS=5]
"""
import collections
import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import PIXEL, TOKEN, FakeTikTok, Proxy, site_config  # noqa: E402


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5
    senders = int(os.environ.get("SENDERS", "4"))
    fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
    proxy = Proxy([site_config(fake.url)], limits={"flush_interval_ms": 50})
    acked = set()
    for r in range(rounds):
        proxy.start()
        stop = threading.Event()

        def sender(n):
            i = 0
            while not stop.is_set():
                ids = ["r%d-s%d-%d-%d" % (r, n, i, j) for j in range(10)]
                try:
                    status, _, body = proxy.post([{"event": "Lead", "event_id": x} for x in ids])
                except OSError:
                    return
                if status == 202:
                    acked.update(json.loads(body)["event_ids"])
                i += 1

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(senders)]
        for t in threads:
            t.start()
        time.sleep(seconds)
        proxy.kill()
        stop.set()
        for t in threads:
            t.join()
    proxy.start()
    deadline = time.time() + 60
    while time.time() < deadline:
        with fake.lock:
            got = collections.Counter(e["event_id"] for e in fake.events)
        if acked <= set(got):
            break
        time.sleep(0.2)
    proxy.stop()
    fake.stop()
    lost = acked - set(got)
    dups = sum(c - 1 for c in got.values())
    print("rounds %d x %.0f s, %d senders: %d events answered 202, %d lost, %d duplicates "
          "(%.2f%%)" % (rounds, seconds, senders, len(acked), len(lost), dups,
                        100.0 * dups / max(1, len(acked))))
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
