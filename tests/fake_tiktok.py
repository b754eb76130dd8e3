#!/usr/bin/env python3
"""A local fake of TikTok's Events API v1.3 (/open_api/v1.3/event/track/).

It checks requests as strictly as the real API is documented to in
TikTok's Events API v1.3 documentation: the exact path, the raw Access-Token header
(a "Bearer " prefix or a wrong token is 40105, none is 40104), only TikTok's
keys at every level, event_time in Unix seconds and not in the future, 1..1000
events (more is 40061), hashed identifiers (raw email or phone is 40062),
ids as strings (40002), partner_name refused (40063), test events sent alone.

Use it in-process (FakeTikTok(...).start()) or as a program:
    python3 tests/fake_tiktok.py --port 9999 --token T --pixel P
Scripted replies (for flaky, throttling, HTML 502 and slow upstreams) are
queued with script([...]); each entry is {"code": n} or {"http": s, "body": b}
or {"delay": seconds, ...}. Oversized replies: {"huge": n} answers code 0
padded to n bytes (with a Content-Length), {"endless": True} answers code 0
followed by a chunked body that never ends; both record in the request's
entry how many body bytes were written ("sent") and whether the client hung
up ("hung_up", set once the write failed; "done" is set when the reply ended).
"""
import argparse
import http.server
import json
import re
import threading
import time
import uuid

TRACK_PATH = "/open_api/v1.3/event/track/"
HEX64 = re.compile(r"^[0-9a-f]{64}$")
TOP_KEYS = {"event_source", "event_source_id", "data", "test_event_code"}
EVENT_KEYS = {"event", "event_time", "event_id", "user", "page", "properties", "limited_data_use"}
USER_KEYS = {"email", "phone", "external_id", "first_name", "last_name", "zip_code", "ttclid",
             "ttp", "ip", "user_agent", "locale", "city", "state", "country"}
HASHED_USER_KEYS = {"email", "phone", "external_id", "first_name", "last_name", "zip_code"}
# TikTok takes a string or an array for these (and only these).
ARRAY_USER_KEYS = {"email", "phone", "external_id"}
PAGE_KEYS = {"url", "referrer"}
PROPERTY_KEYS = {"value", "currency", "content_type", "content_ids", "contents", "num_items",
                 "search_string", "query", "description", "order_id", "shop_id"}
CONTENT_KEYS = {"content_id", "content_name", "content_category", "price", "quantity", "brand"}
CURRENCIES = set("""AED ARS AUD BDT BHD BIF BOB BRL CAD CHF CLP CNY COP CRC CZK DKK DZD EGP EUR GBP
GTQ HKD HNL HUF IDR ILS INR ISK JPY KES KHR KRW KWD KZT MAD MOP MXN MYR NGN NIO NOK NZD OMR PEN PHP
PKR PLN PYG QAR RON RUB SAR SEK SGD THB TRY TWD UAH USD VES VND ZAR""".split())


