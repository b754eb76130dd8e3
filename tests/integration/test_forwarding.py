"""End to end: a browser event in, a minimized TikTok v1.3 request out.

The real binary, real sockets, the strict fake TikTok; every expected hash is
computed here independently of the C code.
"""
import hashlib
import http.client
import json
import os
import signal
import socket
import time
import unittest

from harness import (INGEST_KEY, PIXEL, SECRET, TOKEN, FakeTikTok, Proxy, keyed, session_from,
                     site_config)

BASE_EVENT = {
    "event": "Purchase",
    "event_id": "order_1",
    "page": {"url": "https://shop.example.com/thanks?ttclid=E.C.P.click1&email=jane%40doe.com"
                    "&utm_source=tiktok",
             "referrer": "https://shop.example.com/checkout/jane.doe@example.com"},
    "properties": {"value": "89.99", "currency": "usd", "order_id": 991,
                   "contents": [{"content_id": 123, "quantity": 1, "price": 89.99,
                                 "content_name": "Gift for bob@example.com"}],
                   "custom_thing": "dropped"},
    "user": {"email": "Jane.Doe@Example.com", "phone": "+1 213 373 4253", "first_name": "Jane"},
}
UA = "Mozilla/5.0 (X11; Linux x86_64) scrubgate-test"
COOKIES = "_ttp=ttp-cookie-value; other=1"


def event(**over):
    e = json.loads(json.dumps(BASE_EVENT))
    e.update(over)
    return e


