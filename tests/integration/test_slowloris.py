"""300 slowloris connections trickle their headers: a normal client stays under 100 ms at the
99th percentile meanwhile, and every slowloris connection is cut at the header deadline.

Run alone to see the numbers: python3 -m unittest -v tests/integration/test_slowloris.py
(they are printed to stderr)."""
import http.client
import json
import math
import selectors
import socket
import sys
import threading
import time
import unittest

from harness import FakeTikTok, Proxy, TOKEN, PIXEL, site_config

SLOW = 300
HEADER_S = 4.0
SAMPLES = 300


def percentile(values, p):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Slowloris:
    """SLOW connections sending one header byte every `every` seconds, in one thread, and a
    second thread that notes when each one is cut (its first bytes or EOF)."""

    def __init__(self, port, n, every):
        self.every = every
        self.socks = []
        self.opened = []
        self.cut = {}
        self.stop = threading.Event()
        self.sel = selectors.DefaultSelector()
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /v1/events?site=shop HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            self.socks.append(s)
            self.opened.append(time.monotonic())
            self.sel.register(s, selectors.EVENT_READ, i)
        self.writer = threading.Thread(target=self.write, daemon=True)
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.writer.start()
        self.reader.start()

    def write(self):
        while not self.stop.wait(self.every):
            for i, s in enumerate(self.socks):
                if i not in self.cut:
                    try:
                        s.send(b"a")
                    except OSError:
                        pass

    def read(self):
        while not self.stop.is_set() and len(self.cut) < len(self.socks):
            for key, _ in self.sel.select(0.05):
                i = key.data
                try:
                    first = key.fileobj.recv(4096)
                except OSError:
                    first = b""
                self.cut.setdefault(i, (time.monotonic(), first[:32]))
                self.sel.unregister(key.fileobj)

    def close(self):
        self.stop.set()
        self.writer.join(5)
        self.reader.join(5)
        for s in self.socks:
            s.close()


class SlowlorisTest(unittest.TestCase):
    def test_normal_clients_stay_fast_and_slowloris_is_cut(self):
        fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        proxy = Proxy([site_config(fake.url)],
                      limits={"flush_interval_ms": 20, "header_timeout_ms": int(HEADER_S * 1000),
                              "request_timeout_ms": 8000}).start()
        slow = None
        try:
            body = json.dumps({"event": "Lead"})

            def timed_posts(n):
                out = []
                for _ in range(n):
                    t = time.monotonic()
                    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
                    conn.request("POST", "/v1/events?site=shop", body=body,
                                 headers={"Content-Type": "application/json"})
                    r = conn.getresponse()
                    r.read()
                    conn.close()
                    self.assertEqual(r.status, 202)
                    out.append(time.monotonic() - t)
                return out

            timed_posts(20)  # warm up
            quiet = timed_posts(SAMPLES // 3)

            slow = Slowloris(proxy.port, SLOW, every=0.25)
            opened_all = time.monotonic()
            loaded = []
            while len(loaded) < SAMPLES and time.monotonic() - slow.opened[0] < HEADER_S - 0.5:
                loaded += timed_posts(10)
            self.assertEqual(len(slow.cut), 0, "slowloris cut before its deadline")
            self.assertGreaterEqual(len(loaded), 100, "too few samples before the deadline")

            p99 = percentile(loaded, 99)
            print("\n%d slowloris connections open: %d POSTs, p50 %.1f ms, p99 %.1f ms, max %.1f "
                  "ms (without them: p50 %.1f ms, p99 %.1f ms)"
                  % (SLOW, len(loaded), percentile(loaded, 50) * 1000, p99 * 1000,
                     max(loaded) * 1000, percentile(quiet, 50) * 1000,
                     percentile(quiet, 99) * 1000), file=sys.stderr)
            self.assertLess(p99, 0.100)

            # Every slowloris connection is cut at its header deadline, not before, not long after.
            bound = opened_all + HEADER_S + 3
            while len(slow.cut) < SLOW and time.monotonic() < bound:
                time.sleep(0.05)
            self.assertEqual(len(slow.cut), SLOW, "%d still open" % (SLOW - len(slow.cut)))
            late = []
            for i, (when, first) in slow.cut.items():
                took = when - slow.opened[i]
                self.assertGreater(took, HEADER_S - 0.15, "connection %d cut early" % i)
                late.append(took)
                self.assertTrue(first == b"" or first.startswith(b"HTTP/1.1 408 "), first)
            print("slowloris connections cut %.2f to %.2f s after they opened (deadline %.1f s)"
                  % (min(late), max(late), HEADER_S), file=sys.stderr)
            self.assertLess(max(late), HEADER_S + 1.0)

            timed_posts(5)  # and served as before
        finally:
            if slow:
                slow.close()
            self.assertEqual(proxy.stop(), 0, proxy.stderr())
            fake.stop()


if __name__ == "__main__":
    unittest.main()