class Reject(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_hashed(key, v):
    if isinstance(v, list) and (key not in ARRAY_USER_KEYS or not v):
        raise Reject(40002, "user.%s: Not a valid string" % key)
    values = v if isinstance(v, list) else [v]
    for x in values:
        if not isinstance(x, str) or not HEX64.match(x):
            if key in ("email", "phone"):
                raise Reject(40062, "PII_NOT_HASHED: user.%s must be SHA-256 hex" % key)
            raise Reject(40002, "user.%s: not a valid SHA-256 hex string" % key)


def validate_event(ev, now):
    if not isinstance(ev, dict):
        raise Reject(40002, "data[]: not an object")
    unknown = set(ev) - EVENT_KEYS
    if unknown:
        raise Reject(40002, "unknown event keys: %s" % sorted(unknown))
    if not isinstance(ev.get("event"), str) or not ev["event"]:
        raise Reject(40002, "event: required string")
    t = ev.get("event_time")
    if not isinstance(t, int) or isinstance(t, bool):
        raise Reject(40002, "event_time: must be an integer")
    if t > now + 5:
        raise Reject(40002, "event_time: in the future")
    if t > 10 ** 11:
        raise Reject(40002, "event_time: must be seconds, not milliseconds")
    if "event_id" in ev and not isinstance(ev["event_id"], str):
        raise Reject(40002, "event_id: Not a valid string")
    if "limited_data_use" in ev and not isinstance(ev["limited_data_use"], bool):
        raise Reject(40002, "limited_data_use: must be a boolean")
    user = ev.get("user", {})
    if not isinstance(user, dict):
        raise Reject(40002, "user: not an object")
    unknown = set(user) - USER_KEYS
    if unknown:
        raise Reject(40002, "unknown user keys: %s" % sorted(unknown))
    for k, v in user.items():
        if k in HASHED_USER_KEYS:
            _check_hashed(k, v)
        elif not isinstance(v, str):
            raise Reject(40002, "user.%s: Not a valid string" % k)
    page = ev.get("page", {})
    if not isinstance(page, dict) or set(page) - PAGE_KEYS:
        raise Reject(40002, "page: only url and referrer")
    for k, v in page.items():
        if not isinstance(v, str):
            raise Reject(40002, "page.%s: Not a valid string" % k)
    props = ev.get("properties", {})
    if not isinstance(props, dict):
        raise Reject(40002, "properties: not an object")
    unknown = set(props) - PROPERTY_KEYS
    if unknown:
        raise Reject(40002, "unknown properties: %s" % sorted(unknown))
    for k in ("order_id", "shop_id", "search_string", "query", "description"):
        if k in props and not isinstance(props[k], str):
            raise Reject(40002, "properties.%s: Not a valid string" % k)
    if "value" in props and not _is_number(props["value"]):
        raise Reject(40002, "properties.value: must be a number")
    if "num_items" in props and not isinstance(props["num_items"], int):
        raise Reject(40002, "properties.num_items: must be an integer")
    if "currency" in props and props["currency"] not in CURRENCIES:
        raise Reject(40002, "properties.currency: not supported")
    if "content_type" in props and props["content_type"] not in ("product", "product_group"):
        raise Reject(40002, "properties.content_type: product or product_group")
    if "content_ids" in props:
        if not isinstance(props["content_ids"], list) or not all(
                isinstance(x, str) for x in props["content_ids"]):
            raise Reject(40002, "properties.content_ids: Not a valid string")
    if "num_items" in props and (isinstance(props["num_items"], bool) or props["num_items"] < 0):
        raise Reject(40002, "properties.num_items: must be a non-negative integer")
    if "contents" in props and not isinstance(props["contents"], list):
        raise Reject(40002, "properties.contents: must be an array")
    for c in props.get("contents", []):
        if not isinstance(c, dict) or set(c) - CONTENT_KEYS:
            raise Reject(40002, "properties.contents[]: unknown keys")
        if "content_id" in c and not isinstance(c["content_id"], str):
            raise Reject(40002, "properties.contents[].content_id: Not a valid string")
        for k in ("content_name", "content_category", "brand"):
            if k in c and not isinstance(c[k], str):
                raise Reject(40002, "properties.contents[].%s: Not a valid string" % k)
        for k in ("price",):
            if k in c and not _is_number(c[k]):
                raise Reject(40002, "properties.contents[].%s: must be a number" % k)
        if "quantity" in c and (not isinstance(c["quantity"], int) or isinstance(c["quantity"], bool)):
            raise Reject(40002, "properties.contents[].quantity: must be an integer")


def validate_request(body, pixel, now):
    if not isinstance(body, dict):
        raise Reject(40000, "body: not an object")
    if "partner_name" in body:
        raise Reject(40063, "partner_name: not a registered partner")
    unknown = set(body) - TOP_KEYS
    if unknown:
        raise Reject(40002, "unknown top-level keys: %s" % sorted(unknown))
    if body.get("event_source") != "web":
        raise Reject(40002, "event_source: must be web")
    if body.get("event_source_id") != pixel:
        raise Reject(40001, "event_source_id: no permission for this pixel")
    data = body.get("data")
    if not isinstance(data, list) or not data:
        raise Reject(40002, "data: 1 to 1000 events")
    if len(data) > 1000:
        raise Reject(40061, "data: more than 1000 events")
    if "test_event_code" in body:
        if not isinstance(body["test_event_code"], str):
            raise Reject(40002, "test_event_code: Not a valid string")
        if len(data) != 1:
            raise Reject(40002, "test events are sent alone")
    for ev in data:
        validate_event(ev, now)


class FakeTikTok:
    def __init__(self, token="test-token", pixel="CPIXEL123", host="127.0.0.1", port=0):
        self.token = token
        self.pixel = pixel
        self.lock = threading.Lock()
        self.requests = []   # every request: {"headers", "body", "code"}
        self.events = []     # events of accepted requests
        self._script = []
        self.delay = 0.0     # seconds every request waits before its reply (a slow upstream)
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status, payload, ctype="application/json"):
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                fake._handle(self, raw)

            def do_GET(self):
                self._send(405, {"code": 40000, "message": "method"})

        self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://%s:%d" % (host, self.port)
        self.thread = None

    def script(self, replies):
        with self.lock:
            self._script.extend(replies)

    def _reply(self, h, code, message, http_status=200):
        h._send(http_status, {"code": code, "message": message,
                              "request_id": uuid.uuid4().hex, "data": {}})

    def _handle(self, h, raw):
        entry = {"headers": dict(h.headers), "path": h.path, "body": None, "code": None}
        with self.lock:
            scripted = self._script.pop(0) if self._script else None
            self.requests.append(entry)
        if scripted and "delay" in scripted:
            time.sleep(scripted["delay"])
        elif self.delay:
            time.sleep(self.delay)
        if h.path != TRACK_PATH:
            entry["code"] = 404
            return h._send(404, b"<html>404</html>", "text/html")
        token = h.headers.get("Access-Token")
        if not token:
            entry["code"] = 40104
            return self._reply(h, 40104, "Access token is empty")
        if token != self.token:
            entry["code"] = 40105
            return self._reply(h, 40105, "Access token is incorrect or has been revoked")
        if (h.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            entry["code"] = 40000
            return self._reply(h, 40000, "Content-Type must be application/json")
        try:
            body = json.loads(raw)
        except ValueError:
            entry["code"] = 40000
            return self._reply(h, 40000, "body: invalid JSON")
        entry["body"] = body
        try:
            validate_request(body, self.pixel, int(time.time()))
        except Reject as r:
            entry["code"] = r.code
            return self._reply(h, r.code, r.message)
        if scripted and "http" in scripted:
            entry["code"] = scripted["http"]
            return h._send(scripted["http"], scripted.get("body", b"").encode()
                           if isinstance(scripted.get("body"), str) else scripted.get("body", b""),
                           scripted.get("type", "text/html"))
        if scripted and "code" in scripted:
            entry["code"] = scripted["code"]
            return self._reply(h, scripted["code"], "scripted")
        if scripted and ("huge" in scripted or "endless" in scripted):
            entry["code"] = 0
            return self._oversized(h, entry, scripted.get("huge"))
        with self.lock:
            self.events.extend(body["data"])
        entry["code"] = 0
        return self._reply(h, 0, "OK")

    def _oversized(self, h, entry, size, limit=1 << 30):
        """A code-0 reply of size bytes, or an endless chunked one (size None).

        Writes until done or until the client hangs up; limit only stops a
        client that never does (after 1 GiB)."""
        head = json.dumps({"code": 0, "message": "OK", "request_id": uuid.uuid4().hex,
                           "data": {"pad": ""}}).encode()[:-3]  # ...,"pad": "
        tail = b'"}}'
        block = b"x" * 65536
        entry.update(sent=0, hung_up=False, done=False)
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        if size is None:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", str(size))
        h.end_headers()

        def write(data):
            if size is None:
                data = b"%x\r\n%s\r\n" % (len(data), data)
            h.wfile.write(data)
            entry["sent"] += len(data)

        try:
            write(head)
            pad = (size - len(head) - len(tail)) if size is not None else limit
            while pad > 0:
                n = min(pad, len(block))
                write(block[:n])
                pad -= n
            write(tail)
            if size is None:
                h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            entry["hung_up"] = True
            h.close_connection = True
        entry["done"] = True

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def wait_events(self, n, timeout=10.0):
        """Wait until at least n events were accepted; return them."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.events) >= n:
                    return list(self.events)
            time.sleep(0.02)
        with self.lock:
            return list(self.events)

    def wait_requests(self, n, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.requests) >= n:
                    return list(self.requests)
            time.sleep(0.02)
        with self.lock:
            return list(self.requests)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", default="test-token")
    ap.add_argument("--pixel", default="CPIXEL123")
    a = ap.parse_args()
    fake = FakeTikTok(a.token, a.pixel, a.host, a.port)
    print("fake tiktok on %s" % fake.url, flush=True)
    try:
        fake.server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
