"""The admin API, metrics, test-connection and ingest rate limits, through the real binary.

/healthz without a token; every other endpoint behind the admin bearer token;
/admin/sync-log newest first with filters (and fast on a 1,000,000-line log);
/metrics checked by promtool; a destination paused by a token error resumes
on any other reply; test-connection from the command line and the admin API;
429 with Retry-After over limits.rate_per_ip / rate_per_site.
"""
import http.client
import http.server
import json
import os
import re
import shutil
import statistics
import subprocess
import threading
import time
import unittest

from harness import (BIN, INGEST_KEY, PIXEL, ROOT, TOKEN, FakeTikTok, Proxy, closed_port_url,
                     free_port, site_config)

ADMIN = "admin-secret-0123456789"
DEST = "tiktok:" + PIXEL


def purchase(event_id, **over):
    e = {"event": "Purchase", "event_id": event_id, "properties": {"value": 5, "currency": "EUR"},
         "consent": "granted"}
    e.update(over)
    return e


class AdminBase(unittest.TestCase):
    def setUp(self):
        self.fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        self.proxy = None

    def tearDown(self):
        if self.proxy and self.proxy.proc:
            self.proxy.stop()
            shutil.rmtree(self.proxy.dir, ignore_errors=True)
        self.fake.stop()

    def start(self, sites=None, limits=None, env=None, workers=2, before_start=None):
        self.admin_port = free_port()
        self.proxy = Proxy(sites or [site_config(self.fake.url)], limits=limits, workers=workers,
                           env=dict({"SG_ADMIN": ADMIN}, **(env or {})),
                           extra={"admin_listen": "127.0.0.1:%d" % self.admin_port,
                                  "admin_token_env": "SG_ADMIN"})
        if before_start:
            before_start(self.proxy)
        return self.proxy.start()

    def admin(self, method, path, token=ADMIN, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        headers = {"Authorization": "Bearer " + token} if token is not None else {}
        conn.request(method, path, headers=headers)
        r = conn.getresponse()
        body = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        conn.close()
        return r.status, hdrs, body

    def metrics(self):
        status, hdrs, body = self.admin("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(hdrs["content-type"].startswith("text/plain; version=0.0.4"))
        return body.decode()

    def metric(self, text, name, **labels):
        """The value of one series (labels given must all match), None when absent."""
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all('%s="%s"' % (k, v) in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return None

    def wait_metric(self, name, want, timeout=10.0, **labels):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = self.metric(self.metrics(), name, **labels)
            if v == want:
                return v
            time.sleep(0.03)
        self.fail("%s%r never became %r (last %r)" % (name, labels, want, v))


class AuthAndRoutesTest(AdminBase):
    def test_healthz_without_token_and_every_other_endpoint_behind_it(self):
        self.start(workers=3)
        status, hdrs, body = self.admin("GET", "/healthz", token=None)
        self.assertEqual((status, json.loads(body)), (200, {"status": "ok"}))
        for method, path in (("GET", "/metrics"), ("GET", "/admin/sync-log"),
                             ("POST", "/admin/test-connection?site=shop")):
            for token in (None, "", "wrong", ADMIN[:-1], ADMIN + "x", ADMIN.upper()):
                status, hdrs, body = self.admin(method, path, token=token)
                self.assertEqual(status, 401, (method, path, token))
                self.assertIn("bearer", hdrs["www-authenticate"].lower())
                self.assertIn("error", json.loads(body))
        self.assertEqual(self.fake.requests, [])  # no test-connection went out unauthorized
        # Unknown routes 404, wrong methods 405 with Allow.
        self.assertEqual(self.admin("GET", "/admin/nothing")[0], 404)
        self.assertEqual(self.admin("GET", "/", token=None)[0], 404)
        for method, path, allow in (("POST", "/healthz", "GET"), ("POST", "/metrics", "GET"),
                                    ("DELETE", "/admin/sync-log", "GET"),
                                    ("GET", "/admin/test-connection", "POST")):
            status, hdrs, _ = self.admin(method, path)
            self.assertEqual((status, hdrs.get("allow")), (405, allow), (method, path))

    def test_no_admin_token_configured(self):
        self.start(env={"SG_ADMIN": ""})
        self.assertIn("only /healthz answers", self.proxy.wait_log("only /healthz answers"))
        self.assertEqual(self.admin("GET", "/healthz", token=None)[0], 200)
        self.assertEqual(self.admin("GET", "/metrics", token="")[0], 401)
        self.assertEqual(self.admin("GET", "/metrics", token="anything")[0], 401)


class SyncLogTest(AdminBase):
    def test_newest_first_filters_and_validation(self):
        self.start(limits={"flush_interval_ms": 20})
        events = [purchase("e%d" % i) for i in range(5)] + [purchase("x1", event="Search")]
        status, _, _ = self.proxy.post(events)
        self.assertEqual(status, 202)
        lines = self.proxy.wait_sync(6)
        self.assertEqual(len(lines), 6)
        status, hdrs, body = self.admin("GET", "/admin/sync-log")
        self.assertEqual((status, hdrs["content-type"]), (200, "application/json"))
        self.assertEqual(json.loads(body), list(reversed(lines)))  # exactly the log, newest first

        def q(query):
            status, _, body = self.admin("GET", "/admin/sync-log?" + query)
            self.assertEqual(status, 200, (query, body))
            return json.loads(body)

        self.assertEqual([l["event_id"] for l in q("event_id=e3")], ["e3"])
        self.assertEqual([l["event_id"] for l in q("status=skipped")], ["x1"])
        self.assertEqual(q("status=skipped")[0]["reason"], "not_in_allowlist")
        self.assertEqual(len(q("status=accepted&site=shop")), 5)
        self.assertEqual(q("site=blog"), [])
        self.assertEqual(q("limit=2"), list(reversed(lines))[:2])
        self.assertEqual(q("since=%d" % (time.time() + 3600)), [])
        self.assertEqual(len(q("since=2020-01-01T00:00:00Z&limit=1000")), 6)
        self.assertEqual(len(q("since=%d" % (lines[0]["ts"] - 1))), 6)
        for bad, why in (("limit=0", "limit"), ("limit=1001", "limit"), ("limit=ten", "limit"),
                         ("limit=", "limit"), ("status=ok", "status"),
                         ("since=yesterday", "since"), ("since=2026-13-01T00:00:00Z", "since"),
                         ("evil=1", "unknown parameter"), ("limit=1&limit=2", "twice"),
                         ("limit=+1", "limit"), ("limit=%201", "limit"), ("limit=1%20", "limit"),
                         ("since=+5", "since"), ("since=99999999999999999999", "since"),
                         ("site=shop%00x", "malformed"), ("event_id=e1%00", "malformed")):
            status, _, body = self.admin("GET", "/admin/sync-log?" + bad)
            self.assertEqual(status, 400, bad)
            self.assertIn(why, json.loads(body)["error"], bad)
            self.assertEqual(body.count(b"\n"), 1)

    def test_a_torn_last_line_does_not_swallow_the_next_record(self):
        """A crash in the middle of a write leaves a line without its newline (found by the
        adversarial review: the next record was glued to it and could not be read)."""
        def torn(proxy):
            os.makedirs(proxy.state_dir, exist_ok=True)
            with open(os.path.join(proxy.state_dir, "sync-log.jsonl"), "w") as f:
                f.write('{"ts": 1, "event_id": "before", "status": "accepted"}\n{"ts": 2, "ev')
        self.start(limits={"flush_interval_ms": 20}, before_start=torn)
        self.assertEqual(self.proxy.post([purchase("after-crash")])[0], 202)
        path = os.path.join(self.proxy.state_dir, "sync-log.jsonl")
        deadline = time.time() + 10
        while time.time() < deadline:
            with open(path) as f:
                lines = f.read().split("\n")
            if len(lines) >= 4:
                break
            time.sleep(0.02)
        # The fragment is a line of its own; the new record starts a line and parses.
        self.assertEqual(lines[1], '{"ts": 2, "ev')
        self.assertEqual(json.loads(lines[2])["event_id"], "after-crash")
        self.assertEqual(lines[3], "")
        status, _, body = self.admin("GET", "/admin/sync-log?event_id=after-crash")
        self.assertEqual(status, 200)
        self.assertEqual([l["event_id"] for l in json.loads(body)], ["after-crash"])

    def test_a_million_lines_newest_first_under_100_ms(self):
        n = 1000000
        t0 = int(time.time()) - n // 100

        def write_log(proxy):
            os.makedirs(proxy.state_dir, exist_ok=True)
            line = ('{"ts":%d,"site":"shop","destination":"' + DEST + '","event":"Purchase",'
                    '"event_id":"old-%d","status":"%s","reason":"%s","http_status":200,'
                    '"code":0,"request_id":"r%d","attempts":1,"rules":[],"rule_set":"v1"}\n')
            with open(os.path.join(proxy.state_dir, "sync-log.jsonl"), "w") as f:
                chunk = []
                for i in range(n):
                    st = "skipped" if i % 50 == 0 else "accepted"
                    chunk.append(line % (t0 + i // 100, i, st, "dry_run" if st == "skipped"
                                         else "ok", i))
                    if len(chunk) == 10000:
                        f.write("".join(chunk))
                        chunk = []
                f.write("".join(chunk))
                f.write('{"ts":%d,"site":"shop","event_id":"half-writ' % (t0 + n))  # no newline

        self.start(before_start=write_log, workers=1)  # the admin's loop is the only ingest loop
        size = os.path.getsize(os.path.join(self.proxy.state_dir, "sync-log.jsonl"))
        self.assertGreater(size, 100 * 1000 * 1000)

        # The bound is the Release build's; a sanitized build runs the same queries several
        # times slower and checks their answers, not their speed.
        bound = 0.5 if os.environ.get("SG_SANITIZED") in ("1", "ON", "TRUE") else 0.100

        def timed(query):
            times, body = [], None
            for _ in range(7):
                t = time.perf_counter()
                status, _, body = self.admin("GET", "/admin/sync-log" + query)
                times.append(time.perf_counter() - t)
                self.assertEqual(status, 200)
            return statistics.median(times), json.loads(body)

        median, got = timed("")
        print("\nsync-log on %d lines (%d MB): newest 100 in %.1f ms (median of 7)"
              % (n, size // 1000000, median * 1000))
        self.assertLess(median, bound)
        self.assertEqual([l["event_id"] for l in got],
                         ["old-%d" % i for i in range(n - 1, n - 101, -1)])  # half line left out
        median, got = timed("?limit=1000&status=skipped")
        print("sync-log: newest 1000 skipped (1 line in 50) in %.1f ms" % (median * 1000))
        self.assertLess(median, bound)
        self.assertEqual(len(got), 1000)
        self.assertEqual(got[0]["event_id"], "old-%d" % (n - 50))
        # since stops the backward read early: a filter that matches nothing is fast too.
        median, got = timed("?event_id=nothing&since=%d" % (t0 + n // 100 - 10))
        print("sync-log: no match since the last 10 s in %.1f ms" % (median * 1000))
        self.assertLess(median, bound)
        self.assertEqual(got, [])
        # A filter that matches nothing and no since reads the whole log: on its own thread, so
        # the loop it was asked on (here the only ingest loop) goes on answering meanwhile.
        result = {}

        def full_scan():
            t = time.perf_counter()
            result["status"] = self.admin("GET", "/admin/sync-log?event_id=nothing",
                                          timeout=60)[0]
            result["took"] = time.perf_counter() - t

        scan = threading.Thread(target=full_scan)
        scan.start()
        worst, during = 0.0, 0
        while scan.is_alive() and during < 5:
            t = time.perf_counter()
            self.assertEqual(self.proxy.post([purchase("during%d" % during)])[0], 202)
            worst = max(worst, time.perf_counter() - t)
            during += 1
        scan.join()
        self.assertGreaterEqual(during, 2, "the scan ended before ingest could be measured")
        print("sync-log: full scan of %d lines in %.0f ms; ingest meanwhile: worst %.1f ms"
              % (n, result["took"] * 1000, worst * 1000))
        self.assertEqual(result["status"], 200)
        self.assertLess(worst, 0.3)


class MetricsTest(AdminBase):
    def promtool(self, text):
        tool = shutil.which("promtool")
        if not tool:
            if os.environ.get("CI"):
                self.fail("promtool is missing (Debian package prometheus, scripts/packages.txt)")
            self.skipTest("promtool not installed (apt-get install prometheus)")
        r = subprocess.run([tool, "check", "metrics"], input=text, text=True,
                           capture_output=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr + text)

    def test_exposition_passes_promtool_and_counts_what_happened(self):
        dry = site_config(self.fake.url, id="blog", hosts=["blog.example.com"],
                          dest={"dry_run": True, "pixel_code": "CBLOGDRY"})
        self.start(sites=[site_config(self.fake.url), dry], limits={"flush_interval_ms": 20})
        self.fake.script([{"code": 20001}])
        self.assertEqual(self.proxy.post([purchase("p1")])[0], 202)
        self.fake.wait_events(0)
        self.proxy.wait_sync(1)
        self.assertEqual(self.proxy.post([purchase("a1"), purchase("a2"),
                                          purchase("s1", event="Search")])[0], 202)
        self.assertEqual(self.proxy.post([purchase("d1")], site="blog")[0], 202)
        self.assertEqual(self.proxy.post([purchase("u1")], site="nope")[0], 404)
        self.assertEqual(self.proxy.request("GET", "/v1/events")[0], 405)
        # A connection-level error (ambiguous framing) is an ingest reply too, with no site.
        self.proxy.request("POST", "/v1/events?site=shop", b"{}",
                           [("Content-Length", "2"), ("Transfer-Encoding", "chunked")])
        self.proxy.wait_sync(6)
        self.fake.wait_events(2)
        text = self.metrics()
        self.promtool(text)
        families = re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)
        helps = re.findall(r"^# HELP (\S+) ", text, re.M)
        self.assertEqual([f for f, _ in families], helps)
        for name, series in ((n, [l for l in text.splitlines()
                                  if l.startswith(n) and not l.startswith("#")])
                             for n, _ in families):
            for line in series:  # every sample belongs to a declared family
                self.assertTrue(line.startswith(name), line)
        types = dict(families)
        for name, typ in (("scrubgate_build_info", "gauge"),
                          ("scrubgate_ingest_requests_total", "counter"),
                          ("scrubgate_events_total", "counter"),
                          ("scrubgate_queue_events", "gauge"),
                          ("scrubgate_spool_bytes", "gauge"),
                          ("scrubgate_upstream_request_duration_seconds", "histogram"),
                          ("scrubgate_destination_paused", "gauge"),
                          ("scrubgate_dead_letter_events", "gauge"),
                          ("scrubgate_retries_total", "counter"),
                          ("scrubgate_auth_pauses_total", "counter")):
            self.assertEqual(types.get(name), typ, name)
        m = lambda name, **kw: self.metric(text, name, **kw)  # noqa: E731
        self.assertEqual(m("scrubgate_build_info"), 1)
        self.assertEqual(m("scrubgate_ingest_requests_total", site="shop", code="202"), 2)
        self.assertEqual(m("scrubgate_ingest_requests_total", site="blog", code="202"), 1)
        self.assertEqual(m("scrubgate_ingest_requests_total", site="", code="404"), 1)
        self.assertEqual(m("scrubgate_ingest_requests_total", site="", code="405"), 1)
        self.assertEqual(m("scrubgate_ingest_requests_total", site="", code="400"), 1)
        ev = "scrubgate_events_total"
        self.assertEqual(m(ev, site="shop", destination=DEST, status="partial_failure"), 1)
        self.assertEqual(m(ev, site="shop", destination=DEST, status="accepted", reason="ok"), 2)
        self.assertEqual(m(ev, site="shop", status="skipped", reason="not_in_allowlist"), 1)
        self.assertEqual(m(ev, site="blog", destination="tiktok:CBLOGDRY", status="skipped",
                           reason="dry_run"), 1)
        self.assertNotIn("partial\"", text)
        self.assertEqual(m("scrubgate_queue_events", site="shop"), 0)
        self.assertEqual(m("scrubgate_destination_paused", site="shop"), 0)
        self.assertEqual(m("scrubgate_upstream_request_duration_seconds_count", site="shop"), 2)
        self.assertEqual(m("scrubgate_upstream_request_duration_seconds_bucket", site="shop",
                           le="+Inf"), 2)
        self.assertGreater(m("scrubgate_spool_bytes"), 0)
        self.assertEqual(m("scrubgate_dead_letter_events"), 0)

    def test_pause_clears_on_any_other_reply_and_counts_pauses_not_probes(self):
        self.fake.token = "rotated-on-tiktoks-side"  # the proxy's token is refused: 40105
        self.start(limits={"flush_interval_ms": 20, "auth_probe_ms": 300,
                           "retry_base_ms": 3000, "retry_cap_ms": 3000})
        self.assertEqual(self.proxy.post([purchase("q1"), purchase("q2")])[0], 202)
        self.wait_metric("scrubgate_destination_paused", 1, site="shop", destination=DEST)
        self.fake.wait_requests(3)  # the first refusal and two refused probes
        text = self.metrics()
        self.assertEqual(self.metric(text, "scrubgate_auth_pauses_total", site="shop"), 1)
        status, _, body = self.admin("GET", "/healthz", token=None)
        self.assertEqual((status, json.loads(body)),
                         (503, {"status": "degraded", "reasons": ["paused:" + DEST]}))
        # TikTok takes the token again but fails with a 500: the pause ends (the token is
        # fine), the events wait for their retry instead of for the next probe.
        with self.fake.lock:
            seen = len(self.fake.requests)
            self.fake._script.append({"http": 500, "body": "<html>oops</html>"})
            self.fake.token = TOKEN
        reqs = self.fake.wait_requests(seen + 1)
        self.assertEqual(reqs[seen]["code"], 500)
        self.wait_metric("scrubgate_destination_paused", 0, timeout=2, site="shop")
        self.assertEqual(self.admin("GET", "/healthz", token=None)[0], 200)
        got = self.fake.wait_events(2)
        self.assertEqual(sorted(e["event_id"] for e in got), ["q1", "q2"])
        text = self.metrics()
        self.assertEqual(self.metric(text, "scrubgate_auth_pauses_total", site="shop"), 1)
        self.assertGreaterEqual(self.metric(text, "scrubgate_retries_total", site="shop"), 2)


class TestConnectionTest(AdminBase):
    def cli(self, proxy, *args, env=None):
        e = dict(proxy.env, **(env or {}))
        r = subprocess.run([BIN, "test-connection", "-c", proxy.config] + list(args), cwd=ROOT,
                           env=e, capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout, r.stderr

    def test_cli_good_revoked_unreachable_dry_run(self):
        sites = [site_config(self.fake.url),
                 site_config(self.fake.url, id="coded", dest={"test_event_code": "TEST4242"}),
                 site_config(closed_port_url(), id="down"),
                 site_config(self.fake.url, id="dry", dest={"dry_run": True})]
        proxy = self.proxy = Proxy(sites)

        rc, out, err = self.cli(proxy, "--site", "shop")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"^%s: ok \(code 0, request_id [0-9a-f]+\)\n$" % DEST)
        body = self.fake.requests[-1]["body"]
        self.assertEqual(body["test_event_code"], "TEST_CONNECTION")
        self.assertEqual(len(body["data"]), 1)
        self.assertEqual(body["data"][0]["event"], "Purchase")
        self.assertRegex(body["data"][0]["event_id"], r"^test-connection-\d{10}$")
        self.assertEqual(self.fake.requests[-1]["headers"]["Access-Token"], TOKEN)
        self.assertFalse(os.path.exists(proxy.state_dir))  # no spool, no sync log

        rc, out, err = self.cli(proxy, "--site", "coded", "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.fake.requests[-1]["body"]["test_event_code"], "TEST4242")
        r = json.loads(out)
        self.assertEqual({k: r[k] for k in ("destination", "status", "http_status", "code",
                                            "hint")},
                         {"destination": DEST, "status": "ok", "http_status": 200, "code": 0,
                          "hint": None})

        revoked = "revoked-token-abcdef123456"
        rc, out, err = self.cli(proxy, "--site", "shop", env={"SG_TEST_TOKEN": revoked})
        self.assertEqual(rc, 1)
        self.assertRegex(out, r"^%s: FAILED \(http 200, code 40105: Access token is incorrect "
                              r"or has been revoked, request_id [0-9a-f]+\) - rotate the access "
                              r"token\n$" % DEST)
        rc2, out2, err2 = self.cli(proxy, "--site", "shop", "--json",
                                   env={"SG_TEST_TOKEN": revoked})
        self.assertEqual(rc2, 1)
        r = json.loads(out2)
        self.assertEqual((r["status"], r["code"], r["hint"]),
                         ("failed", 40105, "rotate the access token"))
        for text in (out, err, out2, err2):
            self.assertNotIn(revoked, text)
            self.assertNotIn(TOKEN, text)

        rc, out, err = self.cli(proxy, "--site", "down")
        self.assertEqual(rc, 1)
        self.assertRegex(out, r"^%s: FAILED \(no reply: .+\) - check api_base and network\n$"
                         % DEST)

        n = len(self.fake.requests)
        rc, out, err = self.cli(proxy, "--site", "dry")
        self.assertEqual((rc, out), (0, "%s: dry run: not sent\n" % DEST))
        rc, out, err = self.cli(proxy, "--site", "dry", "--json")
        self.assertEqual(json.loads(out)["status"], "dry_run")
        self.assertEqual(len(self.fake.requests), n)  # nothing sent

        rc, out, err = self.cli(proxy, "--site", "nope")
        self.assertEqual((rc, out), (2, ""))
        self.assertIn(proxy.config, err)
        self.assertIn('"nope"', err)

    def test_a_hostile_api_base_cannot_make_it_print_the_token(self):
        """Found by the adversarial review: an api_base that echoes the token in request_id, or
        with the token across the message's 300-character cut, must not get it printed."""
        modes = {}

        class Echo(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                tok, mode = self.headers.get("Access-Token", ""), modes["mode"]
                body = json.dumps({"code": 40105, "data": {},
                                   "message": "x" * 290 + tok if mode == "cut" else
                                   "token %s... is bad" % tok[:12],
                                   "request_id": tok if mode == "rid" else "rid1"}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            proxy = self.proxy = Proxy([site_config("http://127.0.0.1:%d" % srv.server_port)])
            for mode in ("cut", "rid", "piece"):
                modes["mode"] = mode
                for args in (("--site", "shop"), ("--site", "shop", "--json")):
                    rc, out, err = self.cli(proxy, *args)
                    self.assertEqual(rc, 1, (mode, out, err))
                    for text in (out, err):
                        for k in range(len(TOKEN) - 7):  # no piece of 8 bytes or more
                            self.assertNotIn(TOKEN[k:k + 8], text, (mode, args, text))
        finally:
            srv.shutdown()
            srv.server_close()

    def test_cli_every_destination_one_line_each(self):
        other = FakeTikTok(token="another-token", pixel="CPIXEL999").start()
        try:
            site = site_config(self.fake.url)
            site["destinations"].append({"type": "tiktok", "pixel_code": "CPIXEL999",
                                         "access_token_env": "SG_TEST_TOKEN",
                                         "api_base": other.url})
            proxy = self.proxy = Proxy([site])
            rc, out, _ = self.cli(proxy, "--site", "shop")
            self.assertEqual(rc, 1)  # the second destination's token is not its pixel's
            lines = out.splitlines()
            self.assertEqual(len(lines), 2)
            self.assertTrue(lines[0].startswith(DEST + ": ok"))
            self.assertTrue(lines[1].startswith("tiktok:CPIXEL999: FAILED (http 200, code 40105"))
        finally:
            other.stop()

    def test_admin_endpoint(self):
        sites = [site_config(self.fake.url), site_config(closed_port_url(), id="down"),
                 site_config(self.fake.url, id="dry", dest={"dry_run": True})]
        self.start(sites=sites)
        status, hdrs, body = self.admin("POST", "/admin/test-connection?site=shop")
        self.assertEqual((status, hdrs["content-type"]), (200, "application/json"))
        r = json.loads(body)
        self.assertTrue(r["ok"])
        self.assertEqual(r["destinations"][0]["status"], "ok")
        self.assertEqual(self.fake.requests[-1]["body"]["test_event_code"], "TEST_CONNECTION")
        r = json.loads(self.admin("POST", "/admin/test-connection?site=down")[2])
        self.assertEqual((r["ok"], r["destinations"][0]["hint"]),
                         (False, "check api_base and network"))
        r = json.loads(self.admin("POST", "/admin/test-connection?site=dry")[2])
        self.assertEqual((r["ok"], r["destinations"][0]["status"]), (True, "dry_run"))
        self.assertEqual(self.admin("POST", "/admin/test-connection?site=nope")[0], 404)
        self.assertEqual(self.admin("POST", "/admin/test-connection")[0], 400)
        self.assertEqual(self.admin("POST", "/admin/test-connection?site=shop&x=1")[0], 400)
        # Revoked: 40105 with its hint; the token appears nowhere.
        self.fake.token = "rotated"
        status, _, body = self.admin("POST", "/admin/test-connection?site=shop")
        r = json.loads(body)
        self.assertEqual((status, r["ok"], r["destinations"][0]["code"],
                          r["destinations"][0]["hint"]),
                         (200, False, 40105, "rotate the access token"))
        self.assertNotIn(TOKEN.encode(), body)
        self.assertNotIn(TOKEN, self.proxy.stderr())
        # The loop is not blocked while TikTok is slow: /healthz answers meanwhile.
        self.fake.token = TOKEN
        self.fake.delay = 1.5
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        conn.request("POST", "/admin/test-connection?site=shop",
                     headers={"Authorization": "Bearer " + ADMIN})
        time.sleep(0.2)
        t = time.perf_counter()
        self.assertEqual(self.admin("GET", "/healthz", token=None)[0], 200)
        self.assertLess(time.perf_counter() - t, 0.5)
        r = conn.getresponse()
        self.assertEqual(json.loads(r.read())["destinations"][0]["status"], "ok")
        conn.close()


class RateLimitTest(AdminBase):
    def test_per_ip_burst_then_429_then_passes_again(self):
        # One worker: the buckets are per worker (docs/OPERATIONS.md).
        self.start(limits={"rate_per_ip": 5, "flush_interval_ms": 20}, workers=1)
        status, _, _ = self.proxy.post([purchase("b%d" % i) for i in range(10)])  # the burst
        self.assertEqual(status, 202)
        status, hdrs, body = self.proxy.post([purchase("over1"), purchase("over2")])
        self.assertEqual(status, 429)
        self.assertGreaterEqual(int(hdrs["retry-after"]), 1)
        self.assertIn("too many events", json.loads(body)["error"])
        # Another client behind the trusted proxy has its own bucket; a site's own server
        # (ingest key) is not limited per IP.
        self.assertEqual(self.proxy.post([purchase("xff1")],
                                         headers={"X-Forwarded-For": "203.0.113.7"})[0], 202)
        self.assertEqual(self.proxy.post([purchase("srv%d" % i) for i in range(20)],
                                         headers={"Authorization": "Bearer " + INGEST_KEY})[0],
                         202)
        # Poll until the bucket refilled (no fixed sleep): it passes again.
        deadline, status = time.time() + 5, 429
        while status == 429 and time.time() < deadline:
            time.sleep(0.05)
            status = self.proxy.post([purchase("later")])[0]
        self.assertEqual(status, 202)
        got = self.fake.wait_events(10 + 1 + 20 + 1)
        ids = {e["event_id"] for e in got}
        self.assertEqual(len(got), 32)
        self.assertNotIn("over1", ids)
        self.assertNotIn("over2", ids)
        self.assertNotIn("over1", json.dumps(self.proxy.sync_log()))
        text = self.metrics()
        self.assertGreaterEqual(self.metric(text, "scrubgate_ingest_requests_total", site="shop",
                                            code="429"), 1)

    def test_ipv6_clients_are_limited_per_64(self):
        """Found by the adversarial review: rotating addresses inside one /64 took a fresh
        bucket each. A /64 is one bucket; another /64 has its own."""
        self.start(limits={"rate_per_ip": 1, "flush_interval_ms": 20}, workers=1)
        start = time.time()
        codes = [self.proxy.post([purchase("v6-%d" % i)],
                                 headers={"X-Forwarded-For": "2001:db8:1:2::%x" % (i + 1)})[0]
                 for i in range(30)]
        # The burst (2), plus what refilled at 1/s while the 30 requests ran; never 30.
        self.assertLessEqual(codes.count(202), 2 + int(time.time() - start) + 1, codes)
        self.assertEqual(codes[:2], [202, 202])
        self.assertEqual(self.proxy.post([purchase("v6-other")],
                                         headers={"X-Forwarded-For": "2001:db8:1:3::1"})[0], 202)

    def test_per_site_applies_to_servers_too(self):
        self.start(limits={"rate_per_ip": 0, "rate_per_site": 3}, workers=1)
        key = {"Authorization": "Bearer " + INGEST_KEY}
        self.assertEqual(self.proxy.post([purchase("s%d" % i) for i in range(6)],
                                         headers=key)[0], 202)
        status, hdrs, body = self.proxy.post([purchase("s6")], headers=key)
        self.assertEqual(status, 429)
        self.assertIn("site", json.loads(body)["error"])
        self.assertGreaterEqual(int(hdrs["retry-after"]), 1)


if __name__ == "__main__":
    unittest.main()
