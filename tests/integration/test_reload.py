"""SIGHUP reload: whatever the new file omits, nothing crashes and nothing 202'd is lost;
old configurations and removed destinations are freed; settings that need a restart are
named; /healthz speaks for every worker and destination.

Each reload is waited for through the log line "reload N applied by every worker", which
the main thread writes once every worker has switched to configuration N.
"""
import http.client
import json
import os
import re
import resource
import signal
import sys
import tempfile
import threading
import time
import unittest

from harness import PIXEL, TOKEN, FakeTikTok, Proxy, site_config, free_port, rss_kb

ADMIN_TOKEN = "admin-token-for-tests-1"
PIXEL_B = "CPIXELB456"


def dest(fake_url, pixel=PIXEL, **over):
    d = {"type": "tiktok", "pixel_code": pixel, "access_token_env": "SG_TEST_TOKEN",
         "api_base": fake_url}
    d.update(over)
    return d


class Reloader:
    """Rewrite the proxy's config file, send SIGHUP, wait until every worker applied it."""

    def __init__(self, proxy):
        self.proxy = proxy
        self.epoch = 0
        self.scanned = 0
        with open(proxy.config) as f:
            self.base = json.load(f)

    def config(self):
        return json.loads(json.dumps(self.base))

    def wait_log(self, pattern, timeout=10.0):
        """The next log line (after the last one this returned) that matches pattern."""
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        while time.time() < deadline:
            lines = self.proxy.stderr_lines
            while self.scanned < len(lines):
                line = lines[self.scanned]
                self.scanned += 1
                if rx.search(line):
                    return line
            if self.proxy.proc.poll() is not None:
                break
            time.sleep(0.002)
        raise AssertionError("no log line %r; exit %r; log:\n%s"
                             % (pattern, self.proxy.proc.poll(), self.proxy.stderr()[-4000:]))

    def send(self, cfg=None):
        """Write cfg (a dict; None: the file as it is) and send SIGHUP; no wait (a refused
        reload applies nothing)."""
        if cfg is not None:
            tmp = self.proxy.config + ".tmp"
            with open(tmp, "w") as f:
                json.dump(cfg, f, indent=1)
            os.replace(tmp, self.proxy.config)
        self.proxy.proc.send_signal(signal.SIGHUP)

    def reload(self, cfg=None):
        """Apply cfg (a dict; None: the file as it is) and return the 'applied' log line."""
        self.send(cfg)
        self.epoch += 1
        return self.wait_log(r"reload %d applied by every worker" % self.epoch)


