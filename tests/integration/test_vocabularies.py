"""What sites already send, through the real binary to the strict fake TikTok.

tests/data/vocabularies/cases.json holds input events in the shapes real sites send (Segment's
e-commerce spec, GA4's recommended events, the TikTok pixel's ttq.track arguments, a CRM's lead
statuses; build_cases.py writes it and says where each shape comes from). expected.json holds,
for each, the exact outbound TikTok events (or the per-event refusal). Every case is posted on
its own, with consent granted, a fixed session and user agent, under the advanced-matching rule
set with phone_region "US", and the site's own event_map for the CRM statuses.

SG_REGENERATE=1 rewrites expected.json from what the fake received: review its diff by hand.
"""
import json
import os
import unittest

from harness import PIXEL, ROOT, TOKEN, FakeTikTok, Proxy, site_config

DATA = os.path.join(ROOT, "tests", "data", "vocabularies")
SESSION = "0123456789abcdef0123456789abcdef"
UA = "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0"
SITE_MAP = {"qualified": "Lead", "won": ["Purchase", "CompleteRegistration"],
            "Closed Won": "Purchase", "Sign Up / Register": "CompleteRegistration"}


def load(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        return json.load(f)


class VocabulariesTest(unittest.TestCase):
    def test_every_case_leaves_exactly_as_expected(self):
        cases = load("cases.json")
        self.assertGreaterEqual(len(cases), 40)
        fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        site = site_config(fake.url, rules=os.path.join(ROOT, "rules", "advanced-matching.json"),
                           phone_region="US", event_map=SITE_MAP)
        del site["destinations"][0]["events"]  # every name may leave: the table shows which
        proxy = Proxy([site], limits={"flush_interval_ms": 20}).start()
        try:
            got = {}
            for c in cases:
                status, _, body = proxy.post(c["input"], headers={
                    "User-Agent": UA, "Cookie": "sg_sid=" + SESSION})
                reply = json.loads(body)
                got[c["name"]] = {"status": status,
                                  "error": reply.get("error"),
                                  "errors": [e["reason"] for e in reply.get("errors", [])]}
            # Each accepted case leaves as one event, or one per name when the site maps it to
            # several: wait for all of them, not for the first ones.
            fanout = {k.lower(): len(v) if isinstance(v, list) else 1 for k, v in SITE_MAP.items()}
            outbound = sum(fanout.get(c["input"]["event"].lower(), 1) for c in cases
                           if got[c["name"]]["status"] == 202 and not got[c["name"]]["errors"])
            events = fake.wait_events(outbound)
            self.assertEqual(len(events), outbound)
            for c in cases:
                prefix = c["input"]["event_id"]
                out = [e for e in events if e["event_id"].split(":")[0] == prefix]
                for e in out:
                    e["user"].pop("ip", None)  # a keyed hash of 127.0.0.1: the same for all
                got[c["name"]]["events"] = sorted(out, key=lambda e: e["event_id"])
        finally:
            self.assertEqual(proxy.stop(), 0, proxy.stderr())
            fake.stop()
        path = os.path.join(DATA, "expected.json")
        if os.environ.get("SG_REGENERATE"):
            with open(path, "w", encoding="utf-8") as f:
                json.dump(got, f, indent=1, ensure_ascii=False, sort_keys=True)
                f.write("\n")
        expected = load("expected.json")
        for c in cases:
            with self.subTest(case=c["name"]):
                self.assertEqual(got[c["name"]], expected[c["name"]])


if __name__ == "__main__":
    unittest.main()
