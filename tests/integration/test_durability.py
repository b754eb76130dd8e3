"""No event answered 202 is ever lost: kill -9, torn segments, a full spool."""
import glob
import http.client
import json
import signal
import os
import resource
import subprocess
import threading
import tempfile
import time
import unittest

from harness import (BIN, PIXEL, ROOT, TOKEN, FakeTikTok, Proxy, closed_port_url, free_port,
                     site_config)


class DurabilityTest(unittest.TestCase):
    def setUp(self):
        self.fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        self.proxy = None

    def tearDown(self):
        if self.proxy and self.proxy.proc.poll() is None:
            self.proxy.stop()
        self.fake.stop()

    def delivered(self):
        with self.fake.lock:
            return {e["event_id"] for e in self.fake.events}

    def point_at_fake(self):
        """The upstream comes back: the proxy's config now names the fake TikTok."""
        with open(self.proxy.config) as f:
            cfg = json.load(f)
        cfg["sites"][0]["destinations"][0]["api_base"] = self.fake.url
        with open(self.proxy.config, "w") as f:
            json.dump(cfg, f)

    def wait_delivered(self, ids, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline and not ids <= self.delivered():
            time.sleep(0.05)
        return ids - self.delivered()

    def test_kill_9_under_load_loses_nothing_answered_202(self):
        self.fake.delay = 0.2  # a slow upstream: plenty is queued and in flight at the kill
        self.proxy = Proxy([site_config(self.fake.url)],
                           limits={"flush_interval_ms": 50, "batch_max_events": 50}).start()
        acked, stop = set(), threading.Event()

        def sender(n):
            i = 0
            while not stop.is_set():
                ids = ["k%d-%d-%d" % (n, i, j) for j in range(10)]
                try:
                    status, _, body = self.proxy.post([{"event": "Lead", "event_id": x}
                                                       for x in ids])
                except OSError:
                    return
                if status == 202:
                    acked.update(json.loads(body)["event_ids"])
                i += 1

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        self.proxy.kill()
        stop.set()
        for t in threads:
            t.join()
        self.assertGreater(len(acked), 200)
        missing_before = acked - self.delivered()
        self.assertTrue(missing_before, "the kill should leave events undelivered")
        self.fake.delay = 0
        self.proxy.start()  # same config, same state_dir: the spool is replayed
        self.assertEqual(self.wait_delivered(acked), set())
        self.assertIn("recovered and queued", self.proxy.stderr())
        self.assertEqual(self.proxy.stop(), 0)

    def test_torn_segment_tail_is_recovered(self):
        self.proxy = Proxy([site_config(closed_port_url())],
                           limits={"flush_interval_ms": 20, "retry_base_ms": 60000}).start()
        status, _, body = self.proxy.post([{"event": "Lead", "event_id": "t%d" % i}
                                           for i in range(5)])
        self.assertEqual(status, 202, body)
        self.proxy.kill()
        segs = sorted(glob.glob(os.path.join(self.proxy.state_dir, "spool", "*.seg")))
        self.assertTrue(segs)
        with open(segs[-1], "ab") as f:  # a crash in the middle of the next record
            f.write(b"SGR1\x01\x00\x00\x00\xff\x00\x00\x00garbage")
        self.point_at_fake()
        self.proxy.start()
        self.assertEqual(self.wait_delivered({"t%d" % i for i in range(5)}), set())
        self.assertIn("corrupt or torn", self.proxy.stderr())
        self.assertEqual(self.proxy.stop(), 0)
        # Everything delivered: the spool is empty again.
        deadline = time.time() + 5
        while time.time() < deadline and glob.glob(os.path.join(self.proxy.state_dir, "spool",
                                                                 "*.seg")):
            time.sleep(0.05)

    def test_file_size_limit_refuses_only_what_failed(self):
        # Every file the proxy writes may grow to 64 KiB: past that, writes fail (EFBIG),
        # as they would on a full or failing disk. The request whose write fails is
        # answered 503, and its events are never sent; the next one goes to a new segment.
        def limit():
            resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))

        self.proxy = Proxy([site_config(closed_port_url())], workers=1,
                           limits={"flush_interval_ms": 20, "retry_base_ms": 60000,
                                   "spool_segment_bytes": 1 << 20})
        self.proxy.start(preexec_fn=limit)
        statuses, acked, refused = [], set(), set()
        for i in range(100):
            ids = ["e%d-%d" % (i, j) for j in range(10)]
            status, headers, body = self.proxy.post([{"event": "Lead", "event_id": x,
                                                      "page": {"url": "https://shop.example.com/"
                                                               + "p" * 300}} for x in ids])
            statuses.append(status)
            (acked if status == 202 else refused).update(ids)
            if status == 503:
                self.assertEqual(headers["retry-after"], "1")
                self.assertIn(b"spool unavailable", body)
            if 503 in statuses and statuses[-1] == 202:
                break
        self.assertIn(503, statuses)
        self.assertEqual(statuses[-1], 202, "the proxy did not heal after the failed write")
        self.assertIn("answered 503", self.proxy.wait_log("answered 503"))
        self.proxy.kill()
        # What was answered 202 is on disk: a restart without the limit delivers all of it,
        # and nothing of what was answered 503.
        self.point_at_fake()
        self.proxy.start()
        self.assertTrue(acked)
        self.assertEqual(self.wait_delivered(acked), set())
        self.assertEqual(self.delivered() & refused, set())
        self.assertEqual(self.proxy.stop(), 0)

    def test_events_of_a_removed_destination_are_dead_lettered_at_start_with_an_outcome(self):
        self.proxy = Proxy([site_config(closed_port_url())],
                           limits={"flush_interval_ms": 20, "retry_base_ms": 60000}).start()
        status, _, _ = self.proxy.post([{"event": "Lead", "event_id": "orphan%d" % i}
                                        for i in range(3)])
        self.assertEqual(status, 202)
        self.proxy.kill()
        with open(self.proxy.config) as f:
            cfg = json.load(f)
        cfg["sites"][0]["destinations"][0]["pixel_code"] = "CANOTHER1"  # another destination
        cfg["sites"][0]["destinations"][0]["api_base"] = self.fake.url
        with open(self.proxy.config, "w") as f:
            json.dump(cfg, f)
        self.proxy.start()
        lines = self.proxy.sync_log()
        self.assertEqual(sorted((l["event_id"], l["status"], l["reason"], l["destination"])
                                for l in lines),
                         [("orphan%d" % i, "failed", "destination_removed", "tiktok:" + PIXEL)
                          for i in range(3)])
        with open(os.path.join(self.proxy.state_dir, "dead-letter", "dead-letter.jsonl")) as f:
            self.assertEqual(sorted(json.loads(l)["event_id"] for l in f),
                             ["orphan0", "orphan1", "orphan2"])
        self.assertEqual(self.proxy.stop(), 0)

    def test_second_instance_on_the_same_state_dir_exits(self):
        self.proxy = Proxy([site_config(closed_port_url())],
                           limits={"flush_interval_ms": 20, "retry_base_ms": 60000}).start()
        status, _, _ = self.proxy.post({"event": "Lead", "event_id": "owner-1"})
        self.assertEqual(status, 202)
        segs = glob.glob(os.path.join(self.proxy.state_dir, "spool", "*.seg"))
        # Same config file, so the same state_dir and the same port.
        with open(self.proxy.config) as f:
            cfg = json.load(f)
        cfg["listen"] = "127.0.0.1:%d" % self.proxy.port
        with open(self.proxy.config, "w") as f:
            json.dump(cfg, f)
        second = subprocess.run([BIN, "serve", "-c", self.proxy.config], env=self.proxy.env,
                                capture_output=True, text=True, timeout=10)
        self.assertEqual(second.returncode, 1)
        self.assertIn("state_dir %s is in use by another scrubgate (pid %d)"
                      % (self.proxy.state_dir, self.proxy.proc.pid), second.stderr)
        self.assertNotIn("listening", second.stderr)
        self.assertNotIn("recovered", second.stderr)
        # The owner is untouched: its segment is still there and it still takes events.
        self.assertTrue(all(os.path.exists(s) for s in segs))
        status, _, _ = self.proxy.post({"event": "Lead", "event_id": "owner-2"})
        self.assertEqual(status, 202)
        self.assertEqual(self.proxy.stop(), 0)
        # Once the owner is gone (even by kill -9), the next one starts.
        self.proxy.start()
        self.proxy.kill()
        self.proxy.start()
        self.assertIn("2 event(s) recovered", self.proxy.stderr())
        self.assertEqual(self.proxy.stop(), 0)

    def test_paused_destination_keeps_events_across_a_restart(self):
        self.proxy = Proxy([site_config(self.fake.url)], limits={"flush_interval_ms": 20},
                           env={"SG_TEST_TOKEN": "revoked-token"}).start()
        status, _, _ = self.proxy.post([{"event": "Lead", "event_id": "p%d" % i} for i in range(3)])
        self.assertEqual(status, 202)
        self.assertEqual(self.fake.wait_requests(1)[0]["code"], 40105)
        started = time.time()
        self.assertEqual(self.proxy.stop(), 0)
        self.assertLess(time.time() - started, 3)  # nothing to wait for: the events are spooled
        self.assertEqual(self.proxy.sync_log(), [])
        self.proxy.env["SG_TEST_TOKEN"] = TOKEN  # the operator rotates the token and restarts
        self.proxy.start()
        self.assertEqual(self.wait_delivered({"p0", "p1", "p2"}), set())
        self.assertEqual(self.proxy.stop(), 0)

    def test_full_spool_answers_503(self):
        self.proxy = Proxy([site_config(closed_port_url())], workers=1,
                           limits={"flush_interval_ms": 20, "retry_base_ms": 60000,
                                   "spool_max_bytes": 65536}).start()
        statuses = []
        for i in range(200):
            status, headers, _ = self.proxy.post([{"event": "Lead", "event_id": "f%d-%d" % (i, j),
                                                   "page": {"url": "https://shop.example.com/"
                                                            + "p" * 200}} for j in range(10)])
            statuses.append(status)
            if status == 503:
                self.assertEqual(headers["retry-after"], "1")
                break
        self.assertEqual(statuses[-1], 503)
        self.assertTrue(all(s == 202 for s in statuses[:-1]))
        self.assertEqual(self.proxy.stop(), 0)


