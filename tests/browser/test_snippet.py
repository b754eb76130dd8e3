"""The browser snippet (web/sg.js, served by the proxy at GET /sg.js) in real headless Chromium.

Topology, all on loopback: a page server (127.0.0.1:A) serves test pages that carry TikTok-style
stub calls inline and load http://127.0.0.1:<proxy port>/sg.js; the proxy's site allows the
origin http://127.0.0.1:A; the proxy forwards to the strict fake TikTok. Every assertion is on
what the fake TikTok received (or on the browser's cookies), reached by polling with a deadline.

Chromium is Debian's `chromium` with `chromium-driver`. Without them the test is skipped (exit 77)
on a developer machine, and fails when CI is set.

SG_SNIPPET_DEV_FRONT=1 is for developing sg.js without rebuilding the binary (which embeds the
script at build time): a small front server then serves web/sg.js from the source tree and
relays /v1/events to the proxy, much as a site's TLS terminator would.
"""
import base64
import hashlib
import http.client
import http.server
import json
import os
import sys
import threading
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import tcf  # noqa: E402
import webdriver  # noqa: E402
from harness import PIXEL, ROOT, TOKEN, FakeTikTok, Proxy, site_config  # noqa: E402

VENDOR = 1234
GRANT_TC = tcf.encode(vendor_consents={VENDOR}, purposes={1, 3, 4, 7, 8})
REJECT_TC = tcf.encode(vendor_consents=(), purposes=(), max_vendor=VENDOR)
CLICK = "E.C.P.abc"
EVENTS = ["Purchase", "AddToCart", "ViewContent", "Lead", "InitiateCheckout",
          "CompleteRegistration", "Pageview"]
BROWSER = webdriver.find_browser()
# Headless Chromium says "HeadlessChrome", which the default rules drop as a bot (rightly):
# these tests stand for a visitor's browser.
UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/120.0.0.0 Safari/537.36")

# TikTok's base code, reduced to what matters here: `ttq` is an array with `methods`,
# `setAndDefer`, `instance` and `load` (which records the pixel in `_i` and would load TikTok's
# script; the swap removes that). Every stub call pushes [method, ...args].
STUB = """
!function (w, d, t) {
  w.TiktokAnalyticsObject = t;
  var q = w[t] = w[t] || [];
  q.methods = ["page", "track", "identify", "instances", "debug", "on", "off", "once", "ready",
               "alias", "group", "enableCookie", "disableCookie", "holdConsent",
               "revokeConsent", "grantConsent"];
  q.setAndDefer = function (o, m) {
    o[m] = function () { o.push([m].concat(Array.prototype.slice.call(arguments, 0))); };
  };
  for (var i = 0; i < q.methods.length; i++) q.setAndDefer(q, q.methods[i]);
  q.instance = function (id) {
    for (var e = q._i[id] || [], n = 0; n < q.methods.length; n++) q.setAndDefer(e, q.methods[n]);
    return e;
  };
  q.load = function (id, opts) {
    q._i = q._i || {}; q._i[id] = []; q._t = q._t || {}; q._t[id] = +new Date();
    q._o = q._o || {}; q._o[id] = opts || {};
  };
}(window, document, "ttq");
"""

# A fake IAB CMP: answers addEventListener asynchronously, as a real one does, and later than
# the snippet's batch window (100 ms), so that events are seen to wait for its answer.
CMP = """
window.__tcfapi = function (cmd, version, cb) {
  if (cmd !== "addEventListener") return;
  setTimeout(function () {
    cb({tcString: %s, eventStatus: "tcloaded", gdprApplies: true, listenerId: 1}, true);
  }, 300);
};
"""

GPC = ("Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', "
       "{get: function () { return true; }});")


def page(sg_url, head="", calls="", attrs='data-site="shop"', after=""):
    """A test page: optional head scripts, the stub and its calls, then the async snippet."""
    return ("<!doctype html><html><head><meta charset=utf-8><title>t</title>"
            "<script>%s</script><script>%s\n%s</script>"
            '<script src="%s" %s async></script>%s</head><body><p>test</p></body></html>'
            % (head, STUB, calls, sg_url, attrs, after))


