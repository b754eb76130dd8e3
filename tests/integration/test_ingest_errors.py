"""Bad input gets a clear error, loses nothing and never crashes the proxy."""
import json
import socket
import time
import unittest

from harness import FakeTikTok, Proxy, TOKEN, PIXEL, site_config


class IngestErrorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        cls.proxy = Proxy([site_config(cls.fake.url)],
                          limits={"flush_interval_ms": 20, "max_body_bytes": 4096,
                                  "max_events_per_request": 10, "max_field_bytes": 256,
                                  "request_timeout_ms": 1000}).start()

    @classmethod
    def tearDownClass(cls):
        code = cls.proxy.stop()
        cls.fake.stop()
        assert code == 0, cls.proxy.stderr()

    def error(self, status, body):
        self.assertEqual(status, self.status, body)
        doc = json.loads(body)
        self.assertIsInstance(doc["error"], str)
        self.assertNotIn("\n", doc["error"])
        return doc

    def expect(self, status, *args, **kw):
        self.status = status
        s, h, b = self.proxy.post(*args, **kw)
        return s, h, b

    def test_malformed_json(self):
        s, _, b = self.expect(400, '{"event": "Lead",')
        doc = self.error(s, b)
        self.assertIn("invalid JSON", doc["error"])

    def test_invalid_utf8(self):
        s, _, b = self.expect(400, b'{"event": "Lead\xff\xfe"}')
        self.error(s, b)

    def test_no_event_name(self):
        s, _, b = self.expect(400, {"event_id": "x"})
        doc = self.error(s, b)
        self.assertIn("event: required", doc["error"])

    def test_wrong_types(self):
        for bad, field in [({"event": 5}, "event"),
                           ({"event": "Lead", "page": "x"}, "page"),
                           ({"event": "Lead", "user": {"email": 5}}, "user.email"),
                           ({"event": "Lead", "timestamp": True}, "timestamp"),
                           ({"event": "Lead", "consent": "maybe"}, "consent"),
                           ({"event": "Lead", "consent": {"ad_storage": "yes"}}, "consent")]:
            s, _, b = self.expect(400, bad)
            doc = self.error(s, b)
            self.assertIn(field, doc["error"])

    def test_future_timestamp(self):
        s, _, b = self.expect(400, {"event": "Lead", "timestamp": 4102444800})
        self.assertIn("future", self.error(s, b)["error"])

    def test_oversized_string_is_per_event(self):
        s, _, b = self.expect(202, [{"event": "Lead", "event_id": "ok1"},
                                    {"event": "Lead", "page": {"url": "https://x/" + "a" * 300}}])
        doc = json.loads(b)
        self.assertEqual(s, 202)
        self.assertEqual(doc["accepted"], 1)
        self.assertEqual(doc["dropped"], 1)
        self.assertEqual(doc["event_ids"], ["ok1"])
        self.assertEqual(doc["errors"][0]["index"], 1)
        self.assertIn("page.url", doc["errors"][0]["reason"])

    def test_one_bad_event_does_not_poison_the_batch(self):
        s, _, b = self.expect(202, {"events": [{"event": "Lead", "event_id": "good-a"},
                                               "not an object",
                                               {"event": "Lead", "event_id": "good-b"}]})
        self.assertEqual(s, 202, b)
        doc = json.loads(b)
        self.assertEqual(doc["event_ids"], ["good-a", "good-b"])
        self.assertEqual([e["index"] for e in doc["errors"]], [1])
        deadline = time.time() + 10
        while time.time() < deadline and not {"good-a", "good-b"} <= self.forwarded_ids():
            time.sleep(0.02)
        self.assertTrue({"good-a", "good-b"} <= self.forwarded_ids())

    def forwarded_ids(self):
        with self.fake.lock:
            return {e["event_id"] for e in self.fake.events}

    def test_events_must_be_array(self):
        s, _, b = self.expect(400, {"events": {"event": "Lead"}})
        self.error(s, b)

    def test_empty_body(self):
        s, _, b = self.expect(400, "")
        self.error(s, b)

    def test_unknown_site(self):
        s, _, b = self.expect(404, {"event": "Lead"}, site="nope")
        self.error(s, b)

    def test_site_parameter_is_decoded_and_whole(self):
        # Percent-decoded, among other parameters, its name in any case; the first one counts.
        for query in ("site=sh%6Fp", "a=1&site=shop", "x&site=shop&site=nope", "Site=shop",
                      "SITE=shop"):
            s, _, b = self.proxy.request("POST", "/v1/events?" + query, {"event": "Lead"})
            self.assertEqual(s, 202, (query, b))
        # An encoded NUL does not cut the id short ("shop%00x" is not "shop"), nor does a
        # parameter whose name merely ends in "site".
        for query in ("site=shop%00x", "site=shop%00", "mysite=shop", "site=sh%6"):
            s, _, b = self.proxy.request("POST", "/v1/events?" + query, {"event": "Lead"})
            self.assertEqual(s, 404, (query, b))

    def test_site_from_event_and_host(self):
        s, _, b = self.proxy.post({"event": "Lead", "site": "shop"}, site=None)
        self.assertEqual(s, 202, b)
        s, _, b = self.proxy.post({"event": "Lead"}, site=None,
                                  headers={"Host": "shop.example.com:8080"})
        self.assertEqual(s, 202, b)
        s, _, b = self.proxy.post({"event": "Lead"}, site=None, headers={"Host": "other.example"})
        self.assertEqual(s, 404, b)
        s, _, b = self.proxy.post({"event": "Lead", "site": "ghost"}, site=None)
        self.assertEqual(s, 404, b)

    def test_method_not_allowed(self):
        s, h, b = self.proxy.request("GET", "/v1/events?site=shop")
        self.assertEqual(s, 405)
        self.assertEqual(h["allow"], "POST, OPTIONS")
        s, _, _ = self.proxy.request("PUT", "/v1/events?site=shop", "{}")
        self.assertEqual(s, 405)

    def test_unknown_path(self):
        s, _, _ = self.proxy.request("POST", "/v1/other", '{"event":"Lead"}')
        self.assertEqual(s, 404)

    def test_body_too_large(self):
        s, _, _ = self.proxy.post({"event": "Lead", "properties": {"description": "a" * 5000}})
        self.assertEqual(s, 413)

    def test_too_many_events(self):
        s, _, b = self.expect(413, [{"event": "Lead"}] * 11)
        self.assertIn("too many events", self.error(s, b)["error"])

    def test_unsupported_media_type(self):
        for ct in ("application/xml", "application/x-www-form-urlencoded", None):
            s, _, b = self.expect(415, {"event": "Lead"}, headers={"Content-Type": ct})
            self.error(s, b)

    def test_text_plain_is_accepted(self):
        s, _, b = self.proxy.post('{"event":"Lead"}',
                                  headers={"Content-Type": "text/plain;charset=UTF-8"})
        self.assertEqual(s, 202, b)

    def test_cors_only_for_allowed_origins(self):
        s, h, _ = self.proxy.request("OPTIONS", "/v1/events?site=shop",
                                     headers={"Origin": "https://shop.example.com",
                                              "Access-Control-Request-Method": "POST"})
        self.assertEqual(s, 204)
        self.assertEqual(h["access-control-allow-origin"], "https://shop.example.com")
        self.assertIn("POST", h["access-control-allow-methods"])
        s, h, _ = self.proxy.request("OPTIONS", "/v1/events?site=shop",
                                     headers={"Origin": "https://evil.example"})
        self.assertNotIn("access-control-allow-origin", h)
        s, h, _ = self.proxy.post({"event": "Lead"}, headers={"Origin": "https://shop.example.com"})
        self.assertEqual(h["access-control-allow-origin"], "https://shop.example.com")
        self.assertEqual(h["access-control-allow-credentials"], "true")
        s, h, _ = self.proxy.post({"event": "Lead"}, headers={"Origin": "https://evil.example"})
        self.assertEqual(s, 403)
        self.assertNotIn("access-control-allow-origin", h)

    def test_session_cookie_attributes(self):
        _, h, _ = self.proxy.post({"event": "Lead"}, headers={"Origin": "https://shop.example.com"})
        cookie = [c for c in h["set-cookie-all"] if c.startswith("sg_sid=")][0]
        for attr in ("HttpOnly", "SameSite=Lax", "Secure", "Path=/"):
            self.assertIn(attr, cookie)
        _, h, _ = self.proxy.post({"event": "Lead"})
        cookie = [c for c in h["set-cookie-all"] if c.startswith("sg_sid=")][0]
        self.assertNotIn("Secure", cookie, "plain http without a TLS signal")

    def test_slow_client_is_cut_off(self):
        sock = socket.create_connection(("127.0.0.1", self.proxy.port))
        sock.sendall(b"POST /v1/events?site=shop HTTP/1.1\r\nHost: x\r\n")
        sock.settimeout(5)
        start = time.time()
        data = sock.recv(100)  # the 1 s request timeout closes the connection
        sock.close()
        self.assertLess(time.time() - start, 4)
        self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 4"), data)

    def test_huge_headers_refused(self):
        # evhttp answers 413 and closes; a client still writing may see the reset first.
        # Either way the request is refused and nothing is accepted.
        sock = socket.create_connection(("127.0.0.1", self.proxy.port))
        sock.settimeout(5)
        reply = b""
        try:
            sock.sendall(b"POST /v1/events?site=shop HTTP/1.1\r\nHost: x\r\n"
                         b"X-Big: " + b"a" * 20000 + b"\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 16\r\n\r\n{\"event\":\"Lead\"}")
            reply = sock.recv(100)
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            sock.close()
        self.assertFalse(reply.startswith(b"HTTP/1.1 2"), reply)
        self.assertTrue(reply == b"" or reply[9:12] in (b"400", b"413", b"431"), reply)

    def test_still_serving_after_all_that(self):
        s, _, _ = self.proxy.post({"event": "Lead"})
        self.assertEqual(s, 202)


if __name__ == "__main__":
    unittest.main()


class ConnectionLimitTest(unittest.TestCase):
    def test_over_the_limit_pauses_accepting_and_recovers(self):
        fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        proxy = Proxy([site_config(fake.url)], limits={"max_connections": 16}, workers=1).start()
        socks = []
        try:
            # 16 connections plus the descriptor reserve exhaust the limit; more wait in the
            # backlog instead of being served or spinning the loop.
            for _ in range(200):
                socks.append(socket.create_connection(("127.0.0.1", proxy.port)))
            time.sleep(0.5)
            self.assertIn("connection limit reached", proxy.stderr())
            for s in socks:
                s.close()
            socks = []
            time.sleep(0.3)
            status, _, body = proxy.post({"event": "Lead"})
            self.assertEqual(status, 202, body)
        finally:
            for s in socks:
                s.close()
            self.assertEqual(proxy.stop(), 0)
            fake.stop()
