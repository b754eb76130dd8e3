"""NATS servers for the JetStream queue's tests: one node or a 3-node cluster on 127.0.0.1,
each node with its own store directory, started and killed by the test. And a minimal NATS
client (the text protocol over a socket) for JetStream API requests."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

from harness import free_port

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def available():
    return os.path.exists(NATS_SERVER)


class Node:
    def __init__(self, name, base, cluster_routes=None, cluster_port=None, max_payload=None,
                 extra=""):
        self.name = name
        self.port = free_port()
        self.store = os.path.join(base, name)
        os.makedirs(self.store, exist_ok=True)
        self.cluster_port = cluster_port
        self.routes = cluster_routes or []
        self.max_payload = max_payload
        self.proc = None
        self.conf = os.path.join(base, name + ".conf")
        lines = ["server_name: %s" % name, "listen: 127.0.0.1:%d" % self.port,
                 "jetstream { store_dir: %s }" % json.dumps(self.store)]
        if max_payload:
            lines.append("max_payload: %d" % max_payload)
        if extra:
            lines.append(extra)
        if cluster_port:
            lines.append("cluster { name: sg; listen: 127.0.0.1:%d; routes: [%s] }"
                         % (cluster_port, ", ".join("nats-route://127.0.0.1:%d" % p
                                                    for p in self.routes)))
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    @property
    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    def start(self):
        self.log = open(os.path.join(os.path.dirname(self.store), self.name + ".log"), "a")
        self.proc = subprocess.Popen([NATS_SERVER, "-c", self.conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server %s did not start" % self.name)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Cluster:
    """n nodes (1: a single JetStream server, no cluster block)."""

    def __init__(self, n=1, max_payload=None, extra=""):
        self.user = None
        self.base = tempfile.mkdtemp(prefix="sg-nats-")
        cports = [free_port() for _ in range(n)] if n > 1 else [None]
        self.nodes = []
        for i in range(n):
            routes = [p for j, p in enumerate(cports) if j != i] if n > 1 else None
            self.nodes.append(Node("n%d" % i, self.base, routes, cports[i], max_payload, extra))

    def start(self):
        for n in self.nodes:
            n.start()
        self.wait_jetstream()
        return self

    def urls(self):
        if self.user:
            return [n.url.replace("nats://", "nats://%s@" % self.user) for n in self.nodes]
        return [n.url for n in self.nodes]

    def wait_jetstream(self, timeout=30):
        """Until the JetStream API answers (a cluster elects its meta leader first)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for n in self.nodes:
                if n.proc and n.proc.poll() is None:
                    try:
                        r = request(self.urls()[self.nodes.index(n)], "$JS.API.INFO", b"",
                                    timeout=1)
                        if "error" not in r:
                            return
                    except (OSError, ValueError):
                        pass
            time.sleep(0.2)
        raise RuntimeError("JetStream did not become ready")

    def stop(self):
        for n in self.nodes:
            if n.proc:
                n.kill()
        shutil.rmtree(self.base, ignore_errors=True)


def request(url, subject, payload, timeout=5):
    """One request over the NATS text protocol; the reply's JSON."""
    rest = url[len("nats://"):]
    auth = {}
    if "@" in rest:
        userinfo, rest = rest.split("@", 1)
        auth = dict(zip(("user", "pass"), userinfo.split(":", 1)))
    host, port = rest.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout)
    f = s.makefile("rb")
    f.readline()  # INFO
    inbox = "_INBOX.sgtest%d" % os.getpid()
    s.sendall(b"CONNECT " + json.dumps(dict({"verbose": False, "pedantic": False,
                                              "headers": True}, **auth)).encode() + b"\r\n")
    s.sendall(("SUB %s 1\r\nPUB %s %s %d\r\n" % (inbox, subject, inbox, len(payload))).encode()
              + payload + b"\r\nPING\r\n")
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            line = f.readline()
            if not line:
                raise OSError("connection closed")
            if line.startswith(b"MSG"):
                n = int(line.split()[-1])
                data = f.read(n + 2)[:n]
                return json.loads(data)
            if line.startswith(b"PING"):
                s.sendall(b"PONG\r\n")
        raise OSError("no reply")
    finally:
        s.close()


def stream_info(url, stream):
    return request(url, "$JS.API.STREAM.INFO." + stream, b"")


def create_stream(url, cfg):
    return request(url, "$JS.API.STREAM.CREATE." + cfg["name"], json.dumps(cfg).encode())


def consumer_info(url, stream, durable):
    return request(url, "$JS.API.CONSUMER.INFO.%s.%s" % (stream, durable), b"")
