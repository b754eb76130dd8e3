"""Upstream replies larger than limits.max_response_bytes.

The proxy reads at most max_response_bytes of a reply: past that it aborts the
transfer (an endless chunked body is not read until the upstream timeout),
logs one warning naming the destination, and retries the batch like any
transient failure, so the events are delivered by a later, sane reply.
"""
import re
import sys
import time
import unittest

from harness import PIXEL, TOKEN, FakeTikTok, Proxy, site_config

DEST = "tiktok:" + PIXEL


def wait_until(pred, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


class OversizedReplyTest(unittest.TestCase):
    def setUp(self):
        self.fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        # A long upstream timeout: without the cap, an endless reply is read until it fires.
        self.proxy = Proxy([site_config(self.fake.url)], workers=1,
                           limits={"flush_interval_ms": 20, "retry_base_ms": 50,
                                   "upstream_timeout_ms": 60000,
                                   "max_response_bytes": 65536}).start()

    def tearDown(self):
        self.assertEqual(self.proxy.stop(), 0, self.proxy.stderr())
        self.fake.stop()

    def too_large_warnings(self):
        return [l for l in self.proxy.stderr_lines if "response_too_large" in l]

    def deliver_after_oversized_reply(self, scripted, event_id):
        self.fake.script([scripted])
        status, _, body = self.proxy.post({"event": "Lead", "event_id": event_id})
        self.assertEqual(status, 202, body)
        # The oversized reply is abandoned and the batch retried: the second request is
        # answered normally and the event accepted, on its second attempt.
        self.assertTrue(wait_until(lambda: any(l["status"] == "accepted"
                                               for l in self.proxy.sync_log())),
                        self.proxy.stderr())
        line = self.proxy.sync_log()[0]
        self.assertEqual((line["event_id"], line["status"], line["attempts"]),
                         (event_id, "accepted", 2))
        self.assertEqual([e["event_id"] for e in self.fake.events], [event_id])
        # Classified once, logged once, as a warning that names the destination.
        warnings = self.too_large_warnings()
        self.assertEqual(len(warnings), 1, self.proxy.stderr())
        self.assertRegex(warnings[0], r"warn.*destination %s\b" % re.escape(DEST))
        self.assertIn("65536", warnings[0])
        self.assertNotIn("xxxxxxxx", self.proxy.stderr())  # the reply's bytes are not logged
        return self.fake.requests[0]

    def test_endless_chunked_reply_is_cut_off_at_the_cap(self):
        first = self.deliver_after_oversized_reply({"endless": True}, "endless-1")
        # The proxy hung up long before the upstream timeout: the fake saw its write fail.
        self.assertTrue(wait_until(lambda: first.get("done"), 10), first)
        self.assertTrue(first["hung_up"])
        # What the fake got out before the hang-up: the cap plus what the kernel's socket
        # buffers hold on loopback; without the cap, gigabytes within the timeout.
        print("endless reply: %d bytes written before the proxy hung up" % first["sent"],
              file=sys.stderr)
        self.assertLess(first["sent"], 32 << 20)

    def test_ten_megabyte_code_0_reply_is_retried_with_a_warning(self):
        self.deliver_after_oversized_reply({"huge": 10 << 20}, "huge-1")


if __name__ == "__main__":
    unittest.main()
