"""scrubgate replay on a dead letter it did not write itself.

Lines that are not what the proxy writes (not JSON, event_json not an object,
fields missing or of the wrong type, a line longer than any record, a torn last
line) are skipped, counted and reported by line number, never by value, and
never crash the command; the good lines around them are still replayed. A
destination that is now a dry run is refused: its events are neither sent nor
marked as replayed. A failed write to replayed.jsonl is exit 1 and marks
nothing.
"""
import fcntl
import json
import os
import resource
import shutil
import signal
import subprocess
import time
import unittest

from harness import BIN, PIXEL, ROOT, TOKEN, FakeTikTok, Proxy, site_config

DEST = "tiktok:" + PIXEL
PII = "jane.doe@example.com"


def dead_line(eid, **over):
    """A dead-letter line as the proxy writes it; over replaces (KeyError: removes) keys."""
    now = int(time.time())
    doc = {"ts": now, "site": "shop", "destination": DEST, "event": "Lead",
           "event_id": eid, "reason": "bad_request", "attempts": 1, "first_ts": now - 60,
           "code": 40002, "request_id": None,
           "event_json": {"event": "Lead", "event_time": now - 60, "event_id": eid}}
    for k, v in over.items():
        if v is KeyError:
            doc.pop(k)
        else:
            doc[k] = v
    return json.dumps(doc)


