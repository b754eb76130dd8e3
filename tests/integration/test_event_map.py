"""Event-name mapping through the real binary and the strict fake TikTok: the built-in map,
one-to-many maps with derived ids, names only a map makes valid, per-event refusals, and
check/explain showing the map."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import BIN, PIXEL, ROOT, TOKEN, FakeTikTok, Proxy, shipped_config, site_config

EVENT_MAP = {"won": "Purchase", "Deal Won": ["Purchase", "Won Deal"],
             "Sign Up / Register": "CompleteRegistration"}


def event(name, eid):
    return {"event": name, "event_id": eid, "consent": "granted",
            "user": {"external_id": "crm-7"}}


class EventMapTest(unittest.TestCase):
    def setUp(self):
        self.fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        self.proxy = None
        self.tmp = tempfile.mkdtemp(prefix="sg-map-")

    def tearDown(self):
        if self.proxy:
            self.proxy.stop()
        self.fake.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, **over):
        over.setdefault("event_map", EVENT_MAP)
        over.setdefault("dest", {"events": ["Purchase", "AddToCart", "InitiateCheckout", "Lead",
                                            "CompleteRegistration", "Pageview", "Won Deal",
                                            "Order Done", "Order Completed"]})
        self.proxy = Proxy([site_config(self.fake.url, **over)],
                           limits={"flush_interval_ms": 20}).start()

    def test_builtin_map_and_case(self):
        self.start()
        status, _, body = self.proxy.post([event("Order Completed", "o1"),
                                           event("add_to_cart", "g1"),
                                           event("CHECKOUT STARTED", "c1"),
                                           event("SubmitForm", "t1"),
                                           event("Pageview", "p1")])
        self.assertEqual(status, 202, body)
        got = {e["event_id"]: e["event"] for e in self.fake.wait_events(5)}
        self.assertEqual(got, {"o1": "Purchase", "g1": "AddToCart", "c1": "InitiateCheckout",
                               "t1": "Lead", "p1": "Pageview"})

    def test_site_map_wins_and_one_to_many(self):
        self.start(event_map=dict(EVENT_MAP, **{"order completed": "Order Done"}))
        status, _, body = self.proxy.post([event("DEAL WON", "X"),
                                           event("Order Completed", "o2")])
        self.assertEqual(status, 202, body)
        doc = json.loads(body)
        self.assertEqual(doc["accepted"], 2)
        self.assertEqual(doc["event_ids"], ["X", "o2"])
        got = {e["event_id"]: e["event"] for e in self.fake.wait_events(3)}
        self.assertEqual(got, {"X": "Purchase", "X:Won Deal": "Won Deal", "o2": "Order Done"})
        lines = {l["event_id"]: l for l in self.proxy.wait_sync(3)}
        self.assertEqual(lines["X"]["status"], "accepted")
        self.assertEqual(lines["X:Won Deal"]["status"], "accepted")
        self.assertEqual(lines["X:Won Deal"]["event"], "Won Deal")

    def test_free_text_names_need_a_map(self):
        self.start()
        status, _, body = self.proxy.post([event("Sign Up / Register", "s1"),
                                           event("Add to Cart (v2)", "a1"),
                                           event("Lead", "l1")])
        self.assertEqual(status, 202, body)
        doc = json.loads(body)
        self.assertEqual(doc["accepted"], 2)
        self.assertEqual(doc["errors"][0]["index"], 1)
        self.assertIn("event: not mapped", doc["errors"][0]["reason"])
        self.assertNotIn("Cart", body.decode() if isinstance(body, bytes) else body)
        got = {e["event_id"]: e["event"] for e in self.fake.wait_events(2)}
        self.assertEqual(got, {"s1": "CompleteRegistration", "l1": "Lead"})

    def test_standard_events_off(self):
        self.start(standard_events=False)
        status, _, body = self.proxy.post([event("Order Completed", "o3")])
        self.assertEqual(status, 202, body)
        self.assertEqual(self.fake.wait_events(1)[0]["event"], "Order Completed")

    def config(self, event_map):
        cfg = shipped_config()
        cfg["sites"][0]["event_map"] = event_map
        path = os.path.join(self.tmp, "c.json")
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
        return path

    def run_cli(self, *args, stdin=None):
        env = dict(os.environ, SCRUBGATE_SHOP_SECRET="cli-test-secret-0123456789")
        env.pop("SCRUBGATE_SHOP_INGEST_KEY", None)
        return subprocess.run([BIN] + list(args), cwd=ROOT, env=env, input=stdin,
                              capture_output=True, text=True, timeout=30)

    def test_check_lists_map_and_refuses_bad_entries(self):
        r = self.run_cli("check", "-c", self.config(EVENT_MAP), "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        em = json.loads(r.stdout)["sites"][0]["event_map"]
        self.assertEqual(em["Deal Won"], {"to": ["Purchase", "Won Deal"], "from": "site"})
        self.assertEqual(em["Order Completed"], {"to": ["Purchase"], "from": "builtin"})
        r = self.run_cli("check", "-c", self.config(EVENT_MAP))
        self.assertIn("Order Completed", r.stdout)
        r = self.run_cli("check", "-c", self.config({"Sign Up": "Add to Cart (v2)"}))
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"c\.json:\d+:\d+: sites\[0\]\.event_map\.Sign Up: ")
        r = self.run_cli("check", "-c", self.config({"a": "B", "b": "A"}))
        self.assertEqual(r.returncode, 2)
        self.assertIn("chain or a loop", r.stderr)

    def test_explain_says_which_map(self):
        path = self.config(EVENT_MAP)
        ev = json.dumps({"event": "Deal Won", "event_id": "e1", "consent": "granted"})
        r = self.run_cli("explain", "-c", path, "--site", "shop", "--ip", "192.0.2.5", "-",
                         stdin=ev)
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["event"]["event"], "Purchase")
        self.assertEqual([(e["event"], e["event_id"]) for e in doc["more_events"]],
                         [("Won Deal", "e1:Won Deal")])
        maps = [x for x in doc["receipt"]["rules"] if x["action"] == "map_event"]
        self.assertEqual(maps[0]["map"], "site")
        ev = json.dumps({"event": "begin_checkout", "consent": "granted"})
        r = self.run_cli("explain", "-c", path, "--site", "shop", "--ip", "192.0.2.5", "-",
                         stdin=ev)
        doc = json.loads(r.stdout)
        maps = [x for x in doc["receipt"]["rules"] if x["action"] == "map_event"]
        self.assertEqual((maps[0]["map"], maps[0]["to"]), ("builtin", ["InitiateCheckout"]))


if __name__ == "__main__":
    unittest.main()
