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
        self.assertIn(b"shop/" + DEST.encode() + b"/a0", raw)  # Nats-Msg-Id
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

    def test_nats_down_answers_503_within_1s_and_recovers_by_itself(self):
        p = self.proxy()
        self.assertEqual(p.post([{"event": "Lead", "event_id": "before"}])[0], 202)
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
        self.assertEqual(self.wait_delivered(["before", "after"]), set())
        self.assertFalse({"down-%d" % i for i in range(5)} & set(self.delivered()))

    def test_a_stream_that_is_gone_answers_503_then_is_created_again(self):
        # The stream removed under a running instance: a publish has no stream to land in
        # (503, /healthz stream_unusable, one log line a second, not one per event); the
        # instance creates the stream and its consumer again by itself.
        import http.client
        from harness import free_port
        port = free_port()
        p = Proxy([site_config(self.fake.url)], workers=1,
                  extra=dict(js_queue(self.nats), admin_listen="127.0.0.1:%d" % port))
        self.proxies.append(p)
        p.start()
        self.assertEqual(p.post([{"event": "Lead", "event_id": "f0"}])[0], 202)
        self.assertEqual(self.wait_delivered(["f0"]), set())
        r = natsctl.request(self.nats.urls()[0], "$JS.API.STREAM.DELETE.SCRUBGATE", b"")
        self.assertTrue(r.get("success"), r)
        before = len(p.stderr_lines)
        t = time.time()
        st, _, body = p.post([{"event": "Lead", "event_id": "over%d" % i} for i in range(50)])
        self.assertEqual(st, 503, body)
        self.assertLess(time.time() - t, 1.5)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/healthz")
        r = c.getresponse()
        hb = r.read()
        c.close()
        self.assertEqual(r.status, 503, hb)
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
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/healthz")
        self.assertEqual(c.getresponse().status, 200)
        c.close()

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

    def test_adopted_consumer_with_max_deliver_is_refused_at_start(self):
        # max_deliver 1 would drop a 202 event at its first retry (a nak is never redelivered).
        durable = "sg-shop-tiktok_c" + PIXEL
        r = natsctl.create_stream(self.nats.urls()[0], {
            "name": "SCRUBGATE", "subjects": ["scrubgate.>"], "storage": "file",
            "num_replicas": 1, "duplicate_window": 120 * 10**9, "retention": "workqueue"})
        self.assertNotIn("error", r, r)
        r = natsctl.request(self.nats.urls()[0],
                            "$JS.API.CONSUMER.DURABLE.CREATE.SCRUBGATE." + durable,
                            json.dumps({"stream_name": "SCRUBGATE", "config": {
                                "durable_name": durable, "ack_policy": "explicit",
                                "ack_wait": 30 * 10**9, "deliver_policy": "all",
                                "filter_subject": "scrubgate.shop." + DEST,
                                "max_deliver": 1}}).encode())
        self.assertNotIn("error", r, r)
        p = Proxy([site_config(self.fake.url)], extra=js_queue(self.nats))
        self.proxies.append(p)
        with self.assertRaises(RuntimeError) as cm:
            p.start()
        self.assertIn("consumer %s of stream SCRUBGATE exists with another max_deliver"
                      % durable, str(cm.exception))

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