class Admin:
    def __init__(self, addr):
        self.host, port = addr.split(":")
        self.port = int(port)

    def get(self, path, token=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        headers = {"Authorization": "Bearer " + token} if token else {}
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        body = r.read()
        conn.close()
        return r.status, body

    def health(self):
        status, body = self.get("/healthz")
        return status, json.loads(body)


def sanitized(pid):
    """Built with a sanitizer? ctest says so (clang links ASan statically, so /proc maps
    cannot tell); the maps check covers a binary run by hand."""
    if os.environ.get("SG_SANITIZED") in ("1", "ON", "TRUE"):
        return True
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


class ReloadCase(unittest.TestCase):
    def setUp(self):
        self.fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        self.fake_b = FakeTikTok(token=TOKEN, pixel=PIXEL_B).start()
        self.proxy = None

    def tearDown(self):
        if self.proxy:
            self.assertEqual(self.proxy.stop(), 0, self.proxy.stderr()[-4000:])
        self.fake.stop()
        self.fake_b.stop()

    def start(self, sites=None, admin=True, token=True, workers=2, limits=None, env=None,
              preexec_fn=None):
        extra = {}
        if admin:
            extra["admin_listen"] = "127.0.0.1:%d" % free_port()
        if token:
            extra["admin_token_env"] = "SG_ADMIN"
        if sites is None:
            sites = [site_config(self.fake.url)]
        e = {"SG_ADMIN": ADMIN_TOKEN}
        e.update(env or {})
        self.proxy = Proxy(sites, limits=limits or {"flush_interval_ms": 20}, workers=workers,
                           env=e, extra=extra).start(preexec_fn=preexec_fn)
        self.reloader = Reloader(self.proxy)
        self.admin = Admin(extra["admin_listen"]) if admin else None
        return self.proxy

    def post_ok(self, ids, site="shop", event="Purchase"):
        status, _, body = self.proxy.post([{"event": event, "event_id": i} for i in ids],
                                          site=site)
        self.assertEqual(status, 202, body)

    def wait_health(self, status, timeout=5.0):
        """/healthz once its status code is status (a reply is classified after the fake
        recorded it), or whatever it says at the deadline."""
        deadline = time.time() + timeout
        got = self.admin.health()
        while got[0] != status and time.time() < deadline:
            time.sleep(0.02)
            got = self.admin.health()
        return got

    def configs_held_settles_at(self, want, timeout=5.0):
        """Reload (with the file as it is) until the proxy holds want configurations in
        memory, or the deadline passes; how many it holds then."""
        deadline = time.time() + timeout
        held = None
        while time.time() < deadline and held != want:
            time.sleep(0.3)
            line = self.reloader.reload()
            held = int(re.search(r"\((\d+) reloaded configuration", line).group(1))
        return held

    def alive(self):
        self.assertIsNone(self.proxy.proc.poll(), self.proxy.stderr()[-4000:])


class AdminTokenReloadTest(ReloadCase):
    def test_token_removed_by_reload_answers_401_then_restored(self):
        # Issue 8: a bearer request after a reload that dropped admin_token_env crashed.
        self.start()
        self.assertEqual(self.admin.get("/metrics", ADMIN_TOKEN)[0], 200)
        cfg = self.reloader.config()
        del cfg["admin_token_env"]
        self.reloader.reload(cfg)
        self.assertIn("no admin token any more", self.proxy.stderr())
        for token in (ADMIN_TOKEN, "anything", None):
            self.assertEqual(self.admin.get("/metrics", token)[0], 401)
        self.assertEqual(self.admin.get("/admin/sync-log", ADMIN_TOKEN)[0], 401)
        self.assertEqual(self.admin.health(), (200, {"status": "ok"}))
        self.alive()
        self.post_ok(["a1"])
        self.assertEqual(len(self.fake.wait_events(1)), 1)
        # Configured again: on again, no restart needed (the listener never stopped).
        self.reloader.reload(self.reloader.config())
        status, body = self.admin.get("/metrics", ADMIN_TOKEN)
        self.assertEqual(status, 200)
        self.assertRegex(body.decode(), r'scrubgate_events_total\{site="shop",'
                                        r'destination="tiktok:CPIXEL123",status="accepted",'
                                        r'reason="ok"\} 1')

    def test_no_token_at_start_serves_healthz_only_until_a_reload_adds_one(self):
        self.start(token=False)
        self.assertIn("no admin token", self.proxy.stderr())
        self.assertEqual(self.admin.health(), (200, {"status": "ok"}))
        self.assertEqual(self.admin.get("/metrics", ADMIN_TOKEN)[0], 401)
        cfg = self.reloader.config()
        cfg["admin_token_env"] = "SG_ADMIN"
        self.reloader.reload(cfg)
        self.assertEqual(self.admin.get("/metrics", ADMIN_TOKEN)[0], 200)
        self.assertEqual(self.admin.get("/metrics", "wrong")[0], 401)

    def test_token_added_without_admin_listener_needs_a_restart(self):
        self.start(admin=False, token=False)
        cfg = self.reloader.config()
        port = free_port()
        cfg["admin_listen"] = "127.0.0.1:%d" % port
        cfg["admin_token_env"] = "SG_ADMIN"
        self.reloader.reload(cfg)
        log = self.proxy.stderr()
        self.assertRegex(log, r"admin token is configured but the admin listener is not "
                              r"running.*needs a restart")
        self.assertRegex(log, r"need a restart \(the running values stay\): admin_listen")
        with self.assertRaises(OSError):
            Admin("127.0.0.1:%d" % port).get("/healthz")
        self.alive()


class RestartSettingsTest(ReloadCase):
    def test_settings_that_need_a_restart_are_named_and_keep_their_values(self):
        self.start()
        old_port, old_state = self.proxy.port, self.proxy.state_dir
        cfg = self.reloader.config()
        cfg["listen"] = "127.0.0.1:%d" % free_port()
        cfg["workers"] = 3
        cfg["state_dir"] = old_state + "-moved"
        cfg["admin_listen"] = "127.0.0.1:%d" % free_port()
        cfg["limits"] = {"flush_interval_ms": 20, "max_connections": 1000,
                         "spool_max_bytes": 1 << 24, "max_response_bytes": 4096}
        self.reloader.reload(cfg)
        warning = [l for l in self.proxy.stderr_lines if "need a restart" in l]
        self.assertEqual(len(warning), 1, self.proxy.stderr())
        for name in ("listen", "workers", "state_dir", "admin_listen", "limits.max_connections",
                     "limits.spool_max_bytes", "limits.max_response_bytes"):
            self.assertRegex(warning[0], r"[:,] %s(,|$)" % re.escape(name))
        self.assertNotIn("flush_interval_ms", warning[0])
        # The old values stay: same port, same admin port, same state_dir, same workers.
        self.assertEqual(self.proxy.port, old_port)
        self.post_ok(["r1", "r2"])
        self.assertEqual(len(self.fake.wait_events(2)), 2)
        self.assertEqual(len(self.proxy.wait_sync(2)), 2)
        self.assertFalse(os.path.exists(old_state + "-moved"))
        self.assertEqual(self.admin.health()[0], 200)
        self.assertEqual(self.admin.get("/metrics", ADMIN_TOKEN)[0], 200)
        # A second reload of the same file warns again (the running values still differ).
        self.reloader.reload()
        self.assertEqual(len([l for l in self.proxy.stderr_lines if "need a restart" in l]), 2)


class OmissionsTest(ReloadCase):
    def full_config(self):
        shop = site_config(self.fake.url)
        shop["destinations"] = [dest(self.fake.url), dest(self.fake_b.url, PIXEL_B)]
        blog = site_config(self.fake.url, id="blog", hosts=["blog.example.com"],
                           allowed_origins=["https://blog.example.com"])
        return [shop, blog]

    def test_no_crash_whatever_the_reload_omits(self):
        self.start(sites=self.full_config())
        full = self.reloader.config()
        sent_a, sent_b = [], []

        def post(ids, expect_a, expect_b, site="shop"):
            self.post_ok(ids, site=site)
            if expect_a:
                sent_a.extend(ids)
            if expect_b:
                sent_b.extend(ids)
            self.assertEqual(len(self.fake.wait_events(len(sent_a))), len(sent_a))
            self.assertEqual(len(self.fake_b.wait_events(len(sent_b))), len(sent_b))
            self.alive()
            self.assertEqual(self.admin.health(), (200, {"status": "ok"}))

        post(["f1"], True, True)
        post(["b1"], True, False, site="blog")

        step = self.reloader.config()  # a site removed
        del step["sites"][1]
        self.reloader.reload(step)
        self.assertEqual(self.proxy.post([{"event": "Purchase"}], site="blog")[0], 404)
        post(["s1"], True, True)

        del step["sites"][0]["destinations"][1]  # a destination removed
        self.reloader.reload(step)
        post(["d1"], True, False)

        del step["admin_token_env"]  # the admin token removed
        self.reloader.reload(step)
        self.assertEqual(self.admin.get("/metrics", ADMIN_TOKEN)[0], 401)
        post(["t1"], True, False)

        step["limits"] = {"flush_interval_ms": 5, "max_events_per_request": 1,  # limits changed
                          "queue_max_events": 10, "batch_max_events": 1, "max_inflight": 1}
        self.reloader.reload(step)
        status, _, _ = self.proxy.post([{"event": "Purchase"}, {"event": "Purchase"}])
        self.assertEqual(status, 413)
        post(["l1"], True, False)

        step["sites"][0]["destinations"] = []  # every destination removed
        self.reloader.reload(step)
        self.post_ok(["n1"])
        self.alive()

        step["sites"][0]["event_map"] = {}  # optional keys omitted
        del step["sites"][0]["allowed_origins"]
        del step["sites"][0]["ingest_key_env"]
        del step["limits"]
        self.reloader.reload(step)
        self.post_ok(["o1"])

        self.reloader.reload(full)  # and everything back
        post(["z1"], True, True)
        post(["z2"], True, False, site="blog")
        self.assertEqual(self.admin.get("/metrics", ADMIN_TOKEN)[0], 200)
        got_a = [e["event_id"] for e in self.fake.events]
        got_b = [e["event_id"] for e in self.fake_b.events]
        self.assertEqual(sorted(got_a), sorted(sent_a))
        self.assertEqual(sorted(got_b), sorted(sent_b))


class AdoptTest(ReloadCase):
    def test_readded_destination_takes_its_queue_back(self):
        # Destination B's token (from a file, so a reload can change it) is refused: B pauses
        # with its events. Removing B retires its forwarder (events kept); configuring B again
        # with a good token must hand that same forwarder the new token, so its events go out
        # once, and no second forwarder runs beside it.
        fd, token_file = tempfile.mkstemp(prefix="sg-reload-token-")
        os.write(fd, b"wrong-token")
        os.close(fd)
        self.addCleanup(os.unlink, token_file)
        b = dest(self.fake_b.url, PIXEL_B, access_token_file=token_file)
        del b["access_token_env"]
        shop = site_config(self.fake.url)
        shop["destinations"] = [dest(self.fake.url), b]
        self.start(sites=[shop], workers=1,
                   limits={"flush_interval_ms": 20, "auth_probe_ms": 200,
                           "shutdown_timeout_ms": 30000})  # the grace of a removed destination
        full = self.reloader.config()
        self.post_ok(["q1", "q2", "q3"])
        self.assertEqual(self.fake_b.wait_requests(1)[0]["code"], 40105)
        self.assertEqual(self.wait_health(503),
                         (503, {"status": "degraded", "reasons": ["paused:tiktok:" + PIXEL_B]}))

        removed = self.reloader.config()
        del removed["sites"][0]["destinations"][1]
        self.reloader.reload(removed)
        self.post_ok(["q4"])  # for A only
        self.assertEqual(len(self.fake.wait_events(4)), 4)
        # The retired forwarder still holds q1..q3 (and still says it is paused).
        self.assertEqual(self.admin.health()[0], 503)
        self.assertEqual(self.fake_b.events, [])

        with open(token_file, "w") as f:
            f.write(TOKEN)
        self.reloader.reload(full)
        self.post_ok(["q5"])
        self.fake_b.wait_events(4)
        time.sleep(0.3)  # and nothing more comes
        got = [e["event_id"] for e in self.fake_b.events]
        self.assertEqual(sorted(got), ["q1", "q2", "q3", "q5"])
        lines = self.proxy.wait_sync(9)
        self.assertEqual(sorted((l["destination"], l["event_id"]) for l in lines),
                         sorted([("tiktok:" + PIXEL, "q%d" % i) for i in range(1, 6)] +
                                [("tiktok:" + PIXEL_B, q) for q in ("q1", "q2", "q3", "q5")]))
        self.assertEqual(self.wait_health(200), (200, {"status": "ok"}))
        self.assertRegex(self.proxy.stderr(), r"destination tiktok:%s \(site shop\) configured "
                                              r"again: it resumes with the 3 event\(s\)" % PIXEL_B)

    def test_removed_destination_delivers_what_it_holds_then_is_freed(self):
        self.fake_b.delay = 0.5  # B's requests are in flight when the reload removes it
        shop = site_config(self.fake.url)
        shop["destinations"] = [dest(self.fake.url), dest(self.fake_b.url, PIXEL_B)]
        self.start(sites=[shop], workers=1)
        self.post_ok(["w1", "w2"])
        self.fake_b.wait_requests(1)
        removed = self.reloader.config()
        del removed["sites"][0]["destinations"][1]
        self.reloader.reload(removed)
        self.assertEqual(sorted(e["event_id"] for e in self.fake_b.wait_events(2)), ["w1", "w2"])
        # Once it is empty (freed within a second) its configuration is freed too: only the
        # running one stays in memory.
        self.assertEqual(self.configs_held_settles_at(1), 1, self.proxy.stderr())


    def test_removed_destination_still_holding_events_is_dead_lettered_after_its_grace(self):
        # A removed destination that cannot deliver (paused by a token error) must not pin
        # its configuration, and every later one, in memory for as long as it is stuck: after
        # shutdown_timeout_ms its events go to the dead letter, as a restart would do.
        b = dest(self.fake_b.url, PIXEL_B, access_token_env="SG_BAD_TOKEN")
        shop = site_config(self.fake.url)
        shop["destinations"] = [dest(self.fake.url), b]
        self.start(sites=[shop], workers=1, env={"SG_BAD_TOKEN": "revoked"},
                   limits={"flush_interval_ms": 20, "shutdown_timeout_ms": 500})
        self.post_ok(["g1", "g2"])
        self.assertEqual(self.fake_b.wait_requests(1)[0]["code"], 40105)
        removed = self.reloader.config()
        del removed["sites"][0]["destinations"][1]
        self.reloader.reload(removed)
        lines = [l for l in self.proxy.wait_sync(4) if l["destination"] == "tiktok:" + PIXEL_B]
        self.assertEqual(sorted((l["event_id"], l["status"], l["reason"]) for l in lines),
                         [("g1", "failed", "destination_removed"),
                          ("g2", "failed", "destination_removed")])
        with open(os.path.join(self.proxy.state_dir, "dead-letter", "dead-letter.jsonl")) as f:
            dead = [json.loads(l) for l in f]
        self.assertEqual(sorted(d["event_id"] for d in dead), ["g1", "g2"])
        self.assertEqual(self.configs_held_settles_at(1), 1, self.proxy.stderr())


class HealthzTest(ReloadCase):
    def test_paused_destination_degrades_healthz_until_resumed(self):
        self.start(limits={"flush_interval_ms": 20, "auth_probe_ms": 200},
                   env={"SG_TEST_TOKEN": "Bearer " + TOKEN})
        self.assertEqual(self.admin.health(), (200, {"status": "ok"}))
        self.post_ok(["p1"])
        self.assertEqual(self.fake.wait_requests(1)[0]["code"], 40105)
        self.assertEqual(self.wait_health(503),
                         (503, {"status": "degraded", "reasons": ["paused:tiktok:" + PIXEL]}))
        self.fake.token = "Bearer " + TOKEN
        self.assertEqual(len(self.fake.wait_events(1)), 1)
        self.assertEqual(self.wait_health(200), (200, {"status": "ok"}))

    def test_broken_spool_on_any_worker_degrades_healthz_and_names_it(self):
        def limit():
            resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))

        self.start(workers=2, limits={"flush_interval_ms": 20, "retry_base_ms": 60000},
                   sites=[site_config("http://127.0.0.1:%d" % free_port())], preexec_fn=limit)
        self.assertEqual(self.admin.health(), (200, {"status": "ok"}))
        for i in range(200):
            status, _, _ = self.proxy.post([{"event": "Lead", "event_id": "e%d-%d" % (i, j),
                                             "page": {"url": "https://shop.example.com/"
                                                      + "p" * 300}} for j in range(10)])
            if status == 503:
                break
        self.assertEqual(status, 503)
        status, body = self.admin.health()
        self.assertEqual((status, body["status"]), (503, "degraded"))
        self.assertTrue(body["reasons"])
        for reason in body["reasons"]:
            self.assertRegex(reason, r"^spool_broken:worker[01]$")


