"""What the proxy gives browsers, over real HTTP: GET /sg.js, the sg_ttclid click-id cookie,
cookie_domain and click_id_days, wildcard origins, preflights named by ?site=, and the 403 for
a page on a foreign origin. (The snippet itself runs in Chromium: tests/browser.)
"""
import base64
import gzip
import hashlib
import json
import re
import subprocess
import unittest

from harness import BIN, INGEST_KEY, PIXEL, ROOT, TOKEN, FakeTikTok, Proxy, site_config

ORIGIN = "https://shop.example.com"
CLICK = "E.C.P.Cl1ck-id_0123456789"


def cookie(headers, name):
    """The Set-Cookie for name (the whole header), or None."""
    for c in headers.get("set-cookie-all", []):
        if c.startswith(name + "="):
            return c
    return None


def attrs(set_cookie):
    """A Set-Cookie header as {"value": the cookie's value, attribute lower-case: value}
    (flags map to True)."""
    out = {}
    for i, part in enumerate(p.strip() for p in set_cookie.split(";")):
        k, _, v = part.partition("=")
        out["value" if i == 0 else k.lower()] = v if (i == 0 or _) else True
    return out


class BrowserApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        cls.proxy = Proxy([site_config(cls.fake.url, allowed_origins=[ORIGIN, "https://*.shop.example.com"],
                                       cookie_domain="shop.example.com", click_id_days=7)],
                          limits={"flush_interval_ms": 20}).start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        cls.fake.stop()
        assert rc == 0, cls.proxy.stderr()

    def post(self, events, headers=None, site="shop"):
        # The proxy's own first-party name: inside cookie_domain, so cookies get Domain=.
        h = {"Origin": ORIGIN, "Content-Type": "text/plain;charset=UTF-8",
             "Host": "sg.shop.example.com"}
        h.update(headers or {})
        return self.proxy.post(json.dumps(events), site=site, headers=h)

    def arrived(self, event_id):
        """The event TikTok received with this id (waits for it), or None."""
        for _ in range(2):
            for ev in self.fake.wait_events(len(self.fake.events) + 1, timeout=3):
                if ev.get("event_id") == event_id:
                    return ev
        return None

    # ---- GET /sg.js ----

    def test_snippet_is_served_with_cache_headers_and_sri(self):
        s, h, body = self.proxy.request("GET", "/sg.js", headers={"Content-Type": None})
        self.assertEqual(s, 200)
        self.assertEqual(h["content-type"], "text/javascript; charset=utf-8")
        self.assertEqual(h["cache-control"], "public, max-age=3600")
        self.assertRegex(h["etag"], r'^"[0-9a-f]{32}"$')
        self.assertEqual(h["access-control-allow-origin"], "*")  # SRI needs CORS
        self.assertEqual(h["x-content-type-options"], "nosniff")
        self.assertNotIn("set-cookie", h)
        self.assertIn(b"ttq", body)
        # check prints the integrity value of exactly these bytes.
        out = subprocess.run([BIN, "check", "-c", self.proxy.config, "--json"], cwd=ROOT,
                             env=self.proxy.env, capture_output=True, text=True, check=True)
        snippet = json.loads(out.stdout)["snippet"]
        sri = "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()
        self.assertEqual(snippet["integrity"], sri)
        self.assertEqual(snippet["bytes"], len(body))
        text = subprocess.run([BIN, "check", "-c", self.proxy.config], cwd=ROOT,
                              env=self.proxy.env, capture_output=True, text=True, check=True)
        self.assertIn('integrity="%s"' % sri, text.stdout)

    def test_snippet_gzip_is_under_4kb_and_the_same_script(self):
        s, h, gz = self.proxy.request("GET", "/sg.js", headers={"Accept-Encoding": "br, gzip"})
        self.assertEqual(s, 200)
        self.assertEqual(h["content-encoding"], "gzip")
        self.assertEqual(h["vary"], "Accept-Encoding")
        self.assertLess(len(gz), 4096, "the snippet must stay under 4 KB gzipped")
        _, _, plain = self.proxy.request("GET", "/sg.js", headers={"Accept-Encoding": "gzip;q=0"})
        self.assertEqual(gzip.decompress(gz), plain)
        for ae, want in (("gzip;q=0, *", None), ("*", "gzip"), ("gzip;level=1;q=0", None),
                         ("gzip;q=nan", None), ("GZIP;Q=0.001", "gzip"), ("gzip;q=1.5", None),
                         ("identity", None), ("deflate, gzip;q=0.5", "gzip"), ("*;q=0", None)):
            _, h, body = self.proxy.request("GET", "/sg.js", headers={"Accept-Encoding": ae})
            self.assertEqual(h.get("content-encoding"), want, ae)
            self.assertEqual(body, gz if want else plain, ae)

    def test_snippet_conditional_head_and_methods(self):
        _, h, _ = self.proxy.request("GET", "/sg.js")
        etag = h["etag"]
        for inm in (etag, "W/" + etag, '"other", ' + etag, "*"):
            s, h2, body = self.proxy.request("GET", "/sg.js", headers={"If-None-Match": inm})
            self.assertEqual((s, body), (304, b""), inm)
            self.assertEqual(h2["etag"], etag)
            self.assertEqual(h2["cache-control"], "public, max-age=3600")
        s, _, body = self.proxy.request("GET", "/sg.js", headers={"If-None-Match": '"stale"'})
        self.assertEqual(s, 200)
        s, h, body = self.proxy.request("HEAD", "/sg.js")
        self.assertEqual((s, body), (200, b""))
        self.assertEqual(h["etag"], etag)
        _, _, plain = self.proxy.request("GET", "/sg.js")
        self.assertEqual(h["content-length"], str(len(plain)))
        s, h, _ = self.proxy.request("POST", "/sg.js", body="x")
        self.assertEqual(s, 405)
        self.assertEqual(h["allow"], "GET, HEAD")
        s, _, _ = self.proxy.request("GET", "/sg.js/../v1/events")
        self.assertEqual(s, 404)

    # ---- the click-id cookie ----

    def test_landing_with_consent_keeps_the_click_id_for_later_pages(self):
        s, h, b = self.post({"event": "ViewContent", "event_id": "land-1", "consent": "granted",
                             "page": {"url": "https://shop.example.com/p?ttclid=" + CLICK}})
        self.assertEqual(s, 202, b)
        c = attrs(cookie(h, "sg_ttclid"))
        self.assertEqual(c["value"], CLICK)
        self.assertEqual(c["max-age"], str(7 * 86400))  # click_id_days
        self.assertEqual(c["domain"], "shop.example.com")  # cookie_domain
        self.assertEqual(c["path"], "/")
        self.assertIs(c["httponly"], True)
        self.assertEqual(c["samesite"], "Lax")
        self.assertIs(c["secure"], True)  # an https:// page origin
        self.assertEqual(attrs(cookie(h, "sg_sid"))["domain"], "shop.example.com")
        self.assertEqual(self.arrived("land-1")["user"]["ttclid"], CLICK)
        # The next page has no ttclid in its URL: the cookie brings it, and is not renewed.
        s, h, b = self.post({"event": "AddToCart", "event_id": "next-1", "consent": "granted",
                             "page": {"url": "https://shop.example.com/cart"}},
                            headers={"Cookie": "sg_ttclid=" + CLICK})
        self.assertEqual(s, 202, b)
        self.assertIsNone(cookie(h, "sg_ttclid"), "a click id from the cookie keeps its expiry")
        self.assertEqual(self.arrived("next-1")["user"]["ttclid"], CLICK)

    def test_denied_consent_expires_the_cookie_and_sends_no_click_id(self):
        s, h, b = self.post({"event": "AddToCart", "event_id": "deny-1", "consent": "denied",
                             "page": {"url": "https://shop.example.com/p?ttclid=" + CLICK}},
                            headers={"Cookie": "sg_ttclid=" + CLICK})
        self.assertEqual(s, 202, b)
        c = attrs(cookie(h, "sg_ttclid"))
        self.assertEqual((c["value"], c["max-age"]), ("", "0"))
        self.assertEqual(c["domain"], "shop.example.com")  # the same cookie, or it would stay
        ev = self.arrived("deny-1")
        self.assertNotIn("ttclid", ev.get("user", {}))
        self.assertNotIn(CLICK, json.dumps(ev))
        # ad_storage granted but ad_user_data denied is still a denial for the click id.
        s, h, _ = self.post({"event": "AddToCart", "event_id": "deny-2",
                             "consent": {"ad_storage": "granted", "ad_user_data": "denied"},
                             "page": {"url": "https://shop.example.com/p?ttclid=" + CLICK}})
        self.assertEqual(attrs(cookie(h, "sg_ttclid"))["max-age"], "0")

    def test_cookie_domain_only_where_the_host_lies_within_it(self):
        for host, domain in (("sg.shop.example.com", "shop.example.com"),
                             ("SHOP.example.com:8443", "shop.example.com"),
                             ("127.0.0.1:8080", None), ("evilshop.example.com", None),
                             ("example.com", None)):
            s, h, _ = self.post({"event": "ViewContent", "consent": "granted", "ttclid": CLICK},
                                headers={"Host": host})
            self.assertEqual(s, 202)
            for name in ("sg_sid", "sg_ttclid"):
                self.assertEqual(attrs(cookie(h, name)).get("domain"), domain, (host, name))

    def test_a_batch_with_one_denial_expires_the_cookie(self):
        s, h, b = self.post([
            {"event": "ViewContent", "consent": "granted",
             "page": {"url": "https://shop.example.com/?ttclid=" + CLICK}},
            {"event": "ViewContent", "consent": "denied"}])
        self.assertEqual(s, 202, b)
        self.assertEqual(attrs(cookie(h, "sg_ttclid"))["max-age"], "0")

    def test_a_click_id_that_is_not_a_token_is_never_a_cookie(self):
        for bad in ("abc;Domain=evil.com", "abc def", "x" * 600, "abc\u00e9"):
            s, h, b = self.post({"event": "ViewContent", "consent": "granted", "ttclid": bad})
            self.assertEqual(s, 202, b)
            self.assertIsNone(cookie(h, "sg_ttclid"), bad)
        # An invalid event in the batch sets nothing for itself.
        s, h, b = self.post([{"event": 42, "ttclid": CLICK, "consent": "granted"},
                             {"event": "ViewContent", "consent": "granted"}])
        self.assertEqual(s, 202, b)
        self.assertIsNone(cookie(h, "sg_ttclid"))

    def test_personal_data_as_a_click_id_never_leaves_nor_stays(self):
        """A phone or card number passed as a click id (found by the adversarial review):
        dropped, so neither TikTok nor the sg_ttclid cookie gets it."""
        for i, (where, value) in enumerate((("url", "%2B14155552671"), ("event", "4111111111111111"),
                                             ("event", "jane@doe.com"), ("cookie", "+14155552671"))):
            ev = {"event": "ViewContent", "event_id": "pii-click-%d" % i, "consent": "granted",
                  "page": {"url": "https://shop.example.com/landing" +
                           ("?ttclid=" + value if where == "url" else "")}}
            headers = {}
            if where == "event":
                ev["ttclid"] = value
            if where == "cookie":
                headers["Cookie"] = "sg_ttclid=%s; _ttp=%s" % (value, value)
            s, h, b = self.post(ev, headers=headers)
            self.assertEqual(s, 202, b)
            self.assertIsNone(cookie(h, "sg_ttclid"), value)
            out = self.arrived("pii-click-%d" % i)
            self.assertNotIn("ttclid", out.get("user", {}), value)
            self.assertNotIn("ttp", out.get("user", {}), value)
            for raw in ("14155552671", "4111111111111111", "jane@doe.com"):
                self.assertNotIn(raw, json.dumps(out))

    def test_no_cookie_on_an_error_reply(self):
        s, h, _ = self.post({"event": "ViewContent", "consent": "granted", "ttclid": CLICK},
                            site="nope")
        self.assertEqual(s, 404)
        self.assertEqual(h.get("set-cookie-all"), [])
        s, h, _ = self.post({"event": "ViewContent", "consent": "granted", "ttclid": CLICK},
                            headers={"Origin": "https://evil.example"})
        self.assertEqual(s, 403)
        self.assertEqual(h.get("set-cookie-all"), [])

    def test_plain_http_without_a_tls_signal_is_not_secure(self):
        s, h, _ = self.post({"event": "ViewContent", "consent": "granted", "ttclid": CLICK},
                            headers={"Origin": None})
        self.assertEqual(s, 202)
        self.assertNotIn("secure", attrs(cookie(h, "sg_ttclid")))
        s, h, _ = self.post({"event": "ViewContent", "consent": "granted", "ttclid": CLICK},
                            headers={"Origin": None, "X-Forwarded-Proto": "https"})
        self.assertIs(attrs(cookie(h, "sg_ttclid"))["secure"], True)  # from a trusted proxy

    # ---- origins ----

    def test_wildcard_origins(self):
        for origin, ok in (("https://sg.shop.example.com", True),
                           ("https://a.b.shop.example.com", True),
                           ("https://shop.example.com", True),  # the exact entry
                           ("https://evilshop.example.com", False),
                           ("http://sg.shop.example.com", False),
                           ("https://sg.shop.example.com:8443", False),
                           ("https://shop.example.com.evil.net", False),
                           ("null", False)):
            s, h, _ = self.proxy.request("OPTIONS", "/v1/events?site=shop",
                                         headers={"Origin": origin,
                                                  "Access-Control-Request-Method": "POST",
                                                  "Access-Control-Request-Headers": "content-type"})
            self.assertEqual(s, 204)
            self.assertEqual(h.get("access-control-allow-origin"), origin if ok else None, origin)
            s, h, b = self.post({"event": "ViewContent"}, headers={"Origin": origin})
            self.assertEqual(s, 202 if ok else 403, (origin, b))
            if not ok:
                self.assertNotIn("access-control-allow-origin", h)
                self.assertNotIn(b"evil", b)  # the reply never echoes the origin

    def test_preflight_and_post_named_by_pixel_code(self):
        s, h, _ = self.proxy.request("OPTIONS", "/v1/events?site=" + PIXEL,
                                     headers={"Origin": ORIGIN,
                                              "Access-Control-Request-Method": "POST"})
        self.assertEqual(s, 204)
        self.assertEqual(h["access-control-allow-origin"], ORIGIN)
        self.assertEqual(h["access-control-allow-credentials"], "true")
        s, _, b = self.post({"event": "Lead", "event_id": "by-pixel", "site": "shop"}, site=PIXEL)
        self.assertEqual(s, 202, b)
        self.assertIsNotNone(self.arrived("by-pixel"))

    def test_foreign_origin_is_refused_and_nothing_is_sent(self):
        before = len(self.proxy.sync_log())
        s, h, b = self.post({"event": "Lead", "event_id": "foreign-1"},
                            headers={"Origin": "https://evil.example"})
        self.assertEqual(s, 403)
        self.assertIn(b"allowed_origins", b)
        # The site's own servers send with the ingest key; an Origin does not stop them.
        s, _, b = self.post({"event": "Lead", "event_id": "server-1"},
                            headers={"Origin": "https://evil.example",
                                     "Authorization": "Bearer " + INGEST_KEY})
        self.assertEqual(s, 202, b)
        self.assertIsNotNone(self.arrived("server-1"))
        ids = [line.get("event_id") for line in self.proxy.sync_log()[before:]]
        self.assertNotIn("foreign-1", ids)
        self.assertFalse([e for e in self.fake.events if e.get("event_id") == "foreign-1"])


if __name__ == "__main__":
    unittest.main()
