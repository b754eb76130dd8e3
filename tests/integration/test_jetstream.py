"""The JetStream queue against one real nats-server (fast enough for every run): publish
before 202, delivery through the durable pull consumer, duplicates, NATS down (503 within 1 s,
then back by itself), a stream that refuses publishes, an oversized event, retries (nak with
delay), the dead letter (term), a stream config mismatch, credentials kept out of logs."""
import json
import os
import tempfile
import time
import unittest

from harness import PIXEL, TOKEN, FakeTikTok, Proxy, site_config
import natsctl

DEST = "tiktok:" + PIXEL


def js_queue(cluster, **over):
    q = {"type": "jetstream", "servers": cluster.urls(), "stream": "SCRUBGATE", "replicas": 1,
         "creds_file": None}
    q.update(over)
    return {"queue": q}


@unittest.skipUnless(natsctl.available(), "nats-server is not installed")
class JetStreamTest(unittest.TestCase):
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

    def proxy(self, limits=None, workers=2, sites=None, **over):
        p = Proxy(sites or [site_config(self.fake.url)], limits=limits, workers=workers,
                  extra=js_queue(self.nats, **over))
        self.proxies.append(p)
        return p.start()

    def proxy_with_admin(self):
        """One worker, and an admin listener for /healthz (self.healthz())."""
        from harness import free_port
        self.admin_port = free_port()
        p = Proxy([site_config(self.fake.url)], workers=1,
                  extra=dict(js_queue(self.nats), admin_listen="127.0.0.1:%d" % self.admin_port))
        self.proxies.append(p)
        return p.start()

    def healthz(self):
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        c.request("GET", "/healthz")
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body

    def replace_stream(self, url, config):
        """Remove SCRUBGATE and create config in its place. The proxy creates SCRUBGATE again
        once it sees it missing, which may fall between the two: then both are tried again
        (the create fails, "already in use" or "subjects overlap"), until the create wins."""
        deadline = time.time() + 20
        while True:
            natsctl.request(url, "$JS.API.STREAM.DELETE.SCRUBGATE", b"")
            r = natsctl.create_stream(url, config)
            if "error" not in r or time.time() > deadline:
                return r
            time.sleep(0.05)

    def delivered(self, fake=None):
        fake = fake or self.fake
        with fake.lock:
            return [e["event_id"] for e in fake.events]

    def wait_delivered(self, ids, timeout=15, fake=None):
        deadline = time.time() + timeout
        while time.time() < deadline and not set(ids) <= set(self.delivered(fake)):
            time.sleep(0.05)
        return set(ids) - set(self.delivered(fake))

    def other_fake(self):
        other = FakeTikTok(token=TOKEN, pixel="CPIXEL999").start()
        self.addCleanup(other.stop)
        return other

    # Names derived from ids are injective (SCALING.md): "a.b" and "a_b", "t.1" and "t_1",
    # "a-b"+"c" and "a"+"b-c" share no subject, message id or durable.
    def test_site_ids_dot_and_underscore_do_not_share_a_subject(self):
        other = self.other_fake()
        s1 = site_config(self.fake.url, id="a.b", hosts=["ab1.example.com"],
                         dest={"id": "tt"})
        s2 = site_config(other.url, id="a_b", hosts=["ab2.example.com"],
                         dest={"id": "tt", "pixel_code": "CPIXEL999"})
        p = self.proxy(sites=[s1, s2])
        ids = ["x%d" % i for i in range(20)]
        st, _, body = p.post([{"event": "Lead", "event_id": x} for x in ids], site="a.b")
        self.assertEqual(st, 202, body)
        st, _, body = p.post([{"event": "Lead", "event_id": "y0"}], site="a_b")
        self.assertEqual(st, 202, body)
        self.assertEqual(self.wait_delivered(ids), set())
        self.assertEqual(self.wait_delivered(["y0"], fake=other), set())
        # y0 delivered at a_b after every x at a.b was published: a shared subject would have
        # handed some x to a_b's consumer by now.
        self.assertEqual(set(self.delivered(other)), {"y0"})
        self.assertEqual(set(self.delivered()), set(ids))

    def test_destination_ids_dot_and_underscore_each_get_every_event(self):
        other = self.other_fake()
        s = site_config(self.fake.url, dest={"id": "t.1"})
        d2 = dict(s["destinations"][0], id="t_1", pixel_code="CPIXEL999", api_base=other.url)
        s["destinations"].append(d2)
        p = self.proxy(sites=[s])
        ids = ["m%d" % i for i in range(20)]
        self.assertEqual(p.post([{"event": "Lead", "event_id": x} for x in ids])[0], 202)
        self.assertEqual(self.wait_delivered(ids), set())
        self.assertEqual(self.wait_delivered(ids, fake=other), set())

    def test_durable_names_do_not_collide(self):
        other = self.other_fake()
        s1 = site_config(self.fake.url, id="a-b", hosts=["ab1.example.com"], dest={"id": "c"})
        s2 = site_config(other.url, id="a", hosts=["ab2.example.com"],
                         dest={"id": "b-c", "pixel_code": "CPIXEL999"})
        p = self.proxy(sites=[s1, s2])
        st, _, body = p.post([{"event": "Lead", "event_id": "dn1"}], site="a-b")
        self.assertEqual(st, 202, body)
        st, _, body = p.post([{"event": "Lead", "event_id": "dn2"}], site="a")
        self.assertEqual(st, 202, body)
        self.assertEqual(self.wait_delivered(["dn1"]), set())
        self.assertEqual(self.wait_delivered(["dn2"], fake=other), set())

    def test_published_scrubbed_then_delivered_once_with_outcomes(self):
        p = self.proxy()
        ids = ["a%d" % i for i in range(20)]
        self.fake.delay = 3.0  # the events stay in the stream (unacked) while it is looked at
        st, _, body = p.post([{"event": "Lead", "event_id": x,
                               "user": {"email": "someone@example.com"}} for x in ids])
        self.assertEqual(st, 202, body)
        # The stream holds the formatted event under its subject, never the raw input.
        info = natsctl.stream_info(self.nats.urls()[0], "SCRUBGATE")
        self.assertEqual(info["config"]["subjects"], ["scrubgate.>"])
        self.assertEqual(info["config"]["duplicate_window"], 120 * 10**9)
        self.assertEqual(info["config"]["storage"], "file")
        self.assertEqual(info["state"]["messages"], 20)
        raw = b""
        for root, _, files in os.walk(self.nats.nodes[0].store):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    raw += fh.read()
        self.assertIn(b"scrubgate.shop." + DEST.encode(), raw)
        self.assertIn(b"shop/" + DEST.encode() + b"/a0/Lead", raw)  # Nats-Msg-Id
        self.assertNotIn(b"someone@example.com", raw)
        self.fake.delay = 0
        self.assertEqual(self.wait_delivered(ids), set())
        lines = p.wait_sync(20)
        self.assertEqual(sorted(r["event_id"] for r in lines), sorted(ids))
        self.assertTrue(all(r["status"] == "accepted" for r in lines))
        # Acked on the outcome: the consumer has nothing pending.
        deadline = time.time() + 5
        while time.time() < deadline:
            ci = natsctl.consumer_info(self.nats.urls()[0], "SCRUBGATE",
                                       "sg-shop-tiktok_c" + PIXEL)
            if ci["num_ack_pending"] == 0 and ci["num_pending"] == 0:
                break
            time.sleep(0.1)
        self.assertEqual((ci["num_ack_pending"], ci["num_pending"]), (0, 0))

    def test_repeated_event_id_inside_the_window_is_202_and_sent_once(self):
        p = self.proxy()
        for _ in range(3):
            st, _, body = p.post([{"event": "Lead", "event_id": "dup-1"}])
            self.assertEqual(st, 202, body)
        st, _, _ = p.post([{"event": "Lead", "event_id": "other"}])
        self.assertEqual(self.wait_delivered(["dup-1", "other"]), set())
        time.sleep(0.5)
        self.assertEqual(self.delivered().count("dup-1"), 1)

    def test_pipelined_posts_each_get_their_202(self):
        # A 202 leaves from the queue's loop over its waiting groups; the connection's next
        # pipelined POST must not run inside it (its publish once freed the group being
        # answered).
        import socket
        from test_connections import post_head, read_response
        p = self.proxy(workers=1)
        sock = socket.create_connection(("127.0.0.1", p.port))
        self.addCleanup(sock.close)
        bodies = [b'{"event":"Lead","event_id":"js-pipe-%d"}' % k for k in range(3)]
        sock.sendall(b"".join(post_head(len(b)) + b for b in bodies))
        for k in range(3):
            status, _, body = read_response(sock)
            self.assertEqual(status, 202, body)
            self.assertEqual(json.loads(body)["event_ids"], ["js-pipe-%d" % k])
        self.assertEqual(self.wait_delivered(["js-pipe-%d" % k for k in range(3)]), set())
        self.assertIsNone(p.proc.poll(), p.stderr())

    def test_nats_down_answers_503_within_1s_and_recovers_by_itself(self):
        # "before" is delivered before the kill: a pull answered just as the connection breaks
        # hands the message to a client that never gets it, and the stream redelivers it only
        # after the ack wait (40 s), longer than this test waits.
        p = self.proxy()
        self.assertEqual(p.post([{"event": "Lead", "event_id": "before"}])[0], 202)
        self.assertEqual(self.wait_delivered(["before"]), set())
        self.nats.nodes[0].kill()
        p.wait_log("connection to NATS lost")
        for i in range(5):
            t = time.time()
            st, hdrs, body = p.post([{"event": "Lead", "event_id": "down-%d" % i}])
            self.assertEqual(st, 503, body)
            self.assertLess(time.time() - t, 1.0)
            self.assertEqual(hdrs.get("retry-after"), "1")
        self.nats.nodes[0].start()
        deadline, st = time.time() + 15, 0
        while time.time() < deadline and st != 202:
            st, _, _ = p.post([{"event": "Lead", "event_id": "after"}])
            time.sleep(0.1)
        self.assertEqual(st, 202)
        self.assertEqual(self.wait_delivered(["after"]), set(), p.stderr()[-3000:])
        self.assertFalse({"down-%d" % i for i in range(5)} & set(self.delivered()))

    def test_a_stream_that_is_gone_answers_503_then_is_created_again(self):
        # The stream removed under a running instance: a publish has no stream to land in
        # (503, /healthz stream_unusable, one log line a second, not one per event); the
        # instance creates the stream and its consumer again by itself.
        p = self.proxy_with_admin()
        self.assertEqual(p.post([{"event": "Lead", "event_id": "f0"}])[0], 202)
        self.assertEqual(self.wait_delivered(["f0"]), set())
        r = natsctl.request(self.nats.urls()[0], "$JS.API.STREAM.DELETE.SCRUBGATE", b"")
        self.assertTrue(r.get("success"), r)
        before = len(p.stderr_lines)
        t = time.time()
        st, _, body = p.post([{"event": "Lead", "event_id": "over%d" % i} for i in range(50)])
        self.assertEqual(st, 503, body)
        self.assertLess(time.time() - t, 1.5)
        status, hb = self.healthz()
        self.assertEqual(status, 503, hb)
        self.assertIn(b"stream_unusable", hb)
        warned = [x for x in p.stderr_lines[before:] if "publish not acknowledged" in x]
        self.assertLessEqual(len(warned), 2, warned)
        deadline, st = time.time() + 15, 0
        while time.time() < deadline and st != 202:
            st, _, _ = p.post([{"event": "Lead", "event_id": "again"}])
            if st != 202:
                time.sleep(0.2)
        self.assertEqual(st, 202)
        self.assertEqual(self.wait_delivered(["again"]), set())
        self.assertFalse({"over%d" % i for i in range(50)} & set(self.delivered()))
        self.assertEqual(self.healthz()[0], 200)

    def test_acked_events_are_removed_from_the_stream(self):
        # WorkQueue retention: the stream holds only what waits for delivery; a consumer
        # removed and recreated replays nothing.
        p = self.proxy()
        ids = ["r%d" % i for i in range(10)]
        self.assertEqual(p.post([{"event": "Lead", "event_id": x} for x in ids])[0], 202)
        self.assertEqual(self.wait_delivered(ids), set())
        deadline, info = time.time() + 10, {}
        while time.time() < deadline:
            info = natsctl.stream_info(self.nats.urls()[0], "SCRUBGATE")
            if info["state"]["messages"] == 0:
                break
            time.sleep(0.1)
        self.assertEqual(info["config"]["retention"], "workqueue")
        self.assertEqual(info["state"]["messages"], 0)
        p.stop()
        r = natsctl.request(self.nats.urls()[0],
                            "$JS.API.CONSUMER.DELETE.SCRUBGATE.sg-shop-tiktok_c" + PIXEL, b"")
        self.assertTrue(r.get("success"), r)
        with self.fake.lock:
            self.fake.events.clear()
        p = self.proxy()
        self.assertEqual(p.post([{"event": "Lead", "event_id": "r-new"}])[0], 202)
        self.assertEqual(self.wait_delivered(["r-new"]), set())
        self.assertEqual(self.delivered(), ["r-new"])  # no replay of r0..r9

    def test_stream_config_mismatch_is_a_clear_start_error(self):
        natsctl.create_stream(self.nats.urls()[0], {
            "name": "SCRUBGATE", "subjects": ["scrubgate.>"], "storage": "file",
            "num_replicas": 1, "duplicate_window": 30 * 10**9})
        p = Proxy([site_config(self.fake.url)], extra=js_queue(self.nats))
        self.proxies.append(p)
        with self.assertRaises(RuntimeError) as cm:
            p.start()
        self.assertIn("stream SCRUBGATE exists with another duplicate window (30 s, "
                      "configured: 120 s)", str(cm.exception))

    def test_adopted_stream_with_a_limit_is_refused_at_start(self):
        # max_msgs with discard old would drop the oldest accepted (202) events once reached.
        r = natsctl.create_stream(self.nats.urls()[0], {
            "name": "SCRUBGATE", "subjects": ["scrubgate.>"], "storage": "file",
            "num_replicas": 1, "duplicate_window": 120 * 10**9, "max_msgs": 5,
            "discard": "old", "retention": "workqueue"})
        self.assertNotIn("error", r, r)
        p = Proxy([site_config(self.fake.url)], extra=js_queue(self.nats))
        self.proxies.append(p)
        with self.assertRaises(RuntimeError) as cm:
            p.start()
        self.assertIn("stream SCRUBGATE exists with another max_msgs (5, configured: "
                      "unlimited)", str(cm.exception))

    def test_adopted_consumers_that_would_lose_or_never_deliver_events_are_refused(self):
        # Each setting makes a 202 event undeliverable or sent twice: max_deliver drops it at
        # its first retry; headers_only delivers it without its body; max_batch, max_expires
        # and max_bytes refuse scrubgate's pulls; a backoff redelivers a send in flight.
        url = self.nats.urls()[0]
        durable = "sg-shop-tiktok_c" + PIXEL
        r = natsctl.create_stream(url, {
            "name": "SCRUBGATE", "subjects": ["scrubgate.>"], "storage": "file",
            "num_replicas": 1, "duplicate_window": 120 * 10**9, "retention": "workqueue"})
        self.assertNotIn("error", r, r)
        cases = [({"max_deliver": 1}, "max_deliver"),
                 ({"headers_only": True}, "headers_only"),
                 ({"max_batch": 1}, "max_batch"),
                 ({"max_expires": 100 * 10**6}, "max_expires"),
                 ({"max_bytes": 1024}, "max_bytes"),
                 ({"backoff": [10**9, 2 * 10**9], "max_deliver": 5}, "max_deliver"),
                 ({"backoff": [10**9, 2 * 10**9]}, "backoff")]
        for extra, named in cases:
            with self.subTest(extra=extra):
                natsctl.request(url, "$JS.API.CONSUMER.DELETE.SCRUBGATE." + durable, b"")
                r = natsctl.request(url, "$JS.API.CONSUMER.DURABLE.CREATE.SCRUBGATE." + durable,
                                    json.dumps({"stream_name": "SCRUBGATE", "config": dict({
                                        "durable_name": durable, "ack_policy": "explicit",
                                        "ack_wait": 60 * 10**9, "deliver_policy": "all",
                                        "filter_subject": "scrubgate.shop." + DEST},
                                        **extra)}).encode())
                if "error" in r and named == "backoff":
                    continue  # this nats-server wants max_deliver with a backoff: case above
                self.assertNotIn("error", r, r)
                p = Proxy([site_config(self.fake.url)], workers=1, extra=js_queue(self.nats))
                self.proxies.append(p)
                with self.assertRaises(RuntimeError) as cm:
                    p.start()
                self.assertIn("consumer %s of stream SCRUBGATE exists with another %s"
                              % (durable, named), str(cm.exception))

    def test_reload_signals_reach_the_main_thread_only(self):
        # libnats starts threads of its own before the workers. Each must block SIGHUP,
        # SIGINT and SIGTERM: a SIGHUP (reload) that arrives while the main thread is busy
        # goes to any thread that does not block it, and its default action ends the process.
        import signal
        p = self.proxy(workers=2)
        tasks = "/proc/%d/task" % p.proc.pid
        wanted = (1 << (signal.SIGHUP - 1)) | (1 << (signal.SIGINT - 1)) | \
            (1 << (signal.SIGTERM - 1))
        others = [t for t in os.listdir(tasks) if int(t) != p.proc.pid]
        self.assertGreater(len(others), 4)  # workers, commit threads, libnats, pull threads
        for t in others:
            with open("%s/%s/status" % (tasks, t)) as f:
                blk = [x for x in f.read().splitlines() if x.startswith("SigBlk:")][0]
            self.assertEqual(int(blk.split()[1], 16) & wanted, wanted, "thread %s: %s" % (t, blk))
        p.proc.send_signal(signal.SIGHUP)
        self.assertIn("applied by every worker", p.wait_log("applied by every worker", 10))
        self.assertIsNone(p.proc.poll())
        self.assertEqual(p.post([{"event": "Lead", "event_id": "after-hup"}])[0], 202)
        self.assertEqual(self.wait_delivered(["after-hup"]), set())

    def test_a_destination_whose_consumer_name_nats_refuses_is_a_config_error(self):
        # Ids whose escape doubles them make a consumer name over NATS's 255 bytes: refused
        # when the configuration is read, at start and on reload (the running one stays);
        # never a site that answers 202 and cannot deliver.
        from test_reload import Reloader
        p = self.proxy(workers=1)
        r = Reloader(p)
        cfg = r.config()
        sid = "a" + "-" * 63
        cfg["sites"].append(site_config(self.fake.url, id=sid, hosts=["long.example.com"],
                                        dest={"id": "b" + "-" * 63}))
        r.send(cfg)
        r.wait_log(r"sites\[1\]\.destinations\[0\].*consumer name would be 258 bytes")
        r.wait_log(r"reload: the new configuration is invalid")
        st, _, body = p.post([{"event": "Lead", "event_id": "long1"}], site=sid)
        self.assertEqual(st, 404, body)
        self.assertEqual(p.post([{"event": "Lead", "event_id": "still"}])[0], 202)
        self.assertEqual(self.wait_delivered(["still"]), set())
        p.stop()
        q = Proxy([cfg["sites"][1]], workers=1, extra=js_queue(self.nats))
        self.proxies.append(q)
        with self.assertRaises(RuntimeError) as cm:
            q.start()
        self.assertIn("consumer name would be 258 bytes", str(cm.exception))

    def test_events_held_longer_than_the_ack_wait_are_sent_once(self):
        # A fetched event may wait in an instance longer than the ack wait (upstream_timeout_ms
        # + 30 s): for its batch (flush_interval_ms, up to 60 s), or through the destination's
        # backoff. The queue marks it in progress meanwhile: the server never redelivers it,
        # to this instance or another, and it is sent once. Both cases run at once (~45 s).
        #
        # Backoff: A sends "first" (fails after 1.5 s) while "second" waits in A; A then backs
        # off 38 s, past the 33 s ack wait, and sends "second" when it ends. B, started
        # meanwhile, must not get "second" redelivered.
        nats2 = natsctl.Cluster(1).start()
        self.addCleanup(nats2.stop)
        limits = {"upstream_timeout_ms": 3000, "max_inflight": 1, "retry_base_ms": 76000,
                  "retry_cap_ms": 1, "flush_interval_ms": 1}
        a = Proxy([site_config(self.fake.url)], limits=limits, workers=1, extra=js_queue(nats2))
        self.proxies.append(a)
        a.start()
        self.fake.script([{"delay": 1.5, "http": 503}])
        self.assertEqual(a.post([{"event": "Lead", "event_id": "first"}])[0], 202)
        self.assertEqual(len(self.fake.wait_requests(1)), 1)  # "first" is in flight
        self.assertEqual(a.post([{"event": "Lead", "event_id": "second"}])[0], 202)
        durable = "sg-shop-tiktok_c" + PIXEL

        def ack_pending():
            return natsctl.consumer_info(nats2.urls()[0], "SCRUBGATE", durable)["num_ack_pending"]
        deadline = time.time() + 5
        while time.time() < deadline and ack_pending() != 2:
            time.sleep(0.02)
        self.assertEqual(ack_pending(), 2)  # "second" waits in A
        deadline = time.time() + 5
        while time.time() < deadline and not self.fake.requests[0].get("code"):
            time.sleep(0.02)  # the 503: A backs off
        b = Proxy([site_config(self.fake.url)], limits=limits, workers=1,
                  extra=js_queue(nats2))
        self.proxies.append(b)
        b.start()
        # Batch: an event waits 40 s for its batch; the ack wait is 30.1 s.
        other = self.other_fake()
        c = Proxy([site_config(other.url, dest={"pixel_code": "CPIXEL999"})], workers=1,
                  limits={"upstream_timeout_ms": 100, "flush_interval_ms": 40000},
                  extra=js_queue(self.nats))
        self.proxies.append(c)
        c.start()
        self.assertEqual(c.post([{"event": "Lead", "event_id": "slow-batch"}])[0], 202)
        self.assertEqual(self.wait_delivered(["slow-batch"], 55, fake=other), set())
        self.assertEqual(self.delivered(other), ["slow-batch"])
        self.assertEqual([x["event_id"] for x in c.wait_sync(1)], ["slow-batch"])
        # A sends "second" when its backoff ends; B never had it. "first" went back to the
        # stream after its 503 (A or B sent it again).
        deadline = time.time() + 50
        while time.time() < deadline and "second" not in [x["event_id"] for x in a.sync_log()]:
            time.sleep(0.2)
        self.assertIn("second", [x["event_id"] for x in a.sync_log()])
        self.assertEqual(self.wait_delivered(["first", "second"]), set())
        self.assertEqual(sorted(self.delivered()), ["first", "second"])
        self.assertNotIn("second", [x["event_id"] for x in b.sync_log()])
        self.assertEqual(sorted(x["event_id"] for x in a.sync_log() + b.sync_log()),
                         ["first", "second"])

    def test_a_removed_stream_is_created_again_before_any_publish(self):
        # The pull threads find the stream gone and create it (and their consumers) again,
        # with one warning, not a line per consumer per second; the next request is a 202.
        s = site_config(self.fake.url, dest={"id": "d0"})
        for i in range(1, 6):
            s["destinations"].append(dict(s["destinations"][0], id="d%d" % i))
        p = self.proxy(sites=[s], workers=2)
        url = self.nats.urls()[0]
        r = natsctl.request(url, "$JS.API.STREAM.DELETE.SCRUBGATE", b"")
        self.assertTrue(r.get("success"), r)
        before = len(p.stderr_lines)
        self.assertIn("stream SCRUBGATE created", p.wait_log("stream SCRUBGATE created", 10))
        deadline, names = time.time() + 10, []
        while time.time() < deadline and len(names) < 6:
            r = natsctl.request(url, "$JS.API.CONSUMER.NAMES.SCRUBGATE", b"")
            names = r.get("consumers") or []
            time.sleep(0.1)
        self.assertEqual(sorted(names), ["sg-shop-d%d" % i for i in range(6)])
        logged = [x for x in p.stderr_lines[before:] if " error: " in x or " warn" in x]
        self.assertLessEqual(len(logged), 4, logged)
        st, _, body = p.post([{"event": "Lead", "event_id": "after-rm"}])
        self.assertEqual(st, 202, body)
        self.assertEqual(self.wait_delivered(["after-rm"]), set())

    def test_event_ids_with_line_breaks_are_not_merged_by_the_duplicate_window(self):
        # The Nats-Msg-Id header carries the event_id: one holding CR LF must neither end the
        # header early (merging ids that share a prefix) nor add a header of its own.
        p = self.proxy()
        ids = ["ev\r\nX-A: 1", "ev\r\nX-B: 2", "ev"]
        for x in ids:
            st, _, body = p.post([{"event": "Lead", "event_id": x}])
            self.assertEqual(st, 202, body)
        self.assertEqual(self.wait_delivered(ids), set())
        self.assertEqual(len(p.wait_sync(3)), 3)
        self.assertEqual(sorted(self.delivered()), sorted(ids))

    def test_a_password_holding_url_characters_is_not_logged(self):
        # libnats takes a password holding '@', '/', '?' or '#' as it is: the host is what
        # follows the last '@', and nothing before it is logged, at start or on reconnect.
        from harness import free_port
        for pw in ["hunter2@tail-S3CRET", "pa/ss-S3CRET", "pa?ss-S3CRET", "pa#ss-S3CRET"]:
            with self.subTest(password=pw):
                p = Proxy([site_config(self.fake.url)], workers=1, extra={"queue": {
                    "type": "jetstream", "stream": "SCRUBGATE", "replicas": 1,
                    "servers": ["nats://scrub:%s@127.0.0.1:%d" % (pw, free_port())]}})
                self.proxies.append(p)
                with self.assertRaises(RuntimeError) as cm:
                    p.start()
                self.assertIn("cannot connect to nats://***@127.0.0.1:", str(cm.exception))
                self.assertNotIn("S3CRET", str(cm.exception))
        self.nats.stop()
        self.nats = natsctl.Cluster(1, extra=(
            'authorization { users: [ { user: sg, password: "pa/ss-S3CRET" } ] }'))
        self.nats.user = "sg:pa/ss-S3CRET"
        self.nats.start()
        p = self.proxy(workers=1)
        self.assertEqual(p.post([{"event": "Lead", "event_id": "pw1"}])[0], 202)
        self.nats.nodes[0].kill()  # a reconnect line names the server
        self.nats.nodes[0].start()
        self.assertIn("reconnected to nats://***@127.0.0.1", p.wait_log("reconnected to", 10))
        p.stop()
        self.assertNotIn("S3CRET", p.stderr())

    def test_event_ids_libnats_would_rewrite_are_delivered_and_logged_as_sent(self):
        # libnats writes CR and LF in a header as spaces and trims white space at both ends:
        # ids made of them, or differing only by them, must neither share a Nats-Msg-Id (the
        # second would be dropped as a duplicate after its 202) nor come back changed (an
        # empty Sg-Event-Id made the message "not a scrubgate event"; the sync log named
        # another id than the one sent).
        p = self.proxy(workers=1)
        ids = ["ev\r\nzz", "ev  zz", "a\rb", "a\nb", "a b", " ", "\t", "\r\n", "  ",
               "\x0b", "\x0c", "  x", "x  ", "\tx", "ord-1\r\n2", "50%25", "a/b"]
        for x in ids:
            st, _, body = p.post([{"event": "Lead", "event_id": x}])
            self.assertEqual(st, 202, (x, body))
        self.assertEqual(self.wait_delivered(ids), set())
        self.assertEqual(sorted(r["event_id"] for r in p.wait_sync(len(ids))), sorted(ids))
        self.assertEqual(sorted(self.delivered()), sorted(ids))
        self.assertNotIn("not a scrubgate event", p.stderr())

    def test_a_stream_recreated_with_a_limit_is_refused_at_run_time(self):
        # Removed and created again by someone else with a limit that drops events (max_msgs
        # with discard old): the instance finds it (each second while it is lost, every 10 s
        # otherwise), answers 503 instead of 202, and says why in /healthz.
        p = self.proxy_with_admin()
        url = self.nats.urls()[0]
        r = self.replace_stream(url, {
            "name": "SCRUBGATE", "subjects": ["scrubgate.>"], "storage": "file",
            "num_replicas": 1, "duplicate_window": 120 * 10**9, "max_msgs": 5,
            "discard": "old", "retention": "workqueue"})
        self.assertNotIn("error", r, r)
        self.assertIn("exists with another max_msgs",
                      p.wait_log("exists with another max_msgs", 15))
        deadline, st = time.time() + 5, 202
        while time.time() < deadline and st == 202:
            st, _, body = p.post([{"event": "Lead", "event_id": "lim"}])
        self.assertEqual(st, 503, body)
        self.assertIn(b"stream_misconfigured", self.healthz()[1])
        # Fixed (removed): created again as it should be, and 202 again.
        self.assertTrue(natsctl.request(url, "$JS.API.STREAM.DELETE.SCRUBGATE", b"")
                        .get("success"))
        deadline, st = time.time() + 15, 503
        while time.time() < deadline and st != 202:
            st, _, _ = p.post([{"event": "Lead", "event_id": "fixed"}])
            time.sleep(0.2)
        self.assertEqual(st, 202)
        self.assertEqual(self.wait_delivered(["fixed"]), set(), p.stderr()[-3000:])
        self.assertEqual(natsctl.stream_info(url, "SCRUBGATE")["config"].get("max_msgs"), -1)

    def test_a_publish_stored_by_another_stream_is_not_a_202(self):
        # SCRUBGATE removed, and another stream (limits retention, max_msgs 5) now takes the
        # subjects scrubgate.>: its acks would name that stream, which no consumer of ours
        # reads and which drops events past 5. Publishes expect SCRUBGATE: 503, never a 202.
        p = self.proxy_with_admin()
        url = self.nats.urls()[0]
        self.assertEqual(p.post([{"event": "Lead", "event_id": "before"}])[0], 202)
        self.assertEqual(self.wait_delivered(["before"]), set())
        r = self.replace_stream(url, {"name": "OTHER", "subjects": ["scrubgate.>"],
                                      "storage": "file", "num_replicas": 1,
                                      "max_msgs": 5, "discard": "old"})
        self.assertNotIn("error", r, r)
        for i in range(10):
            st, _, body = p.post([{"event": "Lead", "event_id": "fs%d" % i}])
            self.assertEqual(st, 503, body)
        self.assertIn(b"stream_unusable", self.healthz()[1])
        self.assertEqual(natsctl.stream_info(url, "OTHER")["state"]["messages"], 0)

    def test_reloads_while_nats_does_not_answer_do_not_hold_the_loop(self):
        # NATS stops answering (SIGSTOP: the connection stays up) while reloads remove and add a
        # destination: the worker joins the destination's pull thread, which may be inside a
        # JetStream API call. Every such call ends within 0.5 s: requests are still answered
        # (503) within about a second, and each reload applies within one.
        import signal
        import threading
        from test_reload import Reloader
        other = self.other_fake()
        s2 = site_config(other.url, id="other", hosts=["other.example.com"],
                         dest={"pixel_code": "CPIXEL999"})
        p = self.proxy(sites=[site_config(self.fake.url), s2], workers=1,
                       limits={"shutdown_timeout_ms": 100})
        r = Reloader(p)
        full, one = r.config(), r.config()
        one["sites"] = one["sites"][:1]
        node = self.nats.nodes[0]
        node.proc.send_signal(signal.SIGSTOP)
        self.addCleanup(lambda: node.proc.poll() is None and node.proc.send_signal(signal.SIGCONT))
        slow, stop = [], threading.Event()

        def load():
            k = 0
            while not stop.is_set():
                t = time.time()
                try:
                    st, _, _ = p.post([{"event": "Lead", "event_id": "stall%d" % k}])
                except OSError:
                    st = 0
                if time.time() - t > 1.5:
                    slow.append(("request", st, round(time.time() - t, 1)))
                k += 1
                time.sleep(0.05)
        th = threading.Thread(target=load, daemon=True)
        th.start()
        try:
            for i in range(6):
                t = time.time()
                r.reload(one if i % 2 == 0 else full)
                if time.time() - t > 1.5:
                    slow.append(("reload %d" % i, round(time.time() - t, 1)))
                time.sleep(0.5)
        finally:
            stop.set()
            th.join(10)
            node.proc.send_signal(signal.SIGCONT)
        self.assertEqual(slow, [], p.stderr()[-1500:])

    def test_a_reload_without_the_queue_cannot_add_a_name_nats_refuses(self):
        # The queue is a restart setting: a reload file without it keeps the running jetstream
        # queue, so its names are checked all the same.
        from test_reload import Reloader
        p = self.proxy(workers=1)
        r = Reloader(p)
        cfg = r.config()
        cfg["sites"].append(site_config(self.fake.url, id="a" + "-" * 63,
                                        hosts=["long.example.com"], dest={"id": "b" + "-" * 63}))
        del cfg["queue"]
        r.send(cfg)
        r.wait_log(r"consumer name would be 258 bytes.*the running configuration stays")
        st, _, body = p.post([{"event": "Lead", "event_id": "long1"}], site="a" + "-" * 63)
        self.assertEqual(st, 404, body)

    def test_an_overlong_stream_name_is_a_config_error(self):
        p = Proxy([site_config(self.fake.url)], workers=1,
                  extra=js_queue(self.nats, stream="S" * 256))
        self.proxies.append(p)
        with self.assertRaises(RuntimeError) as cm:
            p.start()
        self.assertRegex(str(cm.exception), r"scrubgate\.json:\d+:\d+: queue\.stream: must be "
                                            r"1 to 255 bytes")

    def hold_one_event_in_a_backoff(self, extra_limits=None, sites=None):
        """A sends "first" (a 503 after 1 s) while "second" waits in A; A then backs off 30+ s
        holding "second"."""
        lim = {"upstream_timeout_ms": 3000, "max_inflight": 1, "retry_base_ms": 60000,
               "retry_cap_ms": 1, "flush_interval_ms": 1}
        lim.update(extra_limits or {})
        a = self.proxy(limits=lim, workers=1, sites=sites)
        self.fake.script([{"delay": 1.0, "http": 503}])
        self.assertEqual(a.post([{"event": "Lead", "event_id": "first"}])[0], 202)
        self.assertEqual(len(self.fake.wait_requests(1)), 1)
        self.assertEqual(a.post([{"event": "Lead", "event_id": "second"}])[0], 202)
        durable = "sg-shop-tiktok_c" + PIXEL
        deadline, ci = time.time() + 5, {}
        while time.time() < deadline and (not self.fake.requests[0].get("code") or
                                           ci.get("num_ack_pending") != 2):
            ci = natsctl.consumer_info(self.nats.urls()[0], "SCRUBGATE", durable)
            time.sleep(0.02)
        # "first" failed (a nak with its retry delay), "second" is held by A.
        self.assertEqual(ci.get("num_ack_pending"), 2, ci)
        return a

    def test_sigterm_while_an_event_is_held_is_prompt_clean_and_gives_it_back(self):
        # Stopping gives back what A holds at once (it would wait out the backoff and the
        # shutdown timeout otherwise); the nak goes through the subscription, which must
        # still exist then (it crashed the process).
        a = self.hold_one_event_in_a_backoff({"shutdown_timeout_ms": 5000})
        t = time.time()
        self.assertEqual(a.stop(), 0, a.stderr()[-800:])
        self.assertLess(time.time() - t, 2.0)
        self.proxy(workers=1)  # B sends it now, not after A's 33 s ack wait
        self.assertEqual(self.wait_delivered(["second"], 10), set())

    def test_a_reload_removing_a_destination_gives_what_it_holds_back_to_the_stream(self):
        # Not the dead letter: instances that still configure it send them (a rolling change),
        # or they wait in the stream until it is configured again.
        from test_reload import Reloader
        other = self.other_fake()
        s2 = site_config(other.url, id="other", hosts=["other.example.com"],
                         dest={"pixel_code": "CPIXEL999"})
        a = self.hold_one_event_in_a_backoff({"shutdown_timeout_ms": 500},
                                             sites=[site_config(self.fake.url), s2])
        r = Reloader(a)
        cfg = r.config()
        cfg["sites"] = cfg["sites"][1:]
        r.reload(cfg)
        r.wait_log(r"removed by a reload: [0-9]+ event\(s\) it held go back to the stream", 10)
        self.assertEqual([x for x in a.sync_log() if x["event_id"] == "second"], [])
        self.proxy(workers=1)  # configures the destination: sends it now
        self.assertEqual(self.wait_delivered(["second"], 10), set())

    def test_stop_under_load_leaves_no_callback_on_freed_memory(self):
        # libnats calls the disconnected callback on its own thread after the close: the
        # handle it uses is freed only after libnats's last (closed) callback. Under ASan
        # (the sanitizer stages) a use after free ends the process with an error.
        import threading
        for i in range(4):
            p = Proxy([site_config(self.fake.url)], workers=2, extra=js_queue(self.nats),
                      limits={"shutdown_timeout_ms": 300})
            self.proxies.append(p)
            p.start()
            stop = threading.Event()

            def load(n):
                k = 0
                while not stop.is_set():
                    try:
                        p.post([{"event": "Lead", "event_id": "u%d-%d-%d-%d" % (i, n, k, j)}
                                for j in range(20)])
                    except OSError:
                        pass
                    k += 1
            threads = [threading.Thread(target=load, args=(n,), daemon=True) for n in range(3)]
            for t in threads:
                t.start()
            time.sleep(0.5)
            rc = p.stop()
            stop.set()
            for t in threads:
                t.join(5)
            self.assertEqual(rc, 0, p.stderr()[-3000:])
            self.assertNotIn("AddressSanitizer", p.stderr())

    def test_tls_url_is_not_downgraded_to_plaintext(self):
        # A tls:// URL to a server without TLS: refused (start error), never plaintext.
        url = "tls://" + self.nats.urls()[0][len("nats://"):]
        p = Proxy([site_config(self.fake.url)], extra=js_queue(self.nats, servers=[url]))
        self.proxies.append(p)
        with self.assertRaises(RuntimeError) as cm:
            p.start()
        self.assertIn("jetstream: cannot connect to tls://", str(cm.exception))
        self.assertIn("Secure Connection", str(cm.exception))

    def test_ack_wait_outlasts_the_upstream_timeout(self):
        # ack_wait = upstream_timeout_ms + 30 s: a slow send is never redelivered in flight.
        # An adopted shorter one is raised; a longer one (another instance's) is kept.
        durable = "sg-shop-tiktok_c" + PIXEL
        url = self.nats.urls()[0]
        for timeout_ms, want_s in ((1000, 31), (5000, 35), (1000, 35)):
            p = self.proxy(limits={"upstream_timeout_ms": timeout_ms})
            ci = natsctl.consumer_info(url, "SCRUBGATE", durable)
            self.assertEqual(ci["config"]["ack_wait"], want_s * 10**9, (timeout_ms, ci))
            st, _, body = p.post([{"event": "Lead", "event_id": "aw%d" % timeout_ms}])
            self.assertEqual(st, 202, body)
            self.assertEqual(self.wait_delivered(["aw%d" % timeout_ms]), set())
            p.stop()

    def test_oversized_event_is_refused_with_its_reason(self):
        self.nats.stop()
        self.nats = natsctl.Cluster(1, max_payload=6000).start()
        p = self.proxy()
        big = {"event": "Lead", "event_id": "big",
               "properties": {"contents": [{"content_id": "c%05d" % i, "content_name": "x" * 40}
                                           for i in range(60)]}}
        st, _, body = p.post([big, {"event": "Lead", "event_id": "small"}])
        self.assertEqual(st, 202, body)
        doc = json.loads(body)
        self.assertEqual(doc["event_ids"], ["small"])
        self.assertEqual(doc["errors"][0]["index"], 0)
        self.assertIn("too large", doc["errors"][0]["reason"])
        self.assertEqual(self.wait_delivered(["small"]), set())

    def test_retries_go_back_to_the_stream_and_give_up_terminates(self):
        self.fake.script([{"http": 503, "body": ""}] * 2)
        p = self.proxy(limits={"retry_base_ms": 100, "retry_cap_ms": 200})
        self.assertEqual(p.post([{"event": "Lead", "event_id": "r1"}])[0], 202)
        self.assertEqual(self.wait_delivered(["r1"]), set())
        line = [r for r in p.wait_sync(1) if r["event_id"] == "r1"][0]
        self.assertEqual(line["status"], "accepted")
        self.assertEqual(line["attempts"], 3)  # from the stream's delivery count
        # A bad request: dead letter, then the message is terminated (never redelivered).
        self.fake.script([{"code": 40002}])
        self.assertEqual(p.post([{"event": "Lead", "event_id": "bad"}])[0], 202)
        lines = p.wait_sync(2)
        bad = [r for r in lines if r["event_id"] == "bad"]
        self.assertEqual(len(bad), 1)
        self.assertEqual(bad[0]["status"], "failed")
        time.sleep(1.0)
        self.assertEqual(len([r for r in p.sync_log() if r["event_id"] == "bad"]), 1)

    def test_token_pause_stops_pulling_and_resumes(self):
        self.fake.token = "rotated"  # the proxy's token is refused: 40105
        p = self.proxy(limits={"auth_probe_ms": 300})
        ids = ["t%d" % i for i in range(30)]
        self.assertEqual(p.post([{"event": "Lead", "event_id": x} for x in ids])[0], 202)
        p.wait_log("access token refused")
        time.sleep(1.5)
        # Paused: the events went back to the stream (nak with the probe delay) and one
        # probe per auth_probe_ms pulls a single event; none has an outcome yet.
        with self.fake.lock:
            probes = len(self.fake.requests)
        self.assertGreaterEqual(probes, 2)
        self.assertLessEqual(probes, 8)
        self.assertEqual(p.sync_log(), [])
        self.fake.token = TOKEN
        self.assertEqual(self.wait_delivered(ids), set())

    def test_a_publish_without_permission_answers_503_and_hides_the_password(self):
        self.nats.stop()
        self.nats = natsctl.Cluster(1, extra=(
            'authorization { users: [ { user: sg, password: "pw-s3cret-77", permissions: '
            '{ publish: { allow: [">"], deny: ["scrubgate.shop.>"] } } } ] }'))
        self.nats.user = "sg:pw-s3cret-77"
        self.nats.start()
        p = self.proxy()
        t = time.time()
        st, _, body = p.post([{"event": "Lead", "event_id": "denied"}])
        self.assertEqual(st, 503, body)
        self.assertLess(time.time() - t, 1.0)
        self.nats.nodes[0].kill()  # a reconnect line names the server
        self.nats.nodes[0].start()
        p.wait_log("reconnected to", 10)
        self.assertIn("reconnected to nats://***@127.0.0.1", p.stderr())
        self.assertNotIn("pw-s3cret-77", p.stderr())
        time.sleep(0.5)
        self.assertNotIn("denied", self.delivered())

    def test_slow_upstream_leaves_the_backlog_in_the_stream(self):
        self.fake.delay = 0.5
        p = self.proxy(limits={"batch_max_events": 10, "max_inflight": 1,
                               "flush_interval_ms": 20}, workers=1)
        ids = ["s%d" % i for i in range(100)]
        for k in range(0, 100, 20):
            self.assertEqual(p.post([{"event": "Lead", "event_id": x}
                                     for x in ids[k:k + 20]])[0], 202)
        time.sleep(1.2)
        durable = "sg-shop-tiktok_c" + PIXEL
        ci = natsctl.consumer_info(self.nats.urls()[0], "SCRUBGATE", durable)
        # The instance holds what one request can take (max_inflight x batch, plus the fetch
        # that was under way); the rest waits in the stream, on disk, for any instance.
        self.assertLessEqual(ci["num_ack_pending"], 20)
        self.assertGreaterEqual(ci["num_pending"], 50)
        self.assertLess(len(self.delivered()), 50)
        self.fake.delay = 0
        self.assertEqual(self.wait_delivered(ids, 30), set())
        self.assertEqual(len(self.delivered()), 100)

    def test_sigterm_under_load_is_prompt_and_the_other_instance_takes_over(self):
        self.fake.delay = 0.5  # 20 events/s per instance: 200 take both instances 5 s
        lim = {"batch_max_events": 10, "flush_interval_ms": 20, "max_inflight": 1}
        a = self.proxy(limits=lim, workers=1)
        b = self.proxy(limits=lim, workers=1)
        ids = ["g%d" % i for i in range(200)]
        for k in range(0, 200, 50):
            self.assertEqual(a.post([{"event": "Lead", "event_id": x}
                                     for x in ids[k:k + 50]])[0], 202)
        a.wait_sync(10, 5)
        time.sleep(0.2)  # A's next request is in flight (0.5 s): the drain waits for it
        t = time.time()
        self.assertEqual(a.stop(), 0)
        self.assertLess(time.time() - t, 3.0)  # the drain sends what it holds, pulls no more
        self.fake.delay = 0
        # Nothing A had taken waits for the 30 s ack wait: B sends the rest at once.
        self.assertEqual(self.wait_delivered(ids, 15), set())
        self.assertGreater(len(b.sync_log()), 0)

    def test_credentials_never_reach_the_log(self):
        d = tempfile.mkdtemp(prefix="sg-creds-")
        creds = os.path.join(d, "user.creds")
        with open(creds, "w") as f:
            f.write("-----BEGIN NATS USER JWT-----\nSECRETJWTVALUE123\n------END NATS USER "
                    "JWT------\n\n-----BEGIN USER NKEY SEED-----\nSUSECRETSEED456\n"
                    "------END USER NKEY SEED------\n")
        os.chmod(creds, 0o600)
        p = Proxy([site_config(self.fake.url)], extra=js_queue(self.nats, creds_file=creds))
        self.proxies.append(p)
        try:
            p.start()
            p.post([{"event": "Lead", "event_id": "c1"}])
            p.stop()
        except RuntimeError:
            p.proc.wait(10)
        log = p.stderr()
        self.assertNotIn("SECRETJWTVALUE123", log)
        self.assertNotIn("SUSECRETSEED456", log)


if __name__ == "__main__":
    unittest.main()