class ForwardingTest(unittest.TestCase):
    def setUp(self):
        self.fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        self.proxy = None

    def tearDown(self):
        if self.proxy:
            self.assertEqual(self.proxy.stop(), 0, self.proxy.stderr())
        self.fake.stop()

    def start(self, **site_over):
        limits = site_over.pop("limits", {"flush_interval_ms": 20})
        trusted = site_over.pop("trusted", ("127.0.0.1/32", "::1/128"))
        self.proxy = Proxy([site_config(self.fake.url, **site_over)], limits=limits,
                           trusted=trusted).start()
        return self.proxy

    def send_one(self, ev, headers=None):
        h = {"User-Agent": UA, "Cookie": COOKIES}
        h.update(headers or {})
        status, hdrs, body = self.proxy.post(ev, headers=h)
        self.assertEqual(status, 202, body)
        out = self.fake.wait_events(1)
        self.assertEqual(len(out), 1)
        return out[0], hdrs, json.loads(body)

    def common_checks(self, out):
        # Never raw personal data, whatever the consent.
        self.assertNotIn("email", out.get("user", {}))
        self.assertNotIn("phone", out.get("user", {}))
        self.assertNotIn("first_name", out.get("user", {}))
        self.assertEqual(out["user"]["ip"], keyed("user.ip", "127.0.0.1"))
        self.assertEqual(out["event"], "Purchase")
        self.assertEqual(out["event_id"], "order_1")
        self.assertIsInstance(out["event_time"], int)
        self.assertLessEqual(abs(out["event_time"] - time.time()), 5)
        self.assertEqual(out["page"]["referrer"], "https://shop.example.com/checkout/redacted")
        p = out["properties"]
        self.assertEqual(p["value"], 89.99)
        self.assertEqual(p["currency"], "USD")
        self.assertEqual(p["order_id"], "991")
        self.assertEqual(p["contents"], [{"content_id": "123", "quantity": 1, "price": 89.99,
                                          "content_name": "Gift for [redacted]"}])
        self.assertNotIn("custom_thing", p)

    def test_consenting_visitor(self):
        self.start()
        out, hdrs, reply = self.send_one(event(consent="granted"))
        self.common_checks(out)
        sid = session_from(hdrs)
        self.assertIsNotNone(sid, hdrs)
        self.assertEqual(out["user"]["external_id"], keyed("session", sid))
        self.assertEqual(out["user"]["user_agent"], UA)
        self.assertEqual(out["user"]["ttclid"], "E.C.P.click1")
        self.assertEqual(out["user"]["ttp"], "ttp-cookie-value")
        self.assertEqual(out["page"]["url"],
                         "https://shop.example.com/thanks?ttclid=E.C.P.click1&utm_source=tiktok")
        self.assertIs(out["limited_data_use"], False)
        self.assertEqual(reply, {"accepted": 1, "dropped": 0, "event_ids": ["order_1"]})
        # The request itself: raw token header, JSON, the pixel, no partner_name.
        req = self.fake.requests[0]
        self.assertEqual(req["headers"]["Access-Token"], TOKEN)
        self.assertEqual(req["path"], "/open_api/v1.3/event/track/")
        self.assertEqual(set(req["body"]), {"event_source", "event_source_id", "data"})
        self.assertEqual(req["body"]["event_source_id"], PIXEL)
        line = self.proxy.wait_sync(1)[0]
        self.assertEqual(line["status"], "accepted")
        self.assertEqual(line["code"], 0)
        self.assertEqual(line["http_status"], 200)
        self.assertEqual(line["attempts"], 1)
        self.assertTrue(line["request_id"])
        self.assertIn("drop-raw-pii", line["rules"])
        self.assertTrue(line["rule_set"].startswith("sha256:"))

    def test_returning_visitor_keeps_session(self):
        self.start()
        sid = "0123456789abcdef0123456789abcdef"
        out, hdrs, _ = self.send_one(event(consent="granted"),
                                     {"Cookie": "sg_sid=%s; _ttp=x" % sid})
        self.assertEqual(out["user"]["external_id"], keyed("session", sid))
        self.assertIsNone(session_from(hdrs), "an existing session is not replaced")

    def test_denying_visitor(self):
        self.start()
        out, hdrs, _ = self.send_one(event(consent="denied"))
        self.common_checks(out)
        self.assertEqual(set(out["user"]), {"ip"})
        self.assertEqual(out["page"]["url"], "https://shop.example.com/thanks?utm_source=tiktok")
        self.assertIs(out["limited_data_use"], False)
        # The session starts anyway (the cookie is first party); its hash just does not leave.
        self.assertIsNotNone(session_from(hdrs))

    def test_no_consent_signal_is_denied_by_default(self):
        self.start()
        out, _, _ = self.send_one(event())
        self.assertEqual(set(out["user"]), {"ip"})

    def test_gpc_visitor(self):
        self.start()
        out, _, _ = self.send_one(event(consent="granted"), {"Sec-GPC": "1"})
        self.common_checks(out)
        self.assertEqual(set(out["user"]), {"ip"})
        self.assertNotIn("ttclid", out["page"]["url"])
        self.assertIs(out["limited_data_use"], True)

    def test_gpc_not_honoured_when_site_says_so(self):
        self.start(consent={"default": "denied", "honor_gpc": False})
        out, _, _ = self.send_one(event(consent="granted"), {"Sec-GPC": "1"})
        self.assertIn("external_id", out["user"])
        self.assertIs(out["limited_data_use"], False)

    def test_consent_mode_object(self):
        self.start()
        out, _, _ = self.send_one(event(consent={"ad_storage": "granted",
                                                 "ad_user_data": "denied"}))
        # A click id needs ad_user_data as well as ad_storage: storage alone sends none.
        self.assertNotIn("ttclid", out["user"])
        self.assertNotIn("ttp", out["user"])
        self.assertNotIn("ttclid", out["page"]["url"])
        self.assertNotIn("external_id", out["user"])
        self.assertNotIn("user_agent", out["user"])
        self.fake.events.clear()
        out, _, _ = self.send_one(event(event_id="order_2", consent={"ad_storage": "granted",
                                                                     "ad_user_data": "granted"}))
        self.assertEqual(out["user"]["ttclid"], "E.C.P.click1")
        self.assertEqual(out["user"]["ttp"], "ttp-cookie-value")
        self.assertIn("external_id", out["user"])

    def test_default_granted_site(self):
        self.start(consent={"default": "granted"})
        out, _, _ = self.send_one(event())
        self.assertIn("external_id", out["user"])

    def test_ttclid_from_cookie_and_event(self):
        self.start()
        ev = event(consent="granted")
        ev["page"] = {"url": "https://shop.example.com/p"}
        out, _, _ = self.send_one(ev, {"Cookie": "_ttclid=from-cookie"})
        self.assertEqual(out["user"]["ttclid"], "from-cookie")
        self.fake.events.clear()
        ev["ttclid"] = "from-event"
        status, _, _ = self.proxy.post(ev, headers={"Cookie": "ttclid=from-cookie"})
        self.assertEqual(status, 202)
        self.assertEqual(self.fake.wait_events(1)[0]["user"]["ttclid"], "from-event")

    def test_event_map_and_allowlist(self):
        self.start()
        status, _, body = self.proxy.post([{"event": "won", "event_id": "crm-1"},
                                           {"event": "NotAllowed", "event_id": "x-1"}])
        self.assertEqual(status, 202, body)
        out = self.fake.wait_events(1)
        self.assertEqual(out[0]["event"], "Purchase")
        lines = {l["event_id"]: l for l in self.proxy.wait_sync(2)}
        self.assertEqual(lines["x-1"]["status"], "skipped")
        self.assertEqual(lines["x-1"]["reason"], "not_in_allowlist")
        self.assertIn("map-event-names", lines["crm-1"]["rules"])

    def test_timestamps(self):
        self.start()
        now = int(time.time()) - 60
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        evs = [{"event": "Lead", "event_id": "s", "timestamp": now},
               {"event": "Lead", "event_id": "ms", "timestamp": now * 1000 + 999},
               {"event": "Lead", "event_id": "iso", "timestamp": iso},
               {"event": "Lead", "event_id": "off",
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+02:00", time.gmtime(now + 7200))}]
        status, _, body = self.proxy.post(evs)
        self.assertEqual(status, 202, body)
        got = {e["event_id"]: e["event_time"] for e in self.fake.wait_events(4)}
        self.assertEqual(got, {"s": now, "ms": now, "iso": now, "off": now})

    def test_batches_many_events_into_few_requests(self):
        self.start(limits={"flush_interval_ms": 200})
        for i in range(10):
            status, _, _ = self.proxy.post([{"event": "ViewContent", "event_id": "v%d-%d" % (i, j)}
                                            for j in range(50)])
            self.assertEqual(status, 202)
        out = self.fake.wait_events(500)
        self.assertEqual(len({e["event_id"] for e in out}), 500)
        # Two workers, each flushing its own batches: far fewer requests than events.
        self.assertLessEqual(len(self.fake.requests), 8, len(self.fake.requests))

    def test_batch_limit_is_respected(self):
        self.start(limits={"flush_interval_ms": 500, "batch_max_events": 7,
                           "max_events_per_request": 100})
        self.proxy.post([{"event": "ViewContent", "event_id": "b%d" % j} for j in range(20)])
        self.fake.wait_events(20)
        self.assertTrue(all(len(r["body"]["data"]) <= 7 for r in self.fake.requests))

    def test_test_event_code_sends_alone(self):
        self.start(dest={"test_event_code": "TEST123"})
        self.proxy.post([{"event": "Lead", "event_id": "t%d" % j} for j in range(3)])
        self.fake.wait_events(3)
        self.assertEqual(len(self.fake.requests), 3)
        for r in self.fake.requests:
            self.assertEqual(r["body"]["test_event_code"], "TEST123")
            self.assertEqual(len(r["body"]["data"]), 1)

    def test_forwarded_for_only_from_trusted_proxy(self):
        self.start()
        out, _, _ = self.send_one(event(), {"X-Forwarded-For": "198.51.100.7, 127.0.0.1"})
        self.assertEqual(out["user"]["ip"], keyed("user.ip", "198.51.100.7"))

    def test_forwarded_for_ignored_from_untrusted_peer(self):
        self.start(trusted=["10.0.0.0/8", "2001:db8::/32"])
        out, _, _ = self.send_one(event(), {"X-Forwarded-For": "198.51.100.7"})
        self.assertEqual(out["user"]["ip"], keyed("user.ip", "127.0.0.1"))

    def test_server_ingest_with_key(self):
        self.start()
        ev = event(consent="granted", ip="2001:db8::1", user_agent="ServerSideUA/1.0")
        out, _, _ = self.send_one(ev, {"Authorization": "Bearer " + INGEST_KEY})
        self.assertEqual(out["user"]["ip"], keyed("user.ip", "2001:db8::1"))
        self.assertEqual(out["user"]["user_agent"], "ServerSideUA/1.0")

    def test_body_ip_ignored_without_key(self):
        self.start()
        out, _, _ = self.send_one(event(ip="203.0.113.5"))
        self.assertEqual(out["user"]["ip"], keyed("user.ip", "127.0.0.1"))

    def test_wrong_ingest_key(self):
        self.start()
        status, _, body = self.proxy.post(event(), headers={"Authorization": "Bearer nope"})
        self.assertEqual(status, 401)
        self.assertNotIn(b"nope", body)

    def test_token_error_pauses_and_resumes(self):
        # The proxy sends "Bearer <token>" (the classic mistake): TikTok answers 40105.
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        admin = "127.0.0.1:%d" % sock.getsockname()[1]
        sock.close()
        self.proxy = Proxy([site_config(self.fake.url)],
                           limits={"flush_interval_ms": 20, "auth_probe_ms": 300},
                           env={"SG_TEST_TOKEN": "Bearer " + TOKEN, "SG_ADMIN": "admin-secret-1"},
                           extra={"admin_listen": admin, "admin_token_env": "SG_ADMIN"}).start()
        status, _, _ = self.proxy.post([event(event_id="t1"), event(event_id="t2")])
        self.assertEqual(status, 202)
        self.assertEqual(self.fake.wait_requests(1)[0]["code"], 40105)
        time.sleep(0.5)
        # Paused, events kept: no outcome yet, and probes stay rare (one per 300 ms).
        self.assertEqual(self.proxy.sync_log(), [])
        self.assertLessEqual(len(self.fake.requests), 3)
        self.assertIn("access token refused", self.proxy.stderr())
        # ... and the metric says so.
        conn = http.client.HTTPConnection(*admin.split(":"), timeout=5)
        conn.request("GET", "/metrics", headers={"Authorization": "Bearer admin-secret-1"})
        metrics = conn.getresponse().read().decode()
        self.assertRegex(metrics, r'scrubgate_destination_paused\{site="shop",'
                                  r'destination="tiktok:CPIXEL123"\} 1')
        self.assertRegex(metrics, r'scrubgate_auth_pauses_total\{[^}]*\} [1-9]')
        for path, headers, want in (("/metrics", {}, 401), ("/healthz", {}, 503)):
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            body = r.read()
            self.assertEqual(r.status, want)
        self.assertEqual(json.loads(body), {"status": "degraded",
                                            "reasons": ["paused:tiktok:CPIXEL123"]})
        conn.close()
        # The token is fixed on TikTok's side: the next probe succeeds and everything goes.
        self.fake.token = "Bearer " + TOKEN
        lines = self.proxy.wait_sync(2)
        self.assertEqual(sorted(l["event_id"] for l in lines), ["t1", "t2"])
        self.assertTrue(all(l["status"] == "accepted" and l["attempts"] >= 2 for l in lines))
        self.assertNotIn(TOKEN, self.proxy.stderr())

    def test_transient_failures_are_retried_until_delivered(self):
        self.start(limits={"flush_interval_ms": 20, "retry_base_ms": 50, "retry_cap_ms": 200,
                           "upstream_timeout_ms": 500})
        self.fake.script([{"http": 502, "body": "<html>bad gateway</html>"}, {"code": 40100},
                          {"delay": 1.0}, {"http": 503, "body": ""}, {"code": 50000}])
        status, _, _ = self.proxy.post([event(event_id="r1")])
        self.assertEqual(status, 202)
        line = self.proxy.wait_sync(1, timeout=15)[0]
        self.assertEqual((line["status"], line["code"]), ("accepted", 0))
        self.assertEqual(line["attempts"], 6)
        time.sleep(1.2)  # the slow request finishes on the fake after the proxy gave up on it
        self.assertEqual([r["code"] for r in self.fake.requests][:6],
                         [502, 40100, 0, 503, 50000, 0])

    def test_bad_request_is_not_retried_and_goes_to_the_dead_letter(self):
        self.start(limits={"flush_interval_ms": 20, "retry_base_ms": 50})
        self.fake.script([{"code": 40002}])
        self.proxy.post([event(event_id="bad1")])
        line = self.proxy.wait_sync(1)[0]
        self.assertEqual((line["status"], line["reason"], line["code"]),
                         ("failed", "bad_request", 40002))
        time.sleep(0.3)
        self.assertEqual(len(self.fake.requests), 1)  # never retried
        path = os.path.join(self.proxy.state_dir, "dead-letter", "dead-letter.jsonl")
        with open(path) as f:
            dead = [json.loads(l) for l in f]
        self.assertEqual(len(dead), 1)
        self.assertEqual((dead[0]["event_id"], dead[0]["reason"], dead[0]["code"]),
                         ("bad1", "bad_request", 40002))
        self.assertEqual(dead[0]["event_json"]["event_id"], "bad1")
        self.assertNotIn("jane", json.dumps(dead))  # scrubbed events only

    def test_retries_give_up_into_the_dead_letter(self):
        # Give-up is measured in whole seconds from the acceptance: 2 s leaves room for a
        # second attempt even when the event was accepted just before a second's end.
        self.start(limits={"flush_interval_ms": 20, "retry_base_ms": 100, "retry_cap_ms": 300,
                           "retry_give_up_s": 2})
        self.fake.script([{"http": 503, "body": ""}] * 50)
        self.proxy.post([event(event_id="gone")])
        line = self.proxy.wait_sync(1, timeout=10)[0]
        self.assertEqual((line["status"], line["reason"]), ("failed", "retries_exhausted:http_5xx"))
        self.assertGreaterEqual(line["attempts"], 2)

    def test_partial_failure(self):
        self.start()
        self.fake.script([{"code": 20001}])
        self.proxy.post(event())
        self.assertEqual(self.proxy.wait_sync(1)[0]["status"], "partial_failure")

    def test_dry_run_sends_nothing(self):
        self.start(dest={"dry_run": True})
        status, _, _ = self.proxy.post(event())
        self.assertEqual(status, 202)
        line = self.proxy.wait_sync(1)[0]
        self.assertEqual((line["status"], line["reason"]), ("skipped", "dry_run"))
        time.sleep(0.1)
        self.assertEqual(self.fake.requests, [])

    def test_sigterm_delivers_queued_events(self):
        self.start(limits={"flush_interval_ms": 60000})
        status, _, _ = self.proxy.post([{"event": "Lead", "event_id": "q%d" % i} for i in range(5)])
        self.assertEqual(status, 202)
        self.assertEqual(self.proxy.stop(), 0)
        self.assertEqual(len(self.fake.events), 5)
        self.assertEqual([l["status"] for l in self.proxy.sync_log()], ["accepted"] * 5)

    def test_full_queue_answers_503_and_takes_nothing(self):
        # One worker so that every request meets the same queue.
        self.proxy = Proxy([site_config(self.fake.url)], workers=1,
                           limits={"flush_interval_ms": 60000, "queue_max_events": 5}).start()
        status, _, _ = self.proxy.post([{"event": "Lead", "event_id": "f%d" % i} for i in range(4)])
        self.assertEqual(status, 202)
        status, headers, body = self.proxy.post([{"event": "Lead", "event_id": "g%d" % i}
                                                 for i in range(2)])
        self.assertEqual(status, 503, body)
        self.assertEqual(headers["retry-after"], "1")
        self.assertIn("queue full", json.loads(body)["error"])
        status, _, _ = self.proxy.post({"event": "Lead", "event_id": "f4"})
        self.assertEqual(status, 202)
        self.assertEqual(self.proxy.stop(), 0)
        # Everything answered 202 was delivered on shutdown; nothing of the 503 request was.
        self.assertEqual(sorted(e["event_id"] for e in self.fake.events),
                         ["f0", "f1", "f2", "f3", "f4"])

    def test_shutdown_refuses_new_work_and_finishes_old(self):
        self.start(limits={"flush_interval_ms": 20, "shutdown_timeout_ms": 5000})
        self.fake.script([{"delay": 1.0}])  # the first delivery is slow: the drain takes a while
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy.port, timeout=10)
        conn.request("POST", "/v1/events?site=shop", body='{"event":"Lead","event_id":"s1"}',
                     headers={"Content-Type": "application/json"})
        first = conn.getresponse()
        first.read()
        self.assertEqual(first.status, 202)
        self.fake.wait_requests(1)
        self.proxy.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        # A keep-alive connection gets 503 now; a new connection is refused.
        conn.request("POST", "/v1/events?site=shop", body='{"event":"Lead","event_id":"s2"}',
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        self.assertEqual(r.status, 503)
        self.assertEqual(r.getheader("Retry-After"), "1")
        conn.close()
        with self.assertRaises(OSError):
            self.proxy.request("POST", "/v1/events?site=shop", '{"event":"Lead"}')
        self.assertEqual(self.proxy.stop(), 0)
        self.assertEqual([e["event_id"] for e in self.fake.events], ["s1"])

    def test_bot_events_are_skipped(self):
        self.start()
        status, _, body = self.proxy.post(
            event(), headers={"User-Agent": "Mozilla/5.0 (compatible; bingbot/2.0)"})
        self.assertEqual(status, 202, body)  # accepted: the outcome is in the sync log
        line = self.proxy.wait_sync(1)[0]
        self.assertEqual((line["status"], line["reason"]), ("skipped", "bot"))
        self.assertEqual(line["rules"], ["drop-bots"])
        time.sleep(0.1)
        self.assertEqual(self.fake.requests, [])

    def test_strict_rule_set_end_to_end(self):
        self.start(rules=os.path.join(os.environ.get("SCRUBGATE_ROOT", "."), "rules", "strict.json"))
        out, _, _ = self.send_one(event(consent="granted"), {"X-Forwarded-For": "198.51.100.77"})
        self.assertEqual(out["user"]["ip"], keyed("user.ip", "198.51.100.0"))
        self.assertNotIn("external_id", out["user"])
        self.assertNotIn("user_agent", out["user"])
        self.assertEqual(out["user"]["ttclid"], "E.C.P.click1")

    def test_advanced_matching_end_to_end(self):
        self.start(rules=os.path.join(os.environ.get("SCRUBGATE_ROOT", "."), "rules",
                                      "advanced-matching.json"))
        out, _, _ = self.send_one(event(consent="granted"))
        # The fake accepted it: hashed as TikTok requires, never raw (which would be 40062).
        self.assertEqual(out["user"]["email"], hashlib.sha256(b"jane.doe@example.com").hexdigest())
        self.assertEqual(out["user"]["phone"], hashlib.sha256(b"+12133734253").hexdigest())

    def test_generated_event_id_is_returned_and_used(self):
        self.start()
        status, _, body = self.proxy.post({"event": "Lead"})
        ids = json.loads(body)["event_ids"]
        self.assertEqual(len(ids), 1)
        self.assertRegex(ids[0], "^[0-9a-f]{32}$")
        self.assertEqual(self.fake.wait_events(1)[0]["event_id"], ids[0])


if __name__ == "__main__":
    unittest.main()