class RssTest(ReloadCase):
    # The allocator settles over the first few hundred reloads (1.2 MB by 3,000 reloads,
    # 1.5 MB by 6,000: fragmentation, not a leak, which would grow with the count); measured
    # from reload 500 to 2,000, growth is about 0.2-0.4 MB, and a leak of 1.4 KB per reload
    # fails the bound. (From reload 100 to 1,000 the settling alone came within 1% of it.)
    RELOADS = int(os.environ.get("SG_RELOADS", "2000"))
    WARMUP = 500
    BOUND_KB = 2048

    def test_rss_stays_flat_over_many_reloads_with_events_flowing(self):
        shop = site_config(self.fake.url)
        shop["destinations"] = [dest(self.fake.url), dest(self.fake_b.url, PIXEL_B)]
        blog = site_config(self.fake.url, id="blog", hosts=["blog.example.com"])
        self.start(sites=[shop, blog], workers=2)
        a = self.reloader.config()
        b = self.reloader.config()
        del b["sites"][1]                            # a site removed
        del b["sites"][0]["destinations"][1]         # a destination removed (then re-added)
        del b["admin_token_env"]                     # the admin token removed
        b["limits"] = {"flush_interval_ms": 30, "max_events_per_request": 50, "rate_per_ip": 0}
        texts = [json.dumps(b), json.dumps(a)]  # odd reloads remove, even ones restore

        stop = threading.Event()
        accepted, errors, admin_seen = [], [], set()

        def traffic(tag):
            # A new connection every 20 requests, so that both workers take events.
            n = 0
            while not stop.is_set():
                conn = http.client.HTTPConnection("127.0.0.1", self.proxy.port, timeout=10)
                for _ in range(20):
                    ids = ["%s%d-%d" % (tag, n, j) for j in range(5)]
                    n += 1
                    try:
                        conn.request("POST", "/v1/events?site=shop",
                                     body=json.dumps([{"event": "Purchase", "event_id": i}
                                                      for i in ids]),
                                     headers={"Content-Type": "application/json"})
                        r = conn.getresponse()
                        r.read()
                    except (OSError, http.client.HTTPException) as e:
                        errors.append(repr(e))
                        break
                    if r.status == 202:
                        accepted.extend(ids)
                    else:
                        errors.append(r.status)
                    time.sleep(0.002)
                conn.close()

        def admin_reads():
            # /healthz and /metrics read every worker's forwarders while they are swapped.
            while not stop.is_set():
                try:
                    admin_seen.add(self.admin.get("/healthz")[0])
                    admin_seen.add(self.admin.get("/metrics", ADMIN_TOKEN)[0])
                except OSError as e:
                    errors.append(repr(e))
                time.sleep(0.005)

        threads = [threading.Thread(target=traffic, args=(tag,), daemon=True) for tag in "xy"]
        threads.append(threading.Thread(target=admin_reads, daemon=True))
        for t in threads:
            t.start()
        pid = self.proxy.proc.pid
        started = time.time()
        first = None
        for i in range(self.RELOADS):
            with open(self.proxy.config + ".tmp", "w") as f:
                f.write(texts[i % 2])
            os.replace(self.proxy.config + ".tmp", self.proxy.config)
            line = self.reloader.reload()
            if i + 1 == self.WARMUP:
                first = rss_kb(pid)
        last = rss_kb(pid)
        held = int(re.search(r"\((\d+) reloaded configuration", line).group(1))
        elapsed = time.time() - started
        stop.set()
        for t in threads:
            t.join(15)
        asan = sanitized(pid)
        sys.stderr.write("\nRSS over %d reloads: %d kB after %d, %d kB after %d (growth %+d kB)"
                         "%s; %d events accepted; %.1f s\n"
                         % (self.RELOADS, first, self.WARMUP, last, self.RELOADS, last - first,
                            " [ASan: bound not checked]" if asan else "", len(accepted),
                            elapsed))
        self.assertEqual(errors, [])
        self.assertTrue(accepted)
        self.assertEqual(admin_seen, {200, 401})  # the token comes and goes
        self.assertLessEqual(held, 2, line)
        if not asan:
            self.assertLess(last - first, self.BOUND_KB)
        # Nothing answered 202 is lost: every event reaches A, once.
        got = self.fake.wait_events(len(accepted), timeout=30)
        self.assertEqual(sorted(e["event_id"] for e in got), sorted(accepted))
        # B, removed and configured again 500 times, never sent an event twice.
        got_b = [e["event_id"] for e in self.fake_b.events]
        self.assertTrue(got_b)
        self.assertEqual(len(got_b), len(set(got_b)))
        self.assertLessEqual(set(got_b), set(accepted))
        self.alive()


if __name__ == "__main__":
    unittest.main()
