"""A small W3C WebDriver client (urllib only) for driving headless Chromium in tests.

It starts chromedriver on a free port, opens one session with headless Chromium, and offers
what the snippet tests need: navigate, run a script (sync or async), read cookies, quit.
No selenium, nothing from a package registry: Debian's chromium and chromium-driver.
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


def find_browser():
    """(chromium, chromedriver) paths, or None when either is missing."""
    chromium = os.environ.get("SG_CHROMIUM") or shutil.which("chromium")
    driver = os.environ.get("SG_CHROMEDRIVER") or shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    return None


class WebDriverError(Exception):
    pass


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Browser:
    """One chromedriver process and one browser session. Always call quit() (tearDown or
    finally): it ends the session and the driver, even after a failure."""

    def __init__(self, chromium, driver, args=(), timeout=20.0):
        self.port = _free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.session = None
        self.profile = tempfile.mkdtemp(prefix="sg-chromium-")
        self.proc = subprocess.Popen([driver, "--port=%d" % self.port],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self._wait_ready(timeout)
            caps = {"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": CHROMIUM_ARGS + list(args) + ["--user-data-dir=" + self.profile],
                },
            }}}
            value = self._call("POST", "/session", caps, timeout=60)
            self.session = value["sessionId"]
            self._call("POST", self._s("/timeouts"), {"script": 15000, "pageLoad": 15000})
        except BaseException:
            self.quit()
            raise

    def _wait_ready(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise WebDriverError("chromedriver exited with %d" % self.proc.returncode)
            try:
                if self._call("GET", "/status", timeout=2).get("ready"):
                    return
            except (OSError, WebDriverError):
                pass
            time.sleep(0.05)
        raise WebDriverError("chromedriver did not become ready")

    def _s(self, path):
        return "/session/%s%s" % (self.session, path)

    def _call(self, method, path, body=None, timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                reply = json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                value = json.loads(e.read()).get("value", {})
            except ValueError:
                value = {}
            raise WebDriverError("%s %s: %s: %s" % (method, path, value.get("error", e.code),
                                                     value.get("message", "")[:500]))
        return reply.get("value", reply)

    def get(self, url):
        """Navigate and wait for the page's load event."""
        self._call("POST", self._s("/url"), {"url": url})

    def execute(self, script, *args):
        """Run a function body in the page; its return value comes back as JSON."""
        return self._call("POST", self._s("/execute/sync"), {"script": script, "args": list(args)})

    def execute_async(self, script, *args):
        """Run a function body whose last argument is the callback that ends it."""
        return self._call("POST", self._s("/execute/async"),
                          {"script": script, "args": list(args)})

    def cookies(self):
        """The cookies the browser would send to the current page's URL (HttpOnly included)."""
        return self._call("GET", self._s("/cookie"))

    def delete_cookies(self):
        self._call("DELETE", self._s("/cookie"))

    def quit(self):
        try:
            if self.session:
                self._call("DELETE", self._s(""), timeout=10)
        except (OSError, WebDriverError):
            pass
        self.session = None
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