class PageServer:
    """Serves registered pages by path (the query string is ignored) on 127.0.0.1."""

    def __init__(self):
        self.pages = {}
        self.headers = {}   # path -> extra response headers
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                html = server.pages.get(path)
                data = (html or "not found").encode()
                self.send_response(200 if html else 404)
                for k, v in server.headers.get(path, {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.origin = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class DevFront:
    """SG_SNIPPET_DEV_FRONT=1 only: GET /sg.js from the source tree, everything else relayed to
    the proxy with its headers (Origin, Cookie; Set-Cookie back), as a TLS terminator would."""

    def __init__(self, proxy_port):
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.split("?")[0] == "/sg.js":
                    with open(os.path.join(ROOT, "web", "sg.js"), "rb") as f:
                        data = f.read()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/javascript")
                    self.send_header("Access-Control-Allow-Origin", "*")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.relay()

            def do_POST(self):
                self.relay()

            def do_OPTIONS(self):
                self.relay()

            def relay(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                conn = http.client.HTTPConnection("127.0.0.1", front.proxy_port, timeout=10)
                hdrs = {k: v for k, v in self.headers.items()
                        if k.lower() not in ("host", "connection", "content-length")}
                hdrs["X-Forwarded-For"] = self.client_address[0]
                conn.request(self.command, self.path, body=body or None, headers=hdrs)
                r = conn.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("connection", "content-length", "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

        self.proxy_port = proxy_port
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.origin = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_for(cond, timeout=10.0, what="condition"):
    """Poll cond() until it returns something true; fail with `what` at the deadline."""
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


class SnippetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not BROWSER:
            if os.environ.get("CI"):
                raise AssertionError("chromium and chromedriver are required in CI "
                                     "(Debian packages chromium, chromium-driver)")
            raise unittest.SkipTest("chromium or chromedriver missing")
        cls.pages = PageServer()
        cls.browser = None
        try:
            cls.browser = webdriver.Browser(*BROWSER, args=["--user-agent=" + UA])
        except BaseException:
            cls.pages.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.browser:
            cls.browser.quit()
        cls.pages.stop()

    def setUp(self):
        self.fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        site = site_config(self.fake.url, allowed_origins=[self.pages.origin],
                           consent={"default": "denied", "honor_gpc": True,
                                    "tcf": {"vendor_id": VENDOR}},
                           dest={"events": EVENTS})
        self.proxy = Proxy([site], limits={"flush_interval_ms": 20}).start()
        self.front = None
        origin = "http://127.0.0.1:%d" % self.proxy.port
        if os.environ.get("SG_SNIPPET_DEV_FRONT") == "1":
            self.front = DevFront(self.proxy.port)
            origin = self.front.origin
        self.sg = origin + "/sg.js"
        self.pages.pages.clear()
        self.pages.headers.clear()
        self.pages.pages["/blank"] = "<!doctype html><title>blank</title>"
        # Every test starts without the proxy's cookies (they are per host, any port).
        self.browser.get(self.pages.origin + "/blank")
        self.browser.delete_cookies()

    def tearDown(self):
        try:
            self.browser.get("about:blank")  # no page left that could still send
        finally:
            if self.front:
                self.front.stop()
            code = self.proxy.stop()
            self.fake.stop()
        self.assertEqual(code, 0, self.proxy.stderr())

    # helpers

    def open(self, path, html, query=""):
        self.pages.pages[path] = html
        self.browser.get(self.pages.origin + path + query)
        self.wait_snippet()

    def wait_snippet(self, name="ttq"):
        wait_for(lambda: self.browser.execute(
            "return !!(window[arguments[0]] && window[arguments[0]]._sg)", name),
            what="sg.js to load (is GET /sg.js served?)")

    def arrived(self, event_id, timeout=10.0, name=None):
        """The outbound event with this id (or the first with this name), once the fake TikTok
        accepted it."""
        def find():
            for ev in list(self.fake.events):
                if ev.get("event_id") == event_id or (name and ev.get("event") == name):
                    return ev
            return None
        try:
            return wait_for(find, timeout, "event %s at the fake TikTok" % (event_id or name))
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, self.diagnosis()))

    def diagnosis(self):
        """What a failure message needs: what the fake got, the sync log, the proxy's log."""
        return "fake requests: %s\nsync log: %s\nproxy log:\n%s" % (
            [(r["code"], [e.get("event_id") for e in (r["body"] or {}).get("data", [])])
             for r in list(self.fake.requests)],
            [(x.get("event_id"), x.get("status"), x.get("reason")) for x in self.proxy.sync_log()],
            self.proxy.stderr()[-3000:])

    def ids(self):
        return [ev.get("event_id") for ev in list(self.fake.events)]

    def cookie(self, name):
        for c in self.browser.cookies():
            if c["name"] == name:
                return c
        return None

    # a. the click id survives a page without it, through the proxy's cookie

    def test_click_id_persists_with_tcf_consent(self):
        calls = 'ttq.load("shop"); ttq.track("ViewContent", {}, {event_id: "a-1"});'
        self.open("/land", page(self.sg, CMP % json.dumps(GRANT_TC), calls),
                  "?ttclid=" + CLICK)
        first = self.arrived("a-1")
        self.assertEqual(first["user"].get("ttclid"), CLICK, first)
        self.assertIsNotNone(wait_for(lambda: self.cookie("sg_ttclid"), what="sg_ttclid"))
        calls = 'ttq.load("shop"); ttq.track("ViewContent", {}, {event_id: "a-2"});'
        self.open("/next", page(self.sg, CMP % json.dumps(GRANT_TC), calls))
        second = self.arrived("a-2")
        self.assertNotIn("ttclid", second["page"]["url"])
        self.assertEqual(second["user"].get("ttclid"), CLICK, second)
        self.assertIn("user_agent", second["user"])

    # b. denied: no click id, no user agent, and the click id cookie is expired

    def test_denied_sends_minimal_and_expires_the_cookie(self):
        calls = 'ttq.track("ViewContent", {}, {event_id: "b-1"});'
        self.open("/land", page(self.sg, CMP % json.dumps(GRANT_TC), calls), "?ttclid=" + CLICK)
        self.assertEqual(self.arrived("b-1")["user"].get("ttclid"), CLICK)
        wait_for(lambda: self.cookie("sg_ttclid"), what="sg_ttclid set")
        calls = 'ttq.track("ViewContent", {}, {event_id: "b-2"});'
        self.open("/denied", page(self.sg, CMP % json.dumps(REJECT_TC), calls),
                  "?ttclid=E.C.P.other")
        out = self.arrived("b-2")
        self.assertNotIn("ttclid", out["user"])
        self.assertNotIn("user_agent", out["user"])
        self.assertNotIn("ttclid", out["page"]["url"])
        wait_for(lambda: self.cookie("sg_ttclid") is None, what="sg_ttclid expired")

    # a CMP that never answers (its banner still open): events wait, and leave at page hide
    # without a TC string, so the site default (denied) decides

    def test_silent_cmp_events_leave_at_page_hide(self):
        self.pages.pages["/away"] = "<!doctype html><title>away</title>"
        head = "window.__tcfapi = function () {};"
        calls = 'ttq.track("ViewContent", {}, {event_id: "s-1"});'
        self.open("/silent", page(self.sg, head, calls), "?ttclid=" + CLICK)
        self.browser.execute('location.href = "/away";')
        out = self.arrived("s-1")
        self.assertNotIn("ttclid", out["user"])
        self.assertNotIn("ttclid", out["page"]["url"])

    # c. holdConsent: nothing leaves until grantConsent, then the held events do

    def test_hold_then_grant(self):
        calls = ('ttq.holdConsent(); ttq.track("ViewContent", {}, {event_id: "c-held"});')
        # A second copy of the snippet under another name (data-name) is not held: its marker
        # is tracked after the held event, so once it arrives the held event's batch window
        # has passed too.
        marker = ('<script src="%s" data-site="shop" data-name="sgq" async '
                  'onload="sgq.track(\'Lead\', {}, {event_id: \'c-marker\'})"></script>'
                  % self.sg)
        self.open("/hold", page(self.sg, "", calls, after=marker))
        self.arrived("c-marker")
        self.assertNotIn("c-held", self.ids())
        self.assertEqual(self.browser.execute("ttq.grantConsent(); return 1"), 1)
        out = self.arrived("c-held")
        self.assertIn("user_agent", out["user"])        # sent with consent granted
        self.assertIn("external_id", out["user"])

    # d. Global Privacy Control: the minimal event, even after grantConsent

    def test_gpc(self):
        calls = ('ttq.grantConsent(); ttq.track("ViewContent", {}, {event_id: "d-1"});')
        self.open("/gpc", page(self.sg, GPC, calls), "?ttclid=" + CLICK)
        out = self.arrived("d-1")
        self.assertEqual(set(out["user"]), {"ip"}, out)
        self.assertNotIn("ttclid", out["page"]["url"])
        self.assertIs(out.get("limited_data_use"), True)
        self.assertIsNone(self.cookie("sg_ttclid"))

    # e. event ids: the given one unchanged, else the generated one ttq.track returned

    def test_event_ids(self):
        self.open("/ids", page(self.sg))
        given, generated = self.browser.execute(
            'return [ttq.track("AddToCart", {value: 3, currency: "EUR"}, {event_id: "e-given"}),'
            ' ttq.track("AddToCart", {value: 4, currency: "EUR"})]')
        self.assertEqual(given, "e-given")
        # 128 random bits as letters: no digit run the proxy could take for a phone number.
        self.assertRegex(generated, r"^[a-p]{32}$")
        self.assertEqual(self.arrived("e-given")["properties"].get("value"), 3)
        self.assertEqual(self.arrived(generated)["properties"].get("value"), 4)

    # f. calls queued by the stub before sg.js loaded are replayed, in order

    def test_stub_queue_replayed_in_order(self):
        calls = ('ttq.load("' + PIXEL + '"); ttq.grantConsent();'
                 'ttq.track("ViewContent", {}, {event_id: "f-1"});'
                 'ttq.identify({external_id: "customer-42"});'
                 'ttq.track("AddToCart", {}, {event_id: "f-2"});'
                 'ttq.instance("' + PIXEL + '").track("Lead", {}, {event_id: "f-3"});'
                 'ttq.page();')
        # data-site absent: the site is the pixel code given to ttq.load.
        self.open("/stub", page(self.sg, "", calls, attrs=""))
        f1, f2, f3 = self.arrived("f-1"), self.arrived("f-2"), self.arrived("f-3")
        pageview = self.arrived(None, name="Pageview")
        order = self.ids()
        self.assertLess(order.index("f-1"), order.index("f-2"))
        self.assertLess(order.index("f-2"), order.index(pageview["event_id"]))
        # identify came between f-1 and f-2: f-1 carries the session's external id, f-2 and
        # later ones the site's (hashed by the proxy), so they differ.
        self.assertNotEqual(f1["user"]["external_id"], f2["user"]["external_id"])
        self.assertEqual(f2["user"]["external_id"], f3["user"]["external_id"])
        self.assertNotIn("customer-42", json.dumps(list(self.fake.events)))
        # The base code run again after sg.js (a tag manager re-inserting it): its stubs push
        # onto ttq, and the snippet takes those calls too.
        self.browser.execute(STUB + 'ttq.track("Lead", {}, {event_id: "f-4"});')
        self.arrived("f-4")

    # g. an event tracked just before the page goes away leaves on page hide

    def test_beacon_on_page_hide(self):
        self.pages.pages["/away"] = "<!doctype html><title>away</title>"
        self.open("/leave", page(self.sg))
        self.browser.execute('ttq.track("Lead", {}, {event_id: "g-1"});'
                             'location.href = "/away";')
        self.arrived("g-1")

    # h. a page on an origin the site does not allow: nothing it tracks reaches TikTok

    def test_refused_origin(self):
        html = page(self.sg, "", 'ttq.track("Lead", {}, {event_id: "h-refused"});')
        self.pages.pages["/other"] = html
        self.browser.get("http://localhost:%d/other" % self.pages.port)
        self.wait_snippet()
        self.browser.execute('ttq.track("Lead", {}, {event_id: "h-refused-2"});'
                             'location.href = "/blank";')  # and the page-hide flush
        # A marker from the allowed origin, sent after: once it arrived, the refused ones
        # had their chance.
        self.open("/ok", page(self.sg, "", 'ttq.track("Lead", {}, {event_id: "h-ok"});'))
        self.arrived("h-ok")
        self.assertNotIn("h-refused", self.ids())
        self.assertNotIn("h-refused-2", self.ids())

    # Google Consent Mode from window.dataLayer: the latest default/update entries decide

    def test_consent_mode(self):
        head = ("window.dataLayer = window.dataLayer || [];"
                "function gtag() { dataLayer.push(arguments); }"
                "gtag('consent', 'default', {ad_storage: 'denied', ad_user_data: 'denied'});"
                "gtag('consent', 'update', {ad_storage: 'granted', ad_user_data: 'granted'});")
        self.open("/cm", page(self.sg, head, 'ttq.track("Lead", {}, {event_id: "cm-1"});'),
                  "?ttclid=" + CLICK)
        self.assertEqual(self.arrived("cm-1")["user"].get("ttclid"), CLICK)
        # An update pushed later (an array, as a tag manager pushes it) applies to later events.
        self.browser.execute("dataLayer.push(['consent', 'update', {ad_user_data: 'denied'}]);"
                             'ttq.track("Lead", {}, {event_id: "cm-2"});')
        out = self.arrived("cm-2")
        self.assertNotIn("ttclid", out["user"])
        self.assertNotIn("user_agent", out["user"])

    # without sendBeacon, fetch (keepalive, with the proxy's cookies) carries the events

    def test_fetch_fallback(self):
        head = "navigator.sendBeacon = function () { return false; };"
        calls = 'ttq.grantConsent(); ttq.track("Lead", {}, {event_id: "fb-1"});'
        self.open("/fetch", page(self.sg, head, calls), "?ttclid=" + CLICK)
        self.assertEqual(self.arrived("fb-1")["user"].get("ttclid"), CLICK)
        wait_for(lambda: self.cookie("sg_ttclid"), what="sg_ttclid set through fetch")
        self.open("/fetch2", page(self.sg, head, calls.replace("fb-1", "fb-2")))
        self.assertEqual(self.arrived("fb-2")["user"].get("ttclid"), CLICK)  # cookie sent

    # a batch larger than a beacon may carry is split, and every event of it arrives

    def test_large_batch_is_split(self):
        self.open("/big", page(self.sg))
        ids = self.browser.execute("""
            // 6 KB of properties each (two fields under the proxy's 4 KB field limit): 20 of
            // them (one batch) are twice what one request to the proxy may carry (64 KB).
            var ids = [], text = "lorem ipsum ".repeat(250);
            for (var i = 0; i < 30; i++)
                ids.push(ttq.track("ViewContent", {description: text, query: text},
                                   {event_id: "big-" + i}));
            return ids;""")
        self.assertEqual(len(ids), 30)
        for i in ids:
            self.arrived(i)

    # a strict Content-Security-Policy that allows the proxy's origin in script-src and
    # connect-src only, and the tag pinned with Subresource Integrity

    def test_csp_and_sri(self):
        with urllib.request.urlopen(self.sg, timeout=10) as r:
            script = r.read()
        sri = "sha384-" + base64.b64encode(hashlib.sha384(script).digest()).decode()
        origin = self.sg[:-len("/sg.js")]
        self.pages.headers["/csp"] = {"Content-Security-Policy": (
            "default-src 'none'; script-src 'nonce-t3st' %s; connect-src %s" % (origin, origin))}
        html = ('<!doctype html><html><head><script nonce="t3st">'
                'window.violations = [];'
                'document.addEventListener("securitypolicyviolation", function (e) {'
                '  violations.push(e.violatedDirective + " " + e.blockedURI); });'
                '%s ttq.track("Lead", {}, {event_id: "csp-1"});</script>'
                '<script src="%s" data-site="shop" integrity="%s" crossorigin="anonymous" async>'
                '</script></head><body><p>csp</p></body></html>' % (STUB, self.sg, sri))
        self.open("/csp", html)
        self.arrived("csp-1")
        self.browser.execute('ttq.track("Lead", {}, {event_id: "csp-2"});')
        self.arrived("csp-2")
        self.assertEqual(self.browser.execute("return window.violations"), [])

    # the snippet touches no cookie and no storage, and talks to the proxy's origin only

    def test_no_storage_and_no_third_party(self):
        head = """
            window.touched = [];
            var c = Object.getOwnPropertyDescriptor(Document.prototype, "cookie");
            Object.defineProperty(document, "cookie", {
              get: function () { touched.push("cookie read"); return c.get.call(document); },
              set: function (v) { touched.push("cookie write"); c.set.call(document, v); }});
            ["getItem", "setItem", "removeItem", "clear", "key"].forEach(function (m) {
              var f = Storage.prototype[m];
              Storage.prototype[m] = function () {
                touched.push("storage " + m); return f.apply(this, arguments); };
            });"""
        calls = ('ttq.identify({email: "jane@example.com", external_id: "c-1"});'
                 'ttq.grantConsent(); ttq.page();'
                 'ttq.track("Purchase", {value: 1, currency: "EUR"}, {event_id: "ns-1"});')
        self.open("/nostore", page(self.sg, head, calls))
        self.arrived("ns-1")
        self.browser.execute('ttq.track("Lead", {}, {event_id: "ns-2"});')
        self.arrived("ns-2")
        self.assertEqual(self.browser.execute("return window.touched"), [])
        origin = self.sg[:-len("/sg.js")]
        urls = self.browser.execute(
            "return performance.getEntriesByType('resource').map(function (e) {"
            "  return e.name; })")
        self.assertTrue(urls)
        self.assertEqual([u for u in urls if not u.startswith(origin + "/")], [], urls)

    # i. malformed calls neither throw nor stop the valid calls after them

    def test_malformed_calls(self):
        self.open("/bad", page(self.sg))
        thrown = self.browser.execute("""
            var out = [];
            function t(f) { try { out.push(f()); } catch (e) { out.push("threw " + e); } }
            t(function () { return ttq.track(); });
            t(function () { return ttq.track(42); });
            t(function () { return ttq.track("x".repeat(500)); });
            t(function () { return ttq.track("Lead", "not an object"); });
            t(function () { var o = {}; o.self = o; return ttq.track("Lead", o); });
            t(function () { return ttq.identify(null); });
            t(function () { return ttq.identify("jane@example.com"); });
            t(function () { return ttq.load({}); });
            t(function () { return ttq.ready(function () { throw new Error("site bug"); }); });
            t(function () { return ttq.on("x", 1) || ttq.debug() || ttq.enableCookie(); });
            t(function () { return ttq.track("Lead", new Date(0)); });
            t(function () { var a = ["x"]; a.push(a); return ttq.identify({email: a}); });
            t(function () { return ttq.identify({get email() { throw new Error("x"); }}); });
            t(function () {
                return ttq.track("Lead", {}, {get event_id() { throw new Error("x"); }}); });
            t(function () { return ttq.holdConsent() || ttq.revokeConsent() ||
                                   ttq.grantConsent(); });
            t(function () { return ttq.track("Lead", {}, {event_id: "i-ok"}); });
            return out.map(String);""")
        self.assertEqual([x for x in thrown if x.startswith("threw")], [])
        self.assertEqual(thrown[-1], "i-ok")
        self.arrived("i-ok")
        self.assertEqual([e["event_id"] for e in list(self.fake.events)], ["i-ok"])


    # (issue 11) more events held than the proxy takes in one request (100): the snippet sends
    # at most 50 per request, and every held event arrives

    def test_held_events_split_by_count(self):
        head = ("window.bodies = []; var sb = navigator.sendBeacon.bind(navigator);"
                "navigator.sendBeacon = function (u, b) { bodies.push(b); return sb(u, b); };")
        self.open("/many", page(self.sg, head, "ttq.holdConsent();"))
        n = self.browser.execute("""
            for (var i = 0; i < 150; i++) ttq.track("ViewContent", {}, {event_id: "m-" + i});
            var before = bodies.length;
            ttq.grantConsent();
            return [i, before];""")
        self.assertEqual(n, [150, 0])            # nothing left while held
        want = set("m-%d" % i for i in range(150))
        wait_for(lambda: want <= set(self.ids()), 15,
                 "150 held events at the fake TikTok\n" + self.diagnosis())
        sizes = self.browser.execute(
            "return bodies.map(function (b) { return JSON.parse(b).length; })")
        self.assertEqual(sum(sizes), 150)
        self.assertLessEqual(max(sizes), 50, sizes)

    # held events leave on no page hide (tab switch or page left) and no CMP answer: only a
    # choice releases them

    def test_held_events_never_leave_on_hide(self):
        self.pages.pages["/away"] = "<!doctype html><title>away</title>"
        self.open("/held", page(self.sg, CMP % json.dumps(GRANT_TC),
                                'ttq.holdConsent(); ttq.track("Lead", {}, {event_id: "hh-1"});'))
        self.browser.execute(
            "Object.defineProperty(document, 'visibilityState', {configurable: true,"
            " get: function () { return 'hidden'; }});"
            "document.dispatchEvent(new Event('visibilitychange'));"
            "delete document.visibilityState;")
        # The CMP's answer (300 ms after a listener registers) does not release them either.
        self.browser.execute("window.cmpDone = false;"
                             "__tcfapi('addEventListener', 2, function () { cmpDone = true; });")
        wait_for(lambda: self.browser.execute("return cmpDone"), what="the CMP's answer")
        # Then the page is left (pagehide).
        self.browser.execute('ttq.track("Lead", {}, {event_id: "hh-2"});'
                             'location.href = "/away";')
        wait_for(lambda: self.browser.execute("return location.pathname") == "/away",
                 what="the page left")
        # A marker tracked after the held page was left: once it arrived, anything the held page
        # had sent would have arrived before it.
        self.open("/marker", page(self.sg, "", 'ttq.track("Lead", {}, {event_id: "hh-m"});'))
        self.arrived("hh-m")
        self.assertNotIn("hh-1", self.ids())
        self.assertNotIn("hh-2", self.ids())

    # (issue 11) each event carries the consent in force when it was tracked: the site's choice
    # and Consent Mode changed within the batch window do not reach earlier events

    def test_consent_is_read_when_tracked(self):
        self.open("/revoked", page(self.sg), "?ttclid=" + CLICK)
        self.browser.execute('ttq.revokeConsent();'
                             'ttq.track("ViewContent", {}, {event_id: "rv-1"});'
                             'ttq.grantConsent();'
                             'ttq.track("ViewContent", {}, {event_id: "rv-2"});'
                             'ttq.revokeConsent();')
        out = self.arrived("rv-1")
        self.assertNotIn("ttclid", out["user"], "tracked while denied, sent with the click id")
        self.assertNotIn("user_agent", out["user"])
        out = self.arrived("rv-2")
        self.assertEqual(out["user"].get("ttclid"), CLICK, "tracked while granted")
        # Consent Mode likewise: a denial pushed after the event does not reach it, and a grant
        # pushed after an event tracked while denied does not either.
        head = ("window.dataLayer = [];"
                "function gtag() { dataLayer.push(arguments); }"
                "gtag('consent', 'default', {ad_storage: 'granted', ad_user_data: 'granted',"
                " ad_personalization: 'granted', analytics_storage: 'granted'});")
        self.open("/cmtime", page(self.sg, head), "?ttclid=" + CLICK)
        self.browser.execute('ttq.track("Lead", {}, {event_id: "rv-3"});'
                             "gtag('consent', 'update', {ad_user_data: 'denied'});"
                             'ttq.track("Lead", {}, {event_id: "rv-4"});'
                             "gtag('consent', 'update', {ad_user_data: 'granted'});")
        self.assertEqual(self.arrived("rv-3")["user"].get("ttclid"), CLICK)
        out = self.arrived("rv-4")
        self.assertNotIn("ttclid", out["user"])
        self.assertNotIn("user_agent", out["user"])

    def restart_proxy(self, default):
        """The fixture's proxy again, with another consent.default."""
        self.assertEqual(self.proxy.stop(), 0, self.proxy.stderr())
        site = site_config(self.fake.url, allowed_origins=[self.pages.origin],
                           consent={"default": default, "honor_gpc": True,
                                    "tcf": {"vendor_id": VENDOR}},
                           dest={"events": EVENTS})
        self.proxy = Proxy([site], limits={"flush_interval_ms": 20}).start()
        if self.front:
            self.front.proxy_port = self.proxy.port
        else:
            self.sg = "http://127.0.0.1:%d/sg.js" % self.proxy.port

    # (issue 11) a tab switch while the CMP has not answered sends nothing that waits for it:
    # on a site whose default grants, the event would leave with the click id. It leaves with
    # the CMP's answer (here a rejection) once that comes.

    def test_tab_switch_keeps_cmp_waiting_events(self):
        self.restart_proxy("granted")
        head = ("window.tcfcbs = [];"
                "window.__tcfapi = function (cmd, v, cb) {"
                "  if (cmd === 'addEventListener') tcfcbs.push(cb); };")
        self.open("/pending", page(self.sg, head,
                                   'ttq.track("ViewContent", {}, {event_id: "tab-1"});'),
                  "?ttclid=" + CLICK)
        self.browser.execute(
            "Object.defineProperty(document, 'visibilityState', {configurable: true,"
            " get: function () { return 'hidden'; }});"
            "document.dispatchEvent(new Event('visibilitychange'));"
            "delete document.visibilityState;"
            "tcfcbs.forEach(function (cb) { cb({tcString: %s, eventStatus: 'useractioncomplete',"
            " gdprApplies: true, listenerId: 1}, true); });" % json.dumps(REJECT_TC))
        # Had the tab switch sent it, the first copy to arrive would carry the click id.
        out = self.arrived("tab-1")
        self.assertNotIn("ttclid", out["user"], out)
        self.assertNotIn("user_agent", out["user"], out)

    # (issue 11) grantConsent() is sent with the other signals, so that a TCF rejection or a
    # Consent Mode denial still wins; revokeConsent() denies all four purposes

    def test_explicit_choice_keeps_cmp_denials(self):
        head = ("window.bodies = []; var sb = navigator.sendBeacon.bind(navigator);"
                "navigator.sendBeacon = function (u, b) { bodies.push(b); return sb(u, b); };")
        self.open("/tcfgrant", page(self.sg, head + CMP % json.dumps(REJECT_TC),
                                    'ttq.grantConsent();'
                                    'ttq.track("ViewContent", {}, {event_id: "tg-1"});'),
                  "?ttclid=" + CLICK)
        out = self.arrived("tg-1")
        self.assertNotIn("ttclid", out["user"], "TCF said no, the click id left")
        sent = [e for b in self.browser.execute("return bodies") for e in json.loads(b)]
        self.assertEqual(sent[0]["consent"], {
            "ad_storage": "granted", "ad_user_data": "granted", "ad_personalization": "granted",
            "analytics_storage": "granted", "tcf": REJECT_TC})
        head2 = head + ("window.dataLayer = [['consent', 'default', {ad_user_data: 'denied',"
                        " ad_storage: 'granted'}]];")
        self.open("/cmgrant", page(self.sg, head2,
                                   'ttq.grantConsent();'
                                   'ttq.track("ViewContent", {}, {event_id: "tg-2"});'
                                   'ttq.revokeConsent();'
                                   'ttq.track("ViewContent", {}, {event_id: "tg-3"});'),
                  "?ttclid=" + CLICK)
        for i in ("tg-2", "tg-3"):
            out = self.arrived(i)
            self.assertNotIn("ttclid", out["user"], out)
            self.assertNotIn("user_agent", out["user"], out)
        wait_for(lambda: len(self.browser.execute("return bodies")), what="the beacon")
        sent = {e["event_id"]: e["consent"]
                for b in self.browser.execute("return bodies") for e in json.loads(b)}
        self.assertEqual(sent["tg-2"], {
            "ad_storage": "granted", "ad_user_data": "denied", "ad_personalization": "granted",
            "analytics_storage": "granted"})
        self.assertEqual(sent["tg-3"], dict.fromkeys(
            ["ad_storage", "ad_user_data", "ad_personalization", "analytics_storage"],
            "denied"))

    # (issue 11) a page URL or referrer over the proxy's field limit is cut, and the event sent

    def test_long_page_url_is_capped(self):
        query = "?ttclid=" + CLICK + "&q=" + "a" * 3000
        self.pages.pages["/from"] = "<!doctype html><title>from</title>"
        # The referrer: the URL we come from, over 4000 characters but within the 4096 that
        # Chromium keeps of a referrer (it sends no fragment in it).
        self.browser.get(self.pages.origin + "/from" + query + "&r=" + "b" * 1000)
        self.pages.pages["/long"] = page(self.sg, "", "ttq.grantConsent();")
        self.browser.execute('location.href = "/long" + arguments[0] + "#" + "z".repeat(500);',
                             query + "&r=" + "b" * 1200)
        self.wait_snippet()
        referrer = self.browser.execute("return document.referrer")
        self.assertGreater(len(referrer), 4000)
        ret = self.browser.execute('return ttq.track("Lead", {}, {event_id: "long-1"});')
        self.assertEqual(ret, "long-1")
        out = self.arrived("long-1")
        # The fragment goes first, then the parameters from the last '&' before 4000 characters;
        # the click id, early in the URL, is still read.
        self.assertEqual(out["user"].get("ttclid"), CLICK, out)
        self.assertNotIn("r=", out["page"]["url"])
        self.assertNotIn("#", out["page"]["url"])
        self.assertLessEqual(len(out["page"]["url"]), 4000)
        self.assertEqual(out["page"]["referrer"], referrer[:referrer.rindex("&")], out["page"])
        # One long parameter, no '&': cut at 4000 characters.
        self.browser.execute('history.replaceState(null, "", "/long?q=" + "c".repeat(5000));')
        self.browser.execute('ttq.track("Lead", {}, {event_id: "long-2"});')
        out = self.arrived("long-2")
        self.assertLessEqual(len(out["page"]["url"]), 4000)
        self.assertIn("c" * 3000, out["page"]["url"])

    # (issue 11) identify() values are checked when given: a malformed one is ignored and never
    # breaks later calls

    def test_malformed_identify_is_ignored(self):
        self.open("/ident", page(self.sg))
        ret = self.browser.execute("""
            ttq.grantConsent();
            var a = ["x@example.com"]; a.push(a);
            ttq.identify({email: a, external_id: {id: 1}});
            ttq.identify({phone_number: ["+1", "+2", "+3", "+4", "+5", "+6"]});
            ttq.identify({external_id: ["k-1", 7]});
            return [ttq.track("Lead", {}, {event_id: "id-1"}),
                    ttq.track("Lead", {}, {event_id: "id-2"})];""")
        self.assertEqual(ret, ["id-1", "id-2"])
        a, b = self.arrived("id-1"), self.arrived("id-2")
        self.assertNotIn("email", a["user"])
        self.assertNotIn("phone_number", a["user"])
        self.assertIn("external_id", a["user"])   # the valid array, hashed by the proxy
        self.assertNotIn("k-1", json.dumps(list(self.fake.events)))

    # (issue 11) properties that are not a plain object: the call is ignored (undefined)

    def test_non_plain_properties_are_ignored(self):
        self.open("/date", page(self.sg))
        ret = self.browser.execute("""
            return [ttq.track("Lead", new Date(0), {event_id: "dt-1"}),
                    ttq.track("Lead", new String("x"), {event_id: "dt-2"}),
                    ttq.track("Lead", [1, 2], {event_id: "dt-3"}),
                    ttq.track("Lead", {toJSON: function () { return "s"; }}, {event_id: "dt-4"}),
                    ttq.track("Lead", {value: 1}, {event_id: "dt-ok"})];""")
        self.assertEqual(ret, [None, None, None, None, "dt-ok"])
        self.arrived("dt-ok")
        self.assertEqual(self.ids(), ["dt-ok"])


def main():
    if not BROWSER and not os.environ.get("CI"):
        print("skipped: chromium or chromedriver missing (Debian: chromium, chromium-driver)")
        sys.exit(77)
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
