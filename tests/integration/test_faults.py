"""Faults injected for real: file system calls fail on demand (the LD_PRELOAD shim
tests/faults/faultfs.c), the process is killed with SIGKILL, segments are damaged.

What must hold at every failure point (docs/ARCHITECTURE.md, "Durability"):
- never a 202 unless the events are on disk and fsynced: everything answered 202 is
  delivered after a kill -9 and a restart;
- the requests whose write failed are answered 503 and their events are never sent;
- the proxy heals by itself once the fault clears (no restart);
- recovery never deletes a segment it could not read.
"""
import collections
import glob
import http.client
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import unittest

from harness import BIN, PIXEL, ROOT, TOKEN, FakeTikTok, Proxy, free_port, site_config
from test_replay import dead_line

LIB = os.environ.get("SG_FAULTFS_LIB")


class Faults:
    """The shim's control file: arm() replaces the rules, clear() removes them."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "faults.ctl")
        self.arm()

    def arm(self, *rules):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("".join(r + "\n" for r in rules))
        os.replace(tmp, self.path)  # a new inode: the shim notices at once

    def clear(self):
        self.arm()

    def env(self):
        asan = os.environ.get("ASAN_OPTIONS", "")
        return {"LD_PRELOAD": LIB, "SG_FAULTS": self.path,
                "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}


@unittest.skipUnless(LIB and os.path.exists(LIB), "SG_FAULTFS_LIB not built")
class FaultInjectionTest(unittest.TestCase):
    def setUp(self):
        self.fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        self.proxy = None

    def tearDown(self):
        if self.proxy and self.proxy.proc and self.proxy.proc.poll() is None:
            self.proxy.kill()
        self.fake.stop()

    def delivered(self):
        with self.fake.lock:
            return collections.Counter(e["event_id"] for e in self.fake.events)

    def wait_delivered(self, ids, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline and not ids <= set(self.delivered()):
            time.sleep(0.05)
        return ids - set(self.delivered())

    def start(self, faults=None, limits=None, sites=None, **kw):
        limits = dict({"flush_interval_ms": 20, "spool_segment_bytes": 4096}, **(limits or {}))
        self.admin_port = free_port()
        self.proxy = Proxy(sites or [site_config(self.fake.url)], workers=1, limits=limits,
                           extra={"admin_listen": "127.0.0.1:%d" % self.admin_port,
                                  "admin_token_env": "SG_ADMIN"},
                           env=dict({"SG_ADMIN": "admin-token-123", "SG_BAD_TOKEN": "revoked"},
                                    **(faults.env() if faults else {})), **kw)
        self.faults = faults
        return self.proxy.start()

    def metrics(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        conn.request("GET", "/metrics", headers={"Authorization": "Bearer admin-token-123"})
        r = conn.getresponse()
        text = r.read().decode()
        conn.close()
        self.assertEqual(r.status, 200, text)
        return text

    def healthz(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        body = json.loads(r.read())
        conn.close()
        return r.status, body

    def post_batch(self, tag, n=5):
        ids = ["%s-%d" % (tag, i) for i in range(n)]
        status, _, body = self.proxy.post([{"event": "Lead", "event_id": x} for x in ids])
        return status, ids, body

    def check_point(self, call, err, where="/spool/"):
        """One failure point: 202 before, 503 while it fails, 202 after; kill -9; all 202s
        delivered, no 503 ever sent."""
        self.proxy = None
        faults = Faults(self.fake_dir())
        self.start(faults)
        acked, refused = set(), set()
        status, ids, body = self.post_batch("%s-before" % call, n=20)  # fills a segment
        self.assertEqual(status, 202, body)
        acked.update(ids)
        faults.arm("%s %s %s" % (call, err, where))
        for i in range(3):
            status, ids, body = self.post_batch("%s-during%d" % (call, i))
            self.assertEqual(status, 503, "a %s failure must not be answered %d" % (call, status))
            self.assertIn(b"spool unavailable", body)
            refused.update(ids)
        self.assertEqual(self.healthz(),
                         (503, {"status": "degraded", "reasons": ["spool_broken:worker0"]}))
        faults.clear()
        # Heals by itself: the next request goes to a fresh segment.
        status, ids, body = self.post_batch("%s-after" % call)
        self.assertEqual(status, 202, body)
        acked.update(ids)
        self.assertEqual(self.healthz(), (200, {"status": "ok"}))
        self.proxy.kill()
        self.proxy.env.pop("LD_PRELOAD")
        self.proxy.start()
        self.assertEqual(self.wait_delivered(acked), set())
        got = self.delivered()
        self.assertEqual(refused & set(got), set(), "events answered 503 were sent")
        self.assertIn("answered 503", self.proxy.wait_log("answered 503"))
        # Logged once, not once per refused request (a full disk fails every one of them).
        self.assertEqual(self.proxy.stderr().count("answered 503"), 1, self.proxy.stderr())
        self.assertIn("writes succeed again", self.proxy.stderr())
        self.assertNotIn("@", self.proxy.stderr())
        self.proxy.kill()

    def fake_dir(self):
        return tempfile.mkdtemp(prefix="sg-faults-")

    def test_a_torn_log_line_is_ended_or_the_start_fails_naming_the_file(self):
        # A crash mid-append leaves the sync log or the dead letter without its last newline;
        # the next start ends that line before appending, so the next record is a line of its
        # own. When the file's last byte cannot be read, or the newline cannot be written,
        # the start fails naming the file, and the file is left as it was.
        for call, log in (("pread", "sync-log.jsonl"), ("write", "sync-log.jsonl"),
                          ("pread", "dead-letter.jsonl"), ("write", "dead-letter.jsonl")):
            with self.subTest(call=call, log=log):
                faults = Faults(self.fake_dir())
                self.proxy = Proxy([site_config(self.fake.url)], workers=1,
                                   limits={"flush_interval_ms": 20},
                                   env=faults.env())
                path = os.path.join(self.proxy.state_dir,
                                    log if log.startswith("sync") else "dead-letter/" + log)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                torn = b'{"event_id":"old","status":"accepted"}\n{"event_id":"to'
                with open(path, "wb") as f:
                    f.write(torn)
                faults.arm("%s EIO %s 1" % (call, log))
                with self.assertRaises(RuntimeError) as cm:
                    self.proxy.start()
                self.assertIn("%s: cannot open: Input/output error" % log, str(cm.exception))
                with open(path, "rb") as f:
                    self.assertEqual(f.read(), torn)
                self.proxy.proc.wait(10)
                faults.clear()
                self.proxy.start()
                with open(path, "rb") as f:
                    self.assertEqual(f.read(), torn + b"\n")
                if log.startswith("sync"):
                    self.assertEqual(self.proxy.post([{"event": "Lead", "event_id": "new"}])[0],
                                     202)
                    deadline, lines = time.time() + 10, []
                    while time.time() < deadline and len(lines) < 4:
                        with open(path, "rb") as f:
                            lines = f.read().split(b"\n")
                        time.sleep(0.02)
                    self.assertEqual(lines[:2], torn.split(b"\n"))
                    self.assertEqual(json.loads(lines[2])["event_id"], "new")
                self.proxy.stop()

    def test_segment_create_fails_emfile(self):
        self.check_point("open", "EMFILE")

    def test_write_fails_enospc(self):
        self.check_point("write", "ENOSPC")

    def test_fdatasync_fails_eio(self):
        self.check_point("fdatasync", "EIO")

    def test_a_503_sets_no_cookie(self):
        """Nothing was accepted: no session or click-id cookie either (they are set with the
        202 that answers for the events, after the group commit)."""
        faults = Faults(self.fake_dir())
        self.start(faults)
        ev = {"event": "Lead", "consent": "granted", "ttclid": "E.C.P.fault",
              "page": {"url": "https://shop.example.com/"}}
        status, h, _ = self.proxy.post(ev)
        self.assertEqual(status, 202)
        self.assertEqual(len(h["set-cookie-all"]), 2, h)  # sg_sid and sg_ttclid
        for err in ("fdatasync EIO /spool/", "write ENOSPC /spool/"):
            faults.arm(err)
            status, h, _ = self.proxy.post(ev)
            self.assertEqual(status, 503, err)
            self.assertEqual(h["set-cookie-all"], [], err)
            faults.clear()
        self.proxy.kill()

    def test_directory_fsync_fails_eio(self):
        # The directory is synced only when a segment is created (each one here: 4 KiB).
        self.check_point("fsync", "EIO", "/var/spool")

    def test_write_fails_and_taking_it_back_fails_too(self):
        # A short write whose records cannot be cut back out of the file: the clients got
        # 503 and the log says those records may come back after a restart (a duplicate of
        # what the client retries, never a loss); everything answered 202 is still delivered.
        faults = Faults(self.fake_dir())
        self.start(faults)
        status, before, _ = self.post_batch("tb-before")
        self.assertEqual(status, 202)
        faults.arm("write ENOSPC /spool/", "ftruncate EIO /spool/")
        status, _, _ = self.post_batch("tb-during")
        self.assertEqual(status, 503)
        self.assertIn("cannot take the records of failed requests back",
                      self.proxy.wait_log("cannot take the records"))
        faults.clear()
        status, after, _ = self.post_batch("tb-after")
        self.assertEqual(status, 202)
        self.proxy.kill()
        self.proxy.env.pop("LD_PRELOAD")
        self.proxy.start()
        self.assertEqual(self.wait_delivered(set(before) | set(after)), set())
        self.proxy.kill()

    def test_dead_letter_write_failure_keeps_the_event_in_the_spool(self):
        # TikTok refuses the event (40002): it goes to the dead letter. While that write
        # fails, the event keeps its record in the spool (no outcome yet); after a restart
        # it is dead-lettered for real, with one failed line in the sync log.
        faults = Faults(self.fake_dir())
        self.start(faults)
        faults.arm("write ENOSPC dead-letter")
        self.fake.script([{"code": 40002}])
        status, ids, _ = self.post_batch("dl", n=1)
        self.assertEqual(status, 202)
        self.assertIn("could not be dead-lettered",
                      self.proxy.wait_log("could not be dead-lettered"))
        self.assertEqual(self.proxy.sync_log(), [])
        dead = os.path.join(self.proxy.state_dir, "dead-letter", "dead-letter.jsonl")
        self.assertEqual(os.path.getsize(dead), 0)  # cut back, no fragment
        self.proxy.kill()
        faults.clear()
        self.fake.script([{"code": 40002}])
        self.proxy.start()
        lines = self.proxy.wait_sync(1)
        self.assertEqual([(l["event_id"], l["status"]) for l in lines], [(ids[0], "failed")])
        with open(dead) as f:
            self.assertEqual([json.loads(l)["event_id"] for l in f], ids)
        self.proxy.kill()

    def test_a_failed_sync_log_write_keeps_the_events_in_the_spool(self):
        # A reply's outcomes are one write to the sync log. When it fails (ENOSPC, once),
        # no event of the reply is acked: they stay in the spool, are sent again after a
        # restart (TikTok dedups on event_id) and then each gets its one line.
        faults = Faults(self.fake_dir())
        self.start(faults, limits={"flush_interval_ms": 300})
        faults.arm("write ENOSPC sync-log.jsonl 1")
        status, ids, _ = self.post_batch("sl", n=20)
        self.assertEqual(status, 202)
        self.assertEqual(self.wait_delivered(set(ids)), set())
        self.assertIn("could not be written to the sync log",
                      self.proxy.wait_log("could not be written to the sync log"))
        self.assertEqual(self.proxy.sync_log(), [])
        self.proxy.kill()
        faults.clear()
        self.proxy.start()
        lines = self.proxy.wait_sync(len(ids))
        self.assertEqual(sorted(l["event_id"] for l in lines), sorted(ids))
        self.assertEqual({l["status"] for l in lines}, {"accepted"})
        self.proxy.kill()

    def test_a_skipped_event_whose_line_cannot_be_written_is_not_accepted(self):
        # An event sent nowhere (here: not in the destination's allowlist) has one outcome,
        # its "skipped" line. While the sync log cannot take it, the event is not accepted:
        # a per-event error, and a 503 when nothing else in the request was taken, so the
        # client sends it again. Once the disk heals, the same event gets its one line.
        faults = Faults(self.fake_dir())
        self.start(faults)
        unrecorded = {"index": 0, "reason":
                      "outcome: the sync log cannot be written, send the event again"}
        faults.arm("write ENOSPC sync-log.jsonl")
        status, headers, body = self.proxy.post([{"event": "Contact", "event_id": "sk-0"}])
        self.assertEqual(status, 503, body)
        self.assertEqual(headers.get("retry-after"), "1")
        self.assertEqual(json.loads(body)["errors"], [unrecorded])
        # Beside an event that is spooled, it is the one per-event error of a 202.
        status, _, body = self.proxy.post([{"event": "Contact", "event_id": "sk-1"},
                                           {"event": "Lead", "event_id": "sk-2"}])
        self.assertEqual(status, 202, body)
        reply = json.loads(body)
        self.assertEqual((reply["accepted"], reply["dropped"], reply["event_ids"]),
                         (1, 1, ["sk-2"]))
        self.assertEqual(reply["errors"], [unrecorded])
        self.assertEqual(self.wait_delivered({"sk-2"}), set())
        self.assertEqual(self.proxy.sync_log(), [])
        faults.clear()
        status, _, body = self.proxy.post([{"event": "Contact", "event_id": "sk-0"}])
        self.assertEqual(status, 202, body)
        lines = [l for l in self.proxy.wait_sync(1) if l["status"] == "skipped"]
        self.assertEqual([(l["event_id"], l["reason"]) for l in lines],
                         [("sk-0", "not_in_allowlist")])
        self.assertIn("sync log: write failed", self.proxy.stderr())
        self.proxy.kill()

    def test_an_event_one_destination_skips_waits_for_its_line_before_any_is_sent(self):
        # Two destinations: the first sends Leads, the second (dry run) only Purchases, so a
        # Lead is skipped there. Its "skipped" line is written before the Lead is spooled for
        # the first: while the line cannot be written, the Lead is refused (503) and sent
        # nowhere, so no accepted event ever lacks an outcome. Healed, it goes through.
        faults = Faults(self.fake_dir())
        site = site_config(self.fake.url)
        site["destinations"].append({"type": "tiktok", "pixel_code": "CDRYPURCHASE",
                                     "access_token_env": "SG_TEST_TOKEN", "dry_run": True,
                                     "events": ["Purchase"]})
        self.start(faults, sites=[site])
        faults.arm("write EIO sync-log.jsonl")
        status, _, body = self.proxy.post([{"event": "Lead", "event_id": "two-0"}])
        self.assertEqual(status, 503, body)
        faults.clear()
        status, _, body = self.proxy.post([{"event": "Lead", "event_id": "two-1"}])
        self.assertEqual(status, 202, body)
        self.assertEqual(self.wait_delivered({"two-1"}), set())
        lines = self.proxy.wait_sync(2)
        self.assertEqual(sorted((l["event_id"], l["destination"], l["status"]) for l in lines),
                         [("two-1", "tiktok:CDRYPURCHASE", "skipped"),
                          ("two-1", "tiktok:" + PIXEL, "accepted")])
        self.assertNotIn("two-0", self.delivered())
        self.proxy.kill()

    def test_an_events_skipped_lines_are_written_all_or_none(self):
        # An event_map array makes one event several outbound events, each with its own line.
        # The lines of one event are one write: when it fails (once), the event has none, is
        # not counted and is not spooled, even for a part that would be sent; sent again, each
        # part gets exactly one line.
        faults = Faults(self.fake_dir())
        site = site_config(self.fake.url, event_map={"nowhere": ["Subscribe", "Contact"],
                                                     "half": ["Lead", "Contact"]})
        self.start(faults, sites=[site])
        for name, eid in (("nowhere", "an-0"), ("half", "an-1")):
            faults.arm("write ENOSPC sync-log.jsonl 1")
            status, _, body = self.proxy.post([{"event": name, "event_id": eid}])
            self.assertEqual(status, 503, body)
            self.assertEqual(self.proxy.sync_log(), [])
            self.assertNotIn('status="skipped"', self.metrics())
        faults.clear()
        for name, eid in (("nowhere", "an-0"), ("half", "an-1")):
            self.assertEqual(self.proxy.post([{"event": name, "event_id": eid}])[0], 202)
        self.assertEqual(self.wait_delivered({"an-1"}), set())
        lines = self.proxy.wait_sync(4)
        self.assertEqual(sorted((l["event_id"], l["status"]) for l in lines),
                         [("an-0", "skipped"), ("an-0:Contact", "skipped"),
                          ("an-1", "accepted"), ("an-1:Contact", "skipped")])
        self.assertEqual(set(self.delivered()), {"an-1"})
        self.proxy.kill()

    def test_replays_cut_back_leaves_the_running_proxys_lines(self):
        # `replay` appends to the sync log the running proxy appends to. Its one write fails,
        # and its cut-back (slowed to 2 s by the shim) must remove its own bytes only: the line
        # of an event the proxy skipped and answered 202 meanwhile stays (the append holds
        # the file's lock; before, the cut-back removed it).
        self.proxy = Proxy([site_config(self.fake.url)], workers=1)
        os.makedirs(os.path.join(self.proxy.state_dir, "dead-letter"))
        with open(os.path.join(self.proxy.state_dir, "dead-letter", "dead-letter.jsonl"),
                  "w") as f:
            f.write(dead_line("dl-1") + "\n")
        self.proxy.start()
        faults = Faults(self.fake_dir())  # for the replay only
        faults.arm("write ENOSPC sync-log.jsonl 1", "ftruncate DELAY2000ms sync-log.jsonl 1")
        replay = subprocess.Popen([BIN, "replay", "-c", self.proxy.config], cwd=ROOT,
                                  env=dict(self.proxy.env, **faults.env()),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(self.wait_delivered({"dl-1"}), set())  # its write and cut-back follow
        status, _, body = self.proxy.post([{"event": "Contact", "event_id": "acc-1"}])
        self.assertEqual(status, 202, body)
        _, err = replay.communicate(timeout=30)
        self.assertEqual(replay.returncode, 1, err)  # its outcome could not be written
        self.assertEqual([(l["event_id"], l["status"]) for l in self.proxy.sync_log()],
                         [("acc-1", "skipped")])
        self.proxy.kill()

    def test_health_recovers_without_traffic_after_a_one_shot_fault(self):
        # A load balancer that stops sending requests to an instance whose /healthz says
        # 503 must still see it come back: the disk is probed while no request tries it.
        faults = Faults(self.fake_dir())
        self.start(faults)
        faults.arm("fdatasync EIO /spool/ 1")
        status, _, _ = self.post_batch("oneshot")
        self.assertEqual(status, 503)
        self.assertEqual(self.healthz()[0], 503)
        deadline = time.time() + 10
        while time.time() < deadline and self.healthz()[0] != 200:
            time.sleep(0.1)
        self.assertEqual(self.healthz(), (200, {"status": "ok"}))
        self.proxy.kill()

    def test_sigterm_waits_for_replies_whose_sync_is_running(self):
        # Requests whose events are written but not yet synced get their 202 before the
        # process exits: a reset would make clients retry events that are already durable.
        faults = Faults(self.fake_dir())
        self.start(faults, limits={"shutdown_timeout_ms": 5000})
        conns, results = [], []
        for i in range(5):  # connected and accepted before anything else happens
            conn = http.client.HTTPConnection("127.0.0.1", self.proxy.port, timeout=10)
            conn.request("POST", "/v1/events?site=shop", body=json.dumps(
                {"event": "Lead", "event_id": "warm%d" % i}),
                headers={"Content-Type": "application/json"})
            self.assertEqual(conn.getresponse().read() and 202, 202)
            conns.append(conn)
        faults.arm("fdatasync DELAY800 /spool/")
        size = self.spool_bytes()

        def post(i):
            try:
                conns[i].request("POST", "/v1/events?site=shop", body=json.dumps(
                    {"event": "Lead", "event_id": "term%d" % i}),
                    headers={"Content-Type": "application/json"})
                r = conns[i].getresponse()
                r.read()
                results.append(r.status)
            except OSError as e:
                results.append(repr(e))

        threads = [threading.Thread(target=post, args=(i,)) for i in range(5)]
        for t in threads:
            t.start()
        deadline = time.time() + 5
        while time.time() < deadline and self.spool_bytes() == size:
            time.sleep(0.01)  # written: the first sync (800 ms) is running now
        self.proxy.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(10)
        self.assertEqual(self.proxy.proc.wait(10), 0)
        # Every client has an answer: 202 once durable, or 503 if read after SIGTERM.
        self.assertEqual(len(results), 5)
        self.assertTrue(set(results) <= {202, 503}, results)
        self.assertIn(202, results)

    def test_unreadable_segment_stops_start_and_deletes_nothing(self):
        self.fake.delay = 0
        faults = Faults(self.fake_dir())
        self.start(faults)
        # The upstream is unreachable for now: events stay spooled.
        with open(self.proxy.config) as f:
            cfg = json.load(f)
        self.proxy.kill()
        cfg["sites"][0]["destinations"][0]["api_base"] = "http://127.0.0.1:%d" % free_port()
        with open(self.proxy.config, "w") as f:
            json.dump(cfg, f)
        self.proxy.start()
        status, ids, _ = self.post_batch("unreadable")
        self.assertEqual(status, 202)
        self.proxy.kill()
        segs = sorted(glob.glob(os.path.join(self.proxy.state_dir, "spool", "*.seg")))
        self.assertTrue(segs)
        faults.arm("read EIO /spool/")
        with self.assertRaises(RuntimeError, msg=self.proxy.stderr()) as cm:
            self.proxy.start()
        self.assertIn("cannot read", str(cm.exception))
        self.assertIn(os.path.basename(segs[0]), str(cm.exception))
        self.assertEqual(self.proxy.proc.wait(5), 1)
        self.assertTrue(all(os.path.exists(s) for s in segs), "a segment was deleted")
        faults.clear()
        cfg["sites"][0]["destinations"][0]["api_base"] = self.fake.url
        with open(self.proxy.config, "w") as f:
            json.dump(cfg, f)
        self.proxy.start()
        self.assertEqual(self.wait_delivered(set(ids)), set())
        self.proxy.kill()

    def test_ack_append_failure_is_retried_until_written(self):
        # Acks of sealed segments are appended to their own file. While that fails, they
        # wait (no spinning) and are written once it works again: a kill -9 afterwards
        # re-sends nothing that was delivered. A second destination, paused by a revoked
        # token, keeps its copies of the events pending, so the sealed segments stay.
        site = site_config(self.fake.url)
        paused = dict(site["destinations"][0], pixel_code="CPAUSED99",
                      access_token_env="SG_BAD_TOKEN")
        site["destinations"].append(paused)
        faults = Faults(self.fake_dir())
        self.fake.delay = 0.3  # the replies, hence the acks, come after the fault is armed
        self.start(faults, limits={"batch_max_events": 5}, sites=[site])
        ids = set()
        for i in range(4):  # the 4 KiB segments roll: earlier ones are sealed
            status, batch, _ = self.post_batch("ack%d" % i, n=5)
            self.assertEqual(status, 202)
            ids.update(batch)
        faults.arm("open EMFILE /spool/0")  # segment files only, not the directory
        self.assertEqual(self.wait_delivered(ids), set())
        self.assertEqual(len(self.proxy.wait_sync(len(ids))), len(ids))  # every outcome in
        self.assertIn("cannot append acks", self.proxy.wait_log("cannot append acks"))
        cpu_before = self.cpu_seconds()
        time.sleep(0.5)  # measuring idle CPU while the fault holds: a spinning loop shows
        self.assertLess(self.cpu_seconds() - cpu_before, 0.2)
        size = self.spool_bytes()
        faults.clear()
        deadline = time.time() + 5
        while time.time() < deadline and self.spool_bytes() == size:
            time.sleep(0.05)
        self.assertGreater(self.spool_bytes(), size, "the waiting acks were never written")
        self.proxy.kill()
        self.assertEqual(self.restart_recovered(), len(ids))  # only the paused copies
        self.proxy.kill()

    def test_sealed_segment_deleted_while_running_is_noticed(self):
        # Deleting a sealed segment (e.g. an operator "cleaning up") takes events answered 202
        # off the disk: say so, loudly, the first time an ack cannot be appended to it.
        site = site_config(self.fake.url)
        paused = dict(site["destinations"][0], pixel_code="CPAUSED99",
                      access_token_env="SG_BAD_TOKEN")
        site["destinations"].append(paused)  # pins every segment: its events stay pending
        self.fake.delay = 0.3
        self.start(limits={"batch_max_events": 5}, sites=[site])
        for i in range(4):
            status, _, _ = self.post_batch("sealed%d" % i, n=5)
            self.assertEqual(status, 202)
        segs = sorted(glob.glob(os.path.join(self.proxy.state_dir, "spool", "*.seg")))
        self.assertGreater(len(segs), 1)
        os.unlink(segs[0])  # sealed: the active one is the last
        self.assertIn("was deleted while in use", self.proxy.wait_log("was deleted while in use"))
        self.proxy.kill()

    def spool_bytes(self):
        return sum(os.path.getsize(p)
                   for p in glob.glob(os.path.join(self.proxy.state_dir, "spool", "*.seg")))

    def restart_recovered(self):
        """Start again without faults; how many events recovery queued."""
        self.proxy.env.pop("LD_PRELOAD", None)
        seen = len(self.proxy.stderr_lines)
        self.proxy.start()
        m = re.search(r"(\d+) event\(s\) recovered", "".join(self.proxy.stderr_lines[seen:]))
        return int(m.group(1)) if m else 0

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.proxy.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@unittest.skipUnless(LIB and os.path.exists(LIB), "SG_FAULTFS_LIB not built")
class DeletedSegmentTest(unittest.TestCase):
    def test_segment_deleted_while_running_is_noticed(self):
        fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        proxy = Proxy([site_config("http://127.0.0.1:%d" % free_port())], workers=1,
                      limits={"flush_interval_ms": 20, "retry_base_ms": 60000}).start()
        try:
            status, _, _ = proxy.post({"event": "Lead", "event_id": "d1"})
            self.assertEqual(status, 202)
            for seg in glob.glob(os.path.join(proxy.state_dir, "spool", "*.seg")):
                os.unlink(seg)
            status, _, _ = proxy.post({"event": "Lead", "event_id": "d2"})
            self.assertEqual(status, 503)
            self.assertIn("was deleted while in use", proxy.wait_log("was deleted while in use"))
            status, _, _ = proxy.post({"event": "Lead", "event_id": "d3"})
            self.assertEqual(status, 202)
            self.assertTrue(glob.glob(os.path.join(proxy.state_dir, "spool", "*.seg")))
        finally:
            proxy.kill()
            fake.stop()


if __name__ == "__main__":
    unittest.main()
