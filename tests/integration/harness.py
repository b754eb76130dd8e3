"""Run the real scrubgate binary on 127.0.0.1 against the fake TikTok.

SCRUBGATE_BIN names the binary and SCRUBGATE_ROOT the source tree (ctest
sets both). Each Proxy gets its own temporary state_dir and config.
"""
import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from fake_tiktok import FakeTikTok  # noqa: E402

ROOT = os.environ.get("SCRUBGATE_ROOT", os.path.dirname(os.path.dirname(HERE)))
BIN = os.environ.get("SCRUBGATE_BIN", os.path.join(ROOT, "build", "scrubgate"))
SECRET = "site-secret-0123456789abcdef"
TOKEN = "tt-access-token-42"
INGEST_KEY = "ingest-key-for-servers-0001"
PIXEL = "CPIXEL123"


def free_port():
    """A port nothing listens on (for an admin listener, or an unreachable upstream)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def closed_port_url():
    return "http://127.0.0.1:%d" % free_port()


def rss_kb(pid):
    """A process's resident memory, from /proc."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def keyed(domain, value, secret=SECRET):
    """What the proxy's HMAC-SHA256 yields: key = site secret, message = domain NUL value."""
    return hmac.new(secret.encode(), domain.encode() + b"\0" + value.encode(),
                    hashlib.sha256).hexdigest()


def shipped_config():
    """conf/scrubgate.json with its relative paths made absolute, as the proxy resolves them
    (against conf/): for tests that write a changed copy somewhere else."""
    conf = os.path.join(ROOT, "conf")
    with open(os.path.join(conf, "scrubgate.json")) as f:
        cfg = json.load(f)
    cfg["state_dir"] = os.path.normpath(os.path.join(conf, cfg["state_dir"]))
    for site in cfg["sites"]:
        site["rules"] = os.path.normpath(os.path.join(conf, site["rules"]))
    return cfg


def site_config(fake_url, **over):
    dest = {
        "type": "tiktok",
        "pixel_code": PIXEL,
        "access_token_env": "SG_TEST_TOKEN",
        "api_base": fake_url,
        "events": ["Purchase", "AddToCart", "ViewContent", "Lead", "InitiateCheckout",
                   "CompleteRegistration"],
    }
    dest.update(over.pop("dest", {}))
    site = {
        "id": "shop",
        "hosts": ["shop.example.com"],
        "allowed_origins": ["https://shop.example.com"],
        "secret_env": "SG_TEST_SECRET",
        "ingest_key_env": "SG_TEST_INGEST_KEY",
        "rules": os.path.join(ROOT, "rules", "default.json"),
        "consent": {"default": "denied", "honor_gpc": True},
        "event_map": {"won": "Purchase", "qualified": "InitiateCheckout"},
        "destinations": [dest],
    }
    site.update(over)
    return site