class ReloadTest(unittest.TestCase):
    def test_sync_log_names_the_rule_set_that_scrubbed_the_event(self):
        # Events scrubbed under one rule set and delivered after a reload changed it are
        # recorded with the rule set that scrubbed them, not the one loaded at delivery.
        fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        d = tempfile.mkdtemp(prefix="sg-rules-")
        rules = os.path.join(d, "rules.json")
        with open(os.path.join(ROOT, "rules", "default.json")) as f:
            doc = json.load(f)
        with open(rules, "w") as f:
            json.dump(doc, f)
        proxy = Proxy([site_config(closed_port_url(), rules=rules)], workers=1,
                      limits={"flush_interval_ms": 20, "retry_base_ms": 200,
                              "retry_cap_ms": 400}).start()
        try:
            status, _, _ = proxy.post({"event": "Lead", "event_id": "bot"},
                                      headers={"User-Agent": "curl/8.0"})
            self.assertEqual(status, 202)
            before = proxy.wait_sync(1)[0]["rule_set"]
            status, _, _ = proxy.post({"event": "Lead", "event_id": "scrubbed-before"})
            self.assertEqual(status, 202)
            doc["description"] = "changed: a new version"
            with open(rules, "w") as f:
                json.dump(doc, f)
            with open(proxy.config) as f:
                cfg = json.load(f)
            cfg["sites"][0]["destinations"][0]["api_base"] = fake.url
            with open(proxy.config, "w") as f:
                json.dump(cfg, f)
            proxy.proc.send_signal(signal.SIGHUP)
            proxy.wait_log("reload: 1 site(s)")
            status, _, _ = proxy.post({"event": "Lead", "event_id": "scrubbed-after"})
            self.assertEqual(status, 202)
            lines = {l["event_id"]: l for l in proxy.wait_sync(3, timeout=15)}
            self.assertEqual(lines["scrubbed-before"]["status"], "accepted")
            self.assertEqual(lines["scrubbed-before"]["rule_set"], before)
            self.assertNotEqual(lines["scrubbed-after"]["rule_set"], before)
        finally:
            proxy.stop()
            fake.stop()

    def test_sighup_reloads_without_dropping_connections(self):
        fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        proxy = Proxy([site_config(fake.url)], limits={"flush_interval_ms": 20}, workers=1).start()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)

            def post(ev):
                conn.request("POST", "/v1/events?site=shop", body=json.dumps(ev),
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                return r.status

            self.assertEqual(post({"event": "won", "event_id": "h1"}), 202)
            self.assertEqual(fake.wait_events(1)[0]["event"], "Purchase")
            with open(proxy.config) as f:
                good = json.load(f)
            # An invalid file: the error says where, and the running configuration stays.
            with open(proxy.config, "w") as f:
                f.write('{"sites": [\n  {"id": "shop",,}\n]}')
            proxy.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 5
            while time.time() < deadline and "running one stays" not in proxy.stderr():
                time.sleep(0.05)
            self.assertIn("running one stays", proxy.stderr())
            self.assertRegex(proxy.stderr(), r"scrubgate\.json:2:\d+:")
            self.assertEqual(post({"event": "won", "event_id": "h2"}), 202)
            self.assertEqual(fake.wait_events(2)[1]["event"], "Purchase")
            # A valid one: applied on the same keep-alive connection.
            good["sites"][0]["event_map"] = {"won": "Lead"}
            with open(proxy.config, "w") as f:
                json.dump(good, f)
            proxy.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 5
            while time.time() < deadline and "reload: 1 site(s)" not in proxy.stderr():
                time.sleep(0.05)
            time.sleep(0.2)
            self.assertEqual(post({"event": "won", "event_id": "h3"}), 202)
            self.assertEqual(fake.wait_events(3)[2]["event"], "Lead")
            conn.close()
        finally:
            self.assertEqual(proxy.stop(), 0)
            fake.stop()


class ReplayTest(unittest.TestCase):
    def test_replay_sends_dead_letters_once(self):
        fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        proxy = Proxy([site_config(fake.url)], limits={"flush_interval_ms": 20}).start()
        try:
            fake.script([{"code": 40002}])  # refused once: into the dead letter
            status, _, _ = proxy.post([{"event": "Lead", "event_id": "d%d" % i} for i in range(3)])
            self.assertEqual(status, 202)
            self.assertEqual(len(proxy.wait_sync(3)), 3)
        finally:
            self.assertEqual(proxy.stop(), 0)
        self.assertEqual(fake.events, [])

        def replay(*extra):
            return subprocess.run([BIN, "replay", "-c", proxy.config] + list(extra), cwd=ROOT,
                                  env=proxy.env, capture_output=True, text=True, timeout=30)

        r = replay("--site", "shop", "--since", "2999-01-01T00:00:00Z")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("0 delivered", r.stdout)
        r = replay("--site", "shop")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("3 delivered", r.stdout)
        self.assertEqual(sorted(e["event_id"] for e in fake.events), ["d0", "d1", "d2"])
        lines = proxy.sync_log()
        self.assertEqual([l["status"] for l in lines[3:]], ["accepted"] * 3)
        self.assertEqual(lines[3]["attempts"], 2)
        r = replay()  # already replayed: nothing is sent twice
        self.assertIn("0 delivered", r.stdout)
        self.assertEqual(len(fake.events), 3)
        self.assertEqual(replay("--site", "nope").returncode, 2)
        fake.stop()


if __name__ == "__main__":
    unittest.main()