class ReplayInputTest(unittest.TestCase):
    def setUp(self):
        self.fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        self.proxy = None

    def tearDown(self):
        self.fake.stop()
        if self.proxy:
            shutil.rmtree(self.proxy.dir, ignore_errors=True)

    def state(self, lines, tail="\n", **dest):
        """A config pointing at the fake and a dead letter holding lines (never started)."""
        self.proxy = Proxy([site_config(self.fake.url, dest=dest)])
        dl = os.path.join(self.proxy.state_dir, "dead-letter")
        os.makedirs(dl)
        with open(os.path.join(dl, "dead-letter.jsonl"), "wb") as f:
            f.write(b"\n".join(l if isinstance(l, bytes) else l.encode() for l in lines))
            f.write(tail.encode())
        return os.path.join(dl, "replayed.jsonl")

    def replay(self, *extra, preexec_fn=None):
        return subprocess.run([BIN, "replay", "-c", self.proxy.config] + list(extra), cwd=ROOT,
                              env=self.proxy.env, capture_output=True, text=True, timeout=60,
                              preexec_fn=preexec_fn, errors="replace")

    def sent_ids(self):
        return sorted(e["event_id"] for e in self.fake.events)

    def test_malformed_lines_are_counted_skips_never_a_crash(self):
        malformed = [
            "this is not json " + PII,
            '{"site": "shop", "event_json": {',                      # torn JSON
            '["shop", "%s"]' % PII,                                  # not an object
            dead_line("m1", event_json="a string with " + PII),      # the old SIGSEGV
            dead_line("m2", event_json=42),
            dead_line("m3", event_json=[PII]),
            dead_line("m4", event_json=None),
            dead_line("m5", event_json=KeyError),
            dead_line("m6", site=KeyError),
            dead_line("m7", site=7),
            dead_line("m8", destination=KeyError),
            dead_line("m9", destination=[DEST]),
            dead_line("m10", event_id=KeyError),
            dead_line("m11", event_id=12),
            dead_line("m12", event=KeyError),
            dead_line("m13", ts="yesterday"),
            dead_line("m14", attempts=-1),
            dead_line("m15", attempts=1e300),
            dead_line("m16", first_ts=PII),
            b"\x00\xff\xfe{" + PII.encode() + b"\x00}",
            "",                                                      # an empty line
            '{"site": "%s", "event_json": {"pad": "%s"}}' % (PII, "x" * (17 << 20)),  # huge
        ]
        good = [dead_line("ok1"), dead_line("ok2"), dead_line("gone", destination="tiktok:OLD")]
        lines = [good[0]] + malformed + [good[1], good[2]]
        self.state(lines + [dead_line("torn")[:-5]], tail="")  # last line: no newline yet
        r = self.replay()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.sent_ids(), ["ok1", "ok2"])
        self.assertIn("2 delivered, 0 failed, 1 for destinations no longer configured", r.stdout)
        self.assertIn("%d malformed line(s) skipped" % (len(malformed) + 1), r.stdout)
        # One warning per skipped line, by line number and reason.
        skipped = [l for l in r.stderr.splitlines() if "skipped" in l and "dead-letter.jsonl:" in l]
        self.assertEqual(len(skipped), len(malformed) + 1, r.stderr)
        self.assertRegex(r.stderr, r"dead-letter\.jsonl:5: .*event_json")
        self.assertRegex(r.stderr, r"dead-letter\.jsonl:23: .*longer than")
        self.assertRegex(r.stderr, r"dead-letter\.jsonl:26: .*no newline")
        # Values of a malformed line are never echoed.
        self.assertNotIn(PII, r.stdout + r.stderr)
        self.assertNotIn("a string with", r.stdout + r.stderr)
        # Replayed once: a second run sends nothing and still skips the same lines.
        r = self.replay()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("0 delivered", r.stdout)
        self.assertEqual(self.sent_ids(), ["ok1", "ok2"])

    def test_dry_run_destination_is_refused_and_not_marked(self):
        done = self.state([dead_line("d1"), dead_line("d2")], dry_run=True)
        r = self.replay()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stderr, r"%s.*dry.run.*2 event\(s\) not sent" % DEST)
        self.assertIn("0 delivered", r.stdout)
        self.assertEqual(self.fake.requests, [])
        self.assertFalse(os.path.exists(done) and os.path.getsize(done), "marked as replayed")
        self.assertEqual(self.proxy.sync_log(), [])  # nothing happened to them
        # Once the destination sends for real again, the same events go out.
        with open(self.proxy.config) as f:
            cfg = json.load(f)
        cfg["sites"][0]["destinations"][0]["dry_run"] = False
        with open(self.proxy.config, "w") as f:
            json.dump(cfg, f)
        r = self.replay()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("2 delivered", r.stdout)
        self.assertEqual(self.sent_ids(), ["d1", "d2"])

    def test_one_replay_at_a_time(self):
        # Two replays at once would both send what neither has marked yet.
        self.state([dead_line("c1"), dead_line("c2")])
        lock = os.path.join(self.proxy.state_dir, "dead-letter", "replay.lock")
        with open(lock, "w") as held:
            fcntl.flock(held, fcntl.LOCK_EX)  # another replay is running
            held.write("4242\n")
            held.flush()
            r = self.replay()
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("is in use by another scrubgate (pid 4242)", r.stderr)
            self.assertEqual(self.fake.requests, [])
        r = self.replay()  # the other one is done
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.sent_ids(), ["c1", "c2"])

    def test_failed_write_to_replayed_is_exit_1_and_marks_nothing(self):
        done = self.state([dead_line("w1")])
        # replayed.jsonl already holds 8 KiB of earlier replays; with RLIMIT_FSIZE at its
        # size, appending to it fails (EFBIG) while the short sync log can still be written.
        old = "".join(json.dumps({"key": "shop %s old%04d 1" % (DEST, i), "ts": 1}) + "\n"
                      for i in range(200))
        with open(done, "w") as f:
            f.write(old)
        size = os.path.getsize(done)

        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

        r = self.replay(preexec_fn=limit)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stderr, r"replayed\.jsonl: write failed: File too large")
        self.assertIn("1 event(s) were delivered but are not marked replayed", r.stderr)
        with open(done) as f:
            self.assertEqual(f.read(), old)  # nothing marked, no torn line left behind
        # Not marked, so the next replay (with room to write) sends it again and marks it.
        r = self.replay()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1 delivered", r.stdout)
        self.assertEqual(self.sent_ids(), ["w1", "w1"])
        r = self.replay()
        self.assertIn("0 delivered", r.stdout)

    def test_oversized_reply_is_not_taken_for_delivery(self):
        done = self.state([dead_line("big1")])
        self.fake.script([{"endless": True}])
        r = self.replay()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("%s: 1 event(s) not delivered (response_too_large" % DEST, r.stderr)
        first = self.fake.requests[0]
        deadline = time.time() + 10
        while time.time() < deadline and not first.get("done"):
            time.sleep(0.02)
        self.assertTrue(first["hung_up"], first)  # the reply was cut off, not read to its end
        self.assertEqual(self.proxy.sync_log()[0]["reason"], "response_too_large")
        self.assertFalse(os.path.exists(done) and os.path.getsize(done), "marked as replayed")
        # A declared Content-Length over the cap is refused before its body is read.
        self.fake.script([{"huge": 10 << 20}])
        r = self.replay()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("(response_too_large", r.stderr)
        self.assertFalse(os.path.exists(done) and os.path.getsize(done), "marked as replayed")
        r = self.replay()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.sent_ids(), ["big1"])


if __name__ == "__main__":
    unittest.main()
