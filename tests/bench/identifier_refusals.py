#!/usr/bin/env python3
"""How often the proxy takes a random identifier for personal data, through the real binary.

An event_id that reads as an email, phone or card number is refused (the id leaves as it is),
and a click id that reads as one is dropped. Random ids must pass: this sends N random UUID
v4 event ids (crypto.randomUUID's shape) and N events with random TikTok-style click ids
("E.C.P." + base64url) and counts the refusals and drops.

    SCRUBGATE_BIN=build-release/scrubgate python3 tests/bench/identifier_refusals.py [N]
"""
import base64
import json
import os
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import PIXEL, TOKEN, FakeTikTok, Proxy, site_config  # noqa: E402

BATCH = 100


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
    proxy = Proxy([site_config(fake.url)], limits={"rate_per_ip": 0}).start()
    try:
        refused = 0
        for start in range(0, n, BATCH):
            evs = [{"event": "Lead", "event_id": str(uuid.uuid4())}
                   for _ in range(min(BATCH, n - start))]
            status, _, body = proxy.post(evs)
            refused += len(json.loads(body).get("errors", [])) if status == 202 else len(evs)
        print("random UUID event ids refused: %d of %d (%.3f%%)" % (refused, n, 100.0 * refused / n))

        clicks = ["E.C.P." + base64.urlsafe_b64encode(os.urandom(75)).decode().rstrip("=")
                  for _ in range(n)]
        for start in range(0, n, BATCH):
            evs = [{"event": "Lead", "event_id": "click-%d" % (start + i), "consent": "granted",
                    "ttclid": c} for i, c in enumerate(clicks[start:start + BATCH])]
            status, _, body = proxy.post(evs)
            assert status == 202, body
        got = fake.wait_events(n - refused + n, timeout=120)  # the UUID events, then these
        clicked = [e for e in got if e["event_id"].startswith("click-")]
        assert len(clicked) == n, len(clicked)
        kept = sum(1 for e in clicked if e.get("user", {}).get("ttclid"))
        print("random click ids dropped as personal data: %d of %d" % (n - kept, n))
    finally:
        proxy.stop()
        fake.stop()


if __name__ == "__main__":
    main()
