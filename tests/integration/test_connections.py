"""Connection limits (docs/OPERATIONS.md "Connections"): total deadlines for headers and body,
idle keep-alive close, max_connections, unambiguous request framing, and the same limits on the
admin listener. Every wait is a poll with a bound."""
import http.client
import json
import os
import re
import resource
import socket
import subprocess
import threading
import time
import unittest

from harness import FakeTikTok, Proxy, TOKEN, PIXEL, site_config, free_port, rss_kb

EVENT = b'{"event":"Lead"}'
ADMIN_TOKEN = "admin-token-for-conn-tests"


def post_head(length=None, extra=b"", path=b"/v1/events?site=shop"):
    head = b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    if length is not None:
        head += b"Content-Length: %d\r\n" % length
    return head + extra + b"\r\n"


def until_closed(sock, timeout):
    """Read until the peer closes or resets: (bytes, closed, seconds waited)."""
    start = time.monotonic()
    data = b""
    sock.settimeout(0.05)
    while time.monotonic() - start < timeout:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return data, True, time.monotonic() - start
        if not chunk:
            return data, True, time.monotonic() - start
        data += chunk
    return data, False, time.monotonic() - start


def is_open(sock):
    """True while the peer has neither closed nor reset the connection (nothing is consumed)."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


_leftover = {}  # bytes read past a response, per socket: the next pipelined response


def read_response(sock, timeout=5):
    """One HTTP/1.1 response with a Content-Length: (status, headers, body)."""
    sock.settimeout(timeout)
    data = _leftover.pop(sock, b"")
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response: %r" % data)
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    if rest[length:]:
        _leftover[sock] = rest[length:]
    return int(lines[0].split()[1]), headers, rest[:length]


def trickle(sock, data, every, stop):
    """Send data one byte at a time, every `every` seconds, until it is sent or refused."""
    for i in range(len(data)):
        if stop.is_set():
            return
        try:
            sock.send(data[i:i + 1])
        except OSError:
            return
        stop.wait(every)


class OneProxyTest(unittest.TestCase):
    """One proxy (with PROXY's keyword arguments) and fake TikTok for the class's tests."""
    PROXY = {}

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        cls.proxy = Proxy([site_config(cls.fake.url)], **cls.PROXY).start()

    @classmethod
    def tearDownClass(cls):
        code = cls.proxy.stop()
        cls.fake.stop()
        assert code == 0, cls.proxy.stderr()

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.proxy.port))
        self.addCleanup(sock.close)
        return sock


class DeadlineAndFramingTest(OneProxyTest):
    HEADER_S, REQUEST_S, IDLE_S = 1.0, 2.0, 1.0
    PROXY = {"limits": {"flush_interval_ms": 20, "header_timeout_ms": 1000,
                        "request_timeout_ms": 2000, "keepalive_timeout_ms": 1000}}

    def assert_cut(self, sock, started, deadline, stop):
        data, closed, _ = until_closed(sock, deadline + 3)
        took = time.monotonic() - started
        stop.set()
        self.assertTrue(closed, "still open after %.1f s" % took)
        self.assertGreater(took, deadline - 0.15)
        self.assertLess(took, deadline + 0.8)
        self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), data)
        return data

    def test_trickled_headers_are_cut_at_the_header_deadline(self):
        # One byte every 100 ms keeps an inactivity timeout happy forever; a total one cuts it.
        sock = self.connect()
        stop = threading.Event()
        started = time.monotonic()
        t = threading.Thread(target=trickle,
                             args=(sock, post_head(16) + EVENT, 0.1, stop), daemon=True)
        t.start()
        data = self.assert_cut(sock, started, self.HEADER_S, stop)
        self.assertIn(b"408", data)
        t.join(2)

    def test_trickled_body_is_cut_at_the_request_deadline(self):
        sock = self.connect()
        stop = threading.Event()
        started = time.monotonic()
        sock.sendall(post_head(200))  # headers at once, then the body byte by byte
        t = threading.Thread(target=trickle, args=(sock, b"x" * 200, 0.1, stop), daemon=True)
        t.start()
        self.assert_cut(sock, started, self.REQUEST_S, stop)
        t.join(2)

    def test_a_silent_connection_is_closed_at_the_header_deadline(self):
        sock = self.connect()
        data, closed, took = until_closed(sock, 4)
        self.assertTrue(closed)
        self.assertEqual(data, b"")
        self.assertGreater(took, self.HEADER_S - 0.15)
        self.assertLess(took, self.HEADER_S + 0.8)

    def test_a_client_within_the_deadlines_is_served(self):
        # Pauses add up to less than the deadlines: nothing is cut.
        sock = self.connect()
        request = post_head(len(EVENT)) + EVENT
        for i in range(0, len(request), len(request) // 3 + 1):
            sock.sendall(request[i:i + len(request) // 3 + 1])
            time.sleep(0.2)
        status, _, body = read_response(sock)
        self.assertEqual(status, 202, body)

    def test_idle_keepalive_connection_is_closed(self):
        sock = self.connect()
        sock.sendall(post_head(len(EVENT)) + EVENT)
        status, _, body = read_response(sock)
        self.assertEqual(status, 202, body)
        answered = time.monotonic()
        # Still usable while idle for less than keepalive_timeout_ms.
        time.sleep(0.5)
        sock.sendall(post_head(len(EVENT)) + EVENT)
        status, _, _ = read_response(sock)
        self.assertEqual(status, 202)
        answered = time.monotonic()
        data, closed, _ = until_closed(sock, 4)
        took = time.monotonic() - answered
        self.assertTrue(closed)
        self.assertEqual(data, b"")  # an idle close says nothing
        self.assertGreater(took, self.IDLE_S - 0.15)
        self.assertLess(took, self.IDLE_S + 0.8)

    def refused_with_400(self, raw, reason):
        sock = self.connect()
        sock.sendall(raw)
        data, closed, _ = until_closed(sock, 5)
        self.assertTrue(closed)
        self.assertTrue(data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data)
        self.assertEqual(data.count(b"HTTP/1.1 "), 1, data)  # nothing smuggled behind it
        body = json.loads(data.split(b"\r\n\r\n", 1)[1])
        self.assertIn(reason, body["error"])
        return data

    def test_conflicting_content_length_is_400(self):
        smuggled = post_head(len(EVENT)) + EVENT
        self.refused_with_400(
            post_head(extra=b"Content-Length: %d\r\nContent-Length: %d\r\n"
                      % (len(EVENT), len(EVENT) + len(smuggled))) + EVENT + smuggled,
            "conflicting Content-Length")
        # Equal values are not ambiguous.
        sock = self.connect()
        sock.sendall(post_head(len(EVENT), extra=b"Content-Length: %d\r\n" % len(EVENT)) + EVENT)
        self.assertEqual(read_response(sock)[0], 202)

    def test_content_length_with_transfer_encoding_is_400(self):
        self.refused_with_400(
            post_head(len(EVENT), extra=b"Transfer-Encoding: chunked\r\n")
            + b"%x\r\n" % len(EVENT) + EVENT + b"\r\n0\r\n\r\n",
            "Content-Length together with Transfer-Encoding")
        self.refused_with_400(post_head(extra=b"Transfer-Encoding: gzip, chunked\r\n"),
                              "Transfer-Encoding other than chunked")

    def test_malformed_chunk_size_is_400(self):
        for size in (b"zz", b"10;ext=1", b"0x10", b" 10"):
            self.refused_with_400(post_head(extra=b"Transfer-Encoding: chunked\r\n")
                                  + size + b"\r\n" + EVENT + b"\r\n0\r\n\r\n", "chunk")

    def test_header_name_with_space_before_colon_is_400(self):
        # libevent would take "Content-Length " for another header; a proxy in front might not.
        self.refused_with_400(post_head(extra=b"Content-Length : %d\r\n" % len(EVENT)) + EVENT,
                              "invalid header name")

    def test_chunked_body_is_accepted_and_trailers_dropped(self):
        sock = self.connect()
        half = len(EVENT) // 2
        sock.sendall(post_head(extra=b"Transfer-Encoding: chunked\r\n")
                     + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n"
                     % (half, EVENT[:half], len(EVENT) - half, EVENT[half:]))
        status, _, body = read_response(sock)
        self.assertEqual(status, 202, body)

    def test_pipelined_requests_are_answered_in_order(self):
        sock = self.connect()
        first = b'{"event":"Lead","event_id":"pipe-1"}'
        second = b'{"event":"Lead","event_id":"pipe-2"}'
        sock.sendall(post_head(len(first)) + first + post_head(len(second)) + second)
        s1, _, b1 = read_response(sock)
        s2, _, b2 = read_response(sock)
        self.assertEqual((s1, s2), (202, 202))
        self.assertEqual(json.loads(b1)["event_ids"], ["pipe-1"])
        self.assertEqual(json.loads(b2)["event_ids"], ["pipe-2"])

    def test_a_client_that_never_reads_cannot_grow_memory(self):
        # Pipelined requests wait in the socket (reading stops) while the reply before
        # them is not out: a client that sends and never reads gets nowhere.
        sock = self.connect()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(0.2)
        burst = b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n" * 2000
        before = rss_kb(self.proxy.proc.pid)
        sent, deadline = 0, time.monotonic() + 3
        while time.monotonic() < deadline:  # bounded: sends block once the buffers are full
            try:
                sent += sock.send(burst)
            except socket.timeout:
                continue
            except OSError:
                break
        grown = rss_kb(self.proxy.proc.pid) - before
        self.assertGreater(sent, len(burst))  # the client did push
        # Back-pressure: the proxy stops reading, so the client cannot push much more than
        # the socket buffers hold (unbounded, it pushed 185 MB in these 3 s).
        self.assertLess(sent, 32 << 20, "the proxy kept reading: %d bytes taken" % sent)
        if os.environ.get("SG_SANITIZED") != "1":  # ASan's quarantine grows RSS by design
            self.assertLess(grown, 16 * 1024, "RSS grew by %d kB for %d bytes" % (grown, sent))

    def test_a_half_closed_client_gets_its_reply(self):
        sock = self.connect()
        body = b'{"event":"Lead","event_id":"half-1"}'
        sock.sendall(post_head(len(body)) + body)
        sock.shutdown(socket.SHUT_WR)  # HTTP allows it: done sending, still reading
        status, _, reply = read_response(sock)
        self.assertEqual(status, 202)
        self.assertEqual(json.loads(reply)["event_ids"], ["half-1"])

    def test_body_over_the_limit_is_413_without_reading_it(self):
        sock = self.connect()
        sock.sendall(post_head(100 * 1024 * 1024))
        data, closed, _ = until_closed(sock, 5)
        self.assertTrue(closed)
        self.assertTrue(data.startswith(b"HTTP/1.1 413 "), data)


class PipelinedPostsTest(OneProxyTest):
    PROXY = {"workers": 1}

    def test_the_listening_socket_keeps_a_backlog_of_1024(self):
        # A burst waits in the kernel's accept queue while accept is paused (a 503 on its way
        # out): 1024 deep, not the 128 libevent would set by listening again. For a listening
        # socket, ss's Send-Q is the backlog.
        out = subprocess.run(["ss", "-Hltn", "sport = :%d" % self.proxy.port], check=True,
                             capture_output=True, text=True).stdout.split()
        self.assertEqual(out[0], "LISTEN", out)
        self.assertEqual(int(out[2]), 1024, out)

    def test_pipelined_posts_on_many_connections_all_get_their_202(self):
        # Each 202 leaves from the group commit's loop over its waiting requests; the next
        # pipelined POST of that connection must not run inside that loop (it once freed the
        # array the loop walked: 64 waiting requests fill its first capacity).
        conns, per = 64, 4
        for rnd in range(3):
            socks = [self.connect() for _ in range(conns)]
            for c, sock in enumerate(socks):
                bodies = [b'{"event":"Lead","event_id":"pl-%d-%d-%d"}' % (rnd, c, k)
                          for k in range(per)]
                sock.sendall(b"".join(post_head(len(b)) + b for b in bodies))
            for c, sock in enumerate(socks):
                for k in range(per):
                    status, _, body = read_response(sock)
                    self.assertEqual(status, 202, body)
                    self.assertEqual(json.loads(body)["event_ids"], ["pl-%d-%d-%d" % (rnd, c, k)])
                sock.close()
        self.assertIsNone(self.proxy.proc.poll(), self.proxy.stderr())


class ConnectionBudgetTest(unittest.TestCase):
    """max_connections 16: past it the oldest idle keep-alive connection goes, or a new client
    is refused with 503 + Retry-After; slots that free up are served again."""

    def start(self, workers):
        self.fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        self.proxy = Proxy([site_config(self.fake.url)], workers=workers,
                           limits={"max_connections": 16, "flush_interval_ms": 20,
                                   "header_timeout_ms": 30000, "keepalive_timeout_ms": 30000,
                                   "request_timeout_ms": 30000}).start()
        self.socks = []

    def tearDown(self):
        for s in self.socks:
            s.close()
        code = self.proxy.stop()
        self.fake.stop()
        self.assertEqual(code, 0, self.proxy.stderr())

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.proxy.port))
        self.socks.append(sock)
        return sock

    def wait_served(self, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                status, _, _ = self.proxy.post({"event": "Lead"})
                if status == 202:
                    return True
            except (ConnectionError, OSError):
                pass
            time.sleep(0.05)
        return False

    def test_refused_past_max_connections_then_served_when_slots_free(self):
        self.start(workers=2)  # one budget for both workers
        busy = []
        for _ in range(16):
            sock = self.connect()
            sock.sendall(b"POST /v1/events?site=shop HTTP/1.1\r\n")  # mid-request: not idle
            busy.append(sock)
        # The 16 are connected, not necessarily accepted yet: probe (each probe closes after
        # its reply, so a served one does not stay as an idle connection) until refused.
        deadline = time.monotonic() + 5
        refused = None
        while time.monotonic() < deadline and refused is None:
            sock = self.connect()
            try:
                sock.sendall(post_head(len(EVENT), extra=b"Connection: close\r\n") + EVENT)
            except OSError:
                pass
            data, closed, _ = until_closed(sock, 3)
            if data.startswith(b"HTTP/1.1 503 "):
                refused = data
        self.assertIsNotNone(refused, "no client was refused")
        self.assertIn(b"Retry-After: 1\r\n", refused)
        self.assertIn(b"too many connections", refused)
        deadline = time.monotonic() + 2  # the log line reaches the harness's reader thread
        while "connection limit reached" not in self.proxy.stderr() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertIn("connection limit reached", self.proxy.stderr())
        self.assertTrue(all(is_open(s) for s in busy), "a client mid-request was closed")

        for s in busy[:4]:
            s.close()
        self.assertTrue(self.wait_served(), "not served after slots freed")
        self.assertTrue(all(is_open(s) for s in busy[4:]))

    def test_the_oldest_idle_connection_makes_room(self):
        self.start(workers=1)
        idle = []
        for _ in range(16):
            sock = self.connect()
            sock.sendall(post_head(len(EVENT)) + EVENT)
            self.assertEqual(read_response(sock)[0], 202)
            idle.append(sock)
        status, _, body = self.proxy.post({"event": "Lead"})
        self.assertEqual(status, 202, body)
        data, closed, _ = until_closed(idle[0], 3)
        self.assertTrue(closed, "the oldest idle connection is still open")
        self.assertEqual(data, b"")
        self.assertTrue(all(is_open(s) for s in idle[2:]))


class DescriptorReserveTest(unittest.TestCase):
    """A connection storm never takes the descriptors the spool, the sync log and upstream
    connections need: with a hard limit of 300 descriptors, clients get what the reserve leaves,
    the rest are refused, and events keep being spooled (202) and delivered."""

    def test_a_connection_storm_leaves_the_reserve_alone(self):
        fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        proxy = Proxy([site_config(fake.url)], workers=2,
                      limits={"flush_interval_ms": 20, "header_timeout_ms": 30000})
        proxy.start(preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300)))
        socks = []
        stop = threading.Event()
        try:
            m = re.search(r"serving at most (\d+) clients", proxy.stderr())
            self.assertIsNotNone(m, proxy.stderr())
            clients = int(m.group(1))
            self.assertGreater(clients, 16)
            # One client keeps a slot: it is served first, and always has the start of its next
            # request sent before it reads a reply, so it is never idle (idle ones make room).
            bodies = [b'{"event":"Lead","event_id":"storm-%d"}' % i for i in range(21)]
            requests = [post_head(len(b)) + b for b in bodies]
            keep = socket.create_connection(("127.0.0.1", proxy.port))
            socks.append(keep)
            keep.sendall(requests[0] + requests[1][:1])
            status, _, reply = read_response(keep)
            self.assertEqual(status, 202, reply)
            for _ in range(clients + 50):
                s = socket.create_connection(("127.0.0.1", proxy.port))
                s.sendall(b"POST /v1/events?site=shop HTTP/1.1\r\n")  # mid-request, kept
                socks.append(s)

            def storm():  # more clients arriving all the time, all refused
                while not stop.is_set():
                    try:
                        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
                        until_closed(s, 1)
                        s.close()
                    except OSError:
                        pass

            t = threading.Thread(target=storm, daemon=True)
            t.start()
            for i in range(1, 20):
                keep.sendall(requests[i][1:] + requests[i + 1][:1])
                status, _, reply = read_response(keep)
                self.assertEqual(status, 202, reply)
            ids = ["storm-%d" % i for i in range(20)]
            stop.set()
            t.join(5)
            lines = proxy.wait_sync(len(ids), timeout=15)
            self.assertEqual(sorted(l["event_id"] for l in lines), sorted(ids))
            self.assertTrue(all(l["status"] == "accepted" for l in lines), lines)
            self.assertNotIn("Too many open files", proxy.stderr())
            self.assertIn("connection limit reached", proxy.stderr())
        finally:
            stop.set()
            for s in socks:
                s.close()
            self.assertEqual(proxy.stop(), 0, proxy.stderr())
            fake.stop()


class AdminLimitsTest(unittest.TestCase):
    """The admin listener has the same header, body and time limits as ingest."""

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        cls.admin_port = free_port()
        cls.proxy = Proxy([site_config(cls.fake.url)],
                          limits={"header_timeout_ms": 1000, "request_timeout_ms": 2000},
                          extra={"admin_listen": "127.0.0.1:%d" % cls.admin_port,
                                 "admin_token_env": "SG_ADMIN"},
                          env={"SG_ADMIN": ADMIN_TOKEN}).start()

    @classmethod
    def tearDownClass(cls):
        code = cls.proxy.stop()
        cls.fake.stop()
        assert code == 0, cls.proxy.stderr()

    def admin(self):
        sock = socket.create_connection(("127.0.0.1", self.admin_port))
        self.addCleanup(sock.close)
        return sock

    def healthz(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        r.read()
        conn.close()
        return r.status

    def test_huge_bodies_are_refused_without_memory_growth(self):
        before = rss_kb(self.proxy.proc.pid)
        size = 400 * 1024 * 1024
        results = []

        def send_body(chunked):
            sock = self.admin()
            head = (b"POST /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                    % ADMIN_TOKEN.encode())
            head += (b"Transfer-Encoding: chunked\r\n\r\n" if chunked
                     else b"Content-Length: %d\r\n\r\n" % size)
            block = b"a" * 65536
            if chunked:
                block = b"%x\r\n%s\r\n" % (len(block), block)
            sent = 0
            try:
                sock.sendall(head)
                while sent < size:
                    sock.sendall(block)
                    sent += len(block)
            except OSError:
                pass
            data, _, _ = until_closed(sock, 5)
            results.append((sent, data))

        threads = [threading.Thread(target=send_body, args=(i == 2,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        after = rss_kb(self.proxy.proc.pid)
        self.assertEqual(len(results), 3)
        for sent, data in results:
            self.assertLess(sent, size, "the whole body was taken")
            self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 413 "), data[:80])
        self.assertLess(after - before, 16 * 1024, "VmRSS grew from %d to %d kB" % (before, after))
        self.assertEqual(self.healthz(), 200)

    def test_trickled_headers_are_cut_at_the_header_deadline(self):
        sock = self.admin()
        stop = threading.Event()
        started = time.monotonic()
        t = threading.Thread(target=trickle, args=(
            sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100, 0.1, stop),
            daemon=True)
        t.start()
        data, closed, _ = until_closed(sock, 5)
        took = time.monotonic() - started
        stop.set()
        self.assertTrue(closed)
        self.assertGreater(took, 0.85)
        self.assertLess(took, 1.8)
        self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 408 "), data)
        t.join(2)

    def test_ambiguous_framing_is_400_and_big_headers_refused(self):
        sock = self.admin()
        sock.sendall(b"POST /metrics HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
        data, closed, _ = until_closed(sock, 5)
        self.assertTrue(closed)
        self.assertTrue(data.startswith(b"HTTP/1.1 400 "), data)
        sock = self.admin()
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        except OSError:
            pass
        data, closed, _ = until_closed(sock, 5)
        self.assertTrue(closed)
        self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 431 "), data[:80])
        self.assertEqual(self.healthz(), 200)


if __name__ == "__main__":
    unittest.main()