class Proxy:
    def __init__(self, sites, limits=None, trusted=("127.0.0.1/32", "::1/128"), workers=2,
                 env=None, extra=None):
        self.dir = tempfile.mkdtemp(prefix="sg-it-")
        self.state_dir = os.path.join(self.dir, "var")
        cfg = {
            "listen": "127.0.0.1:0",
            "state_dir": self.state_dir,
            "trusted_proxies": list(trusted),
            "workers": workers,
            "sites": sites,
        }
        # One client (127.0.0.1) sends every test's load: the per-IP rate limit is off unless
        # a test sets it (test_admin.py tests the limits themselves).
        cfg["limits"] = dict({"rate_per_ip": 0}, **(limits or {}))
        cfg.update(extra or {})
        self.config = os.path.join(self.dir, "scrubgate.json")
        with open(self.config, "w") as f:
            json.dump(cfg, f, indent=2)
        self.env = dict(os.environ, SG_TEST_SECRET=SECRET, SG_TEST_TOKEN=TOKEN,
                        SG_TEST_INGEST_KEY=INGEST_KEY)
        self.env.update(env or {})
        self.proc = None
        self.cwd = ROOT  # the working directory of serve (the config's paths do not depend on it)
        self.stderr_lines = []
        self.port = None

    def start(self, preexec_fn=None):
        self.port = None  # set again by this run's "listening" line, not the last run's
        self.proc = subprocess.Popen([BIN, "serve", "-c", self.config], cwd=self.cwd, env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     preexec_fn=preexec_fn)
        ready = threading.Event()

        def reader():
            for line in self.proc.stderr:
                self.stderr_lines.append(line)
                m = re.search(r"listening on [^ ]+:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        self.reader = threading.Thread(target=reader, daemon=True)
        self.reader.start()
        if not ready.wait(10) or self.port is None:
            self.proc.kill()
            raise RuntimeError("scrubgate did not start:\n" + "".join(self.stderr_lines))
        return self

    def stop(self, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.reader.join(5)
            self.proc.stderr.close()
        return self.proc.returncode

    def kill(self):
        """kill -9: no shutdown path runs."""
        self.proc.kill()
        self.proc.wait()
        self.reader.join(5)
        self.proc.stderr.close()

    def stderr(self):
        return "".join(self.stderr_lines)

    def wait_log(self, text, timeout=5.0):
        """The log as soon as it contains text (the reader thread lags the process a little)."""
        deadline = time.time() + timeout
        while time.time() < deadline and text not in self.stderr():
            time.sleep(0.01)
        return self.stderr()

    def request(self, method, path, body=None, headers=None):
        """One HTTP request on a fresh connection: (status, headers dict, body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(headers, list):  # (name, value) pairs: a name may repeat
            data = body.encode() if isinstance(body, str) else (body or b"")
            conn.putrequest(method, path)
            for k, v in [("Content-Type", "application/json"),
                         ("Content-Length", str(len(data)))] + headers:
                conn.putheader(k, v)
            conn.endheaders(data)
        else:
            h = {"Content-Type": "application/json"}
            h.update(headers or {})
            conn.request(method, path, body=body,
                         headers={k: v for k, v in h.items() if v is not None})
        r = conn.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        hdrs["set-cookie-all"] = r.msg.get_all("Set-Cookie") or []
        conn.close()
        return r.status, hdrs, data

    def post(self, body, site="shop", headers=None):
        path = "/v1/events" + ("?site=%s" % site if site else "")
        return self.request("POST", path, body, headers)

    def sync_log(self):
        path = os.path.join(self.state_dir, "sync-log.jsonl")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def wait_sync(self, n, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            lines = self.sync_log()
            if len(lines) >= n:
                return lines
            time.sleep(0.02)
        return self.sync_log()


def session_from(headers):
    for c in headers.get("set-cookie-all", []):
        m = re.match(r"sg_sid=([0-9a-f]{32});", c)
        if m:
            return m.group(1)
    return None


def assert_nothing_raw(tc, proxy, fake, raws, upstream_too=()):
    """No raw value reached the proxy's log, any file under its state_dir, or TikTok (where
    upstream_too lists further forms, such as a number's E.164, that must not arrive either)."""
    for raw in raws:
        tc.assertNotIn(raw, proxy.stderr(), "a raw value reached the proxy's log")
    files = 0
    for root, _, names in os.walk(proxy.state_dir):
        for n in names:
            with open(os.path.join(root, n), "rb") as f:
                text = f.read().decode("utf-8", "replace")
            for raw in raws:
                tc.assertNotIn(raw, text, "a raw value reached %s" % n)
            files += 1
    tc.assertGreaterEqual(files, 1)  # the sync log at least: the walk saw real files
    for req in fake.requests:
        text = json.dumps(req["body"])
        for raw in list(raws) + list(upstream_too):
            tc.assertNotIn(raw, text, "a raw value reached TikTok")
