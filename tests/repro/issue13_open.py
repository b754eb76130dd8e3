"""Open findings of issue 13 (the second adversarial review of the JetStream queue).

Each test reproduces a bug that is not fixed yet, so this file is NOT registered with ctest;
when a bug is fixed, its test moves into tests/integration/test_jetstream.py. Run one with
    cd tests/integration && PYTHONPATH=. python3 -m unittest ../repro/issue13_open.py
(SCRUBGATE_BIN pointing at a build with libnats).
"""
"""Adversarial pass 13b: JetStream mode reproductions."""
import json
import os
import time
import unittest

from harness import PIXEL, TOKEN, FakeTikTok, Proxy, site_config
import natsctl
from test_jetstream import js_queue


@unittest.skipUnless(natsctl.available(), "nats-server is not installed")
class Adv13bTest(unittest.TestCase):
    def setUp(self):
        self.fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        self.nats = natsctl.Cluster(1).start()
        self.proxies = []

    def tearDown(self):
        for p in self.proxies:
            if p.proc and p.proc.poll() is None:
                p.stop()
        self.fake.stop()
        self.nats.stop()

    def proxy(self, limits=None, workers=1, sites=None, **over):
        p = Proxy(sites or [site_config(self.fake.url)], limits=limits, workers=workers,
                  extra=js_queue(self.nats, **over))
        self.proxies.append(p)
        return p.start()

    def delivered(self):
        with self.fake.lock:
            return [e["event_id"] for e in self.fake.events]

    # An event_id holding CR LF goes into the Nats-Msg-Id header as it is: the server reads
    # the id up to the CR LF, so distinct event_ids sharing a prefix collapse into one id.
    def test_crlf_event_ids_are_not_merged_by_the_duplicate_window(self):
        p = self.proxy()
        ids = ["ev\r\nX-A: 1", "ev\r\nX-B: 2", "ev"]
        for x in ids:
            st, _, body = p.post([{"event": "Lead", "event_id": x}])
            self.assertEqual(st, 202, body)
        deadline = time.time() + 10
        while time.time() < deadline and len(self.delivered()) < 3:
            time.sleep(0.1)
        time.sleep(1)
        self.assertEqual(sorted(self.delivered()), sorted(ids))

    # The ack wait (upstream_timeout_ms + 30 s) does not cover the time a fetched event waits
    # in the forwarder for its batch: flush_interval_ms may be up to 60 s. The server
    # redelivers the waiting event, the same consumer fetches it again, and it is sent twice.
    def test_an_event_waiting_for_its_batch_longer_than_the_ack_wait_is_sent_once(self):
        p = self.proxy(limits={"upstream_timeout_ms": 100, "flush_interval_ms": 40000})
        st, _, body = p.post([{"event": "Lead", "event_id": "slow-batch"}])
        self.assertEqual(st, 202, body)
        deadline = time.time() + 50
        while time.time() < deadline and not self.delivered():
            time.sleep(0.2)
        time.sleep(2)
        self.assertEqual(self.delivered(), ["slow-batch"])

    # An adopted consumer is checked for push, ack policy, filter, max_deliver and deliver
    # policy, not for headers_only: with it every message arrives without its body, decode()
    # calls it "not a scrubgate event" and terminates it. Every 202 event is dropped.
    def test_adopted_headers_only_consumer_is_refused_or_events_delivered(self):
        self.adopted_consumer_case({"headers_only": True})

    # The same with a pull limit the fetch (up to 256 messages, 500 ms) exceeds.
    def test_adopted_consumer_with_max_batch_is_refused_or_events_delivered(self):
        self.adopted_consumer_case({"max_batch": 1})

    def test_adopted_consumer_with_max_expires_is_refused_or_events_delivered(self):
        self.adopted_consumer_case({"max_expires": 100 * 10**6})

    def adopted_consumer_case(self, extra):
        url = self.nats.urls()[0]
        durable = "sg-shop-tiktok_c" + PIXEL
        r = natsctl.create_stream(url, {
            "name": "SCRUBGATE", "subjects": ["scrubgate.>"], "storage": "file",
            "num_replicas": 1, "duplicate_window": 120 * 10**9, "retention": "workqueue"})
        self.assertNotIn("error", r, r)
        r = natsctl.request(url, "$JS.API.CONSUMER.DURABLE.CREATE.SCRUBGATE." + durable,
                            json.dumps({"stream_name": "SCRUBGATE", "config": {
                                "durable_name": durable, "ack_policy": "explicit",
                                "ack_wait": 60 * 10**9, "deliver_policy": "all",
                                "max_deliver": -1,
                                "filter_subject": "scrubgate.shop.tiktok:" + PIXEL,
                                **extra}}).encode())
        self.assertNotIn("error", r, r)
        p = Proxy([site_config(self.fake.url)], workers=1, extra=js_queue(self.nats))
        self.proxies.append(p)
        try:
            p.start()
        except RuntimeError:
            return  # refused at start: fine
        st, _, body = p.post([{"event": "Lead", "event_id": "ho1"}])
        self.assertEqual(st, 202, body)
        deadline = time.time() + 10
        while time.time() < deadline and not self.delivered():
            time.sleep(0.1)
        ci = natsctl.consumer_info(url, "SCRUBGATE", durable)
        si = natsctl.stream_info(url, "SCRUBGATE")
        self.assertEqual(self.delivered(), ["ho1"], (p.stderr()[-1500:], ci.get("num_ack_pending"), ci.get("delivered"), si["state"]["messages"]))

    # Valid ids (1..64 of [A-Za-z0-9_.-]) whose escape doubles them: the durable name
    # "sg-" + 128 + "-" + 128 = 260 bytes is refused by the server (JetStream error 10102).
    # At start that is a start error; added by a reload, the site is accepted: its events
    # are answered 202 and published, and never delivered (the consumer is retried forever).
    def test_a_reload_adding_a_destination_without_a_consumer_does_not_202_forever(self):
        from test_reload import Reloader
        p = self.proxy(workers=1)
        r = Reloader(p)
        cfg = r.config()
        sid = "a" + "-" * 63
        s = site_config(self.fake.url, id=sid, hosts=["long.example.com"],
                        dest={"id": "b" + "-" * 63})
        cfg["sites"].append(s)
        r.reload(cfg)
        st, _, body = p.post([{"event": "Lead", "event_id": "long1"}], site=sid)
        if st != 202:
            return  # refused: fine
        deadline = time.time() + 10
        while time.time() < deadline and not self.delivered():
            time.sleep(0.1)
        self.assertEqual(self.delivered(), ["long1"], p.stderr()[-800:])

    # The same with two instances and the default flush: an event fetched while a request is
    # in flight waits in instance A through A's destination backoff after that request fails
    # (base/2 + jitter up to retry_cap_ms; the default cap, 60 s, is already longer than the
    # default ack wait, 40 s). The server redelivers it to instance B, which sends it; A sends
    # it too when its backoff ends.
    def test_an_event_held_through_a_backoff_is_not_sent_by_two_instances(self):
        limits = {"upstream_timeout_ms": 3000, "max_inflight": 1, "retry_base_ms": 76000,
                  "retry_cap_ms": 1, "flush_interval_ms": 1}  # backoff: 38 s; ack wait: 33 s
        a = self.proxy(limits=limits)
        self.fake.script([{"delay": 1.5, "http": 503}])
        st, _, body = a.post([{"event": "Lead", "event_id": "first"}])
        self.assertEqual(st, 202, body)
        time.sleep(0.5)  # "first" is in flight; "second" is fetched into A's forwarder
        st, _, body = a.post([{"event": "Lead", "event_id": "second"}])
        self.assertEqual(st, 202, body)
        time.sleep(2.0)  # "first" failed: A backs off 38 s
        self.proxy(limits=limits)  # instance B
        deadline = time.time() + 60
        while time.time() < deadline and self.delivered().count("second") < 2:
            time.sleep(0.2)
        self.assertEqual(self.delivered().count("second"), 1, self.delivered())

    # redact_url() cuts the user info at the first '@': a password holding '@' (written as it
    # is) leaves its tail in the log line "cannot connect to nats://***@secret@host".
    def test_a_password_with_an_at_sign_is_not_logged(self):
        from harness import free_port
        p = Proxy([site_config(self.fake.url)], workers=1, extra={"queue": {
            "type": "jetstream", "stream": "SCRUBGATE", "replicas": 1,
            "servers": ["nats://scrub:hunter2@tail-of-secret@127.0.0.1:%d" % free_port()]}})
        self.proxies.append(p)
        try:
            p.start()
        except RuntimeError as e:
            self.assertNotIn("tail-of-secret", str(e))
        self.assertFalse([x for x in p.stderr_lines if "tail-of-secret" in x])

    # A removed stream is created again only once a publish has failed (stream_lost is set by
    # the ack handler alone): with no ingest meanwhile, every consumer's pull thread logs
    # "consumer info: ... JetStream error 10059" (one line per consumer every few seconds)
    # and the stream stays missing; the first request after it is a 503.
    def test_a_removed_stream_is_created_again_without_waiting_for_a_failed_publish(self):
        s = site_config(self.fake.url, dest={"id": "d0"})
        for i in range(1, 10):
            s["destinations"].append(dict(s["destinations"][0], id="d%d" % i))
        p = self.proxy(sites=[s], workers=2)
        time.sleep(1)
        r = natsctl.request(self.nats.urls()[0], "$JS.API.STREAM.DELETE.SCRUBGATE", b"")
        self.assertTrue(r.get("success"), r)
        before = len(p.stderr_lines)
        time.sleep(5)
        logged = [x for x in p.stderr_lines[before:] if "error" in x]
        info = natsctl.stream_info(self.nats.urls()[0], "SCRUBGATE")
        self.assertNotIn("error", info, (len(logged), logged[:2]))
        st, _, body = p.post([{"event": "Lead", "event_id": "after-rm"}])
        self.assertEqual(st, 202, body)


if __name__ == "__main__":
    unittest.main()
