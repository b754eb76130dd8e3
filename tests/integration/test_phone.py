"""Issue 9 end to end: user.phone reaches TikTok as SHA-256 of its E.164 form.

The real binary with the advanced-matching rule set (email and phone hashed when the visitor
grants ad_user_data) against the strict fake TikTok. With the site's phone_region "US" a
national number is hashed as +1...; without phone_region the same number does not leave at all
(never guessed). Either way the raw number reaches no file under state_dir, no log line and no
request to TikTok. Expected hashes are computed here with hashlib, independently of the C code.
"""
import hashlib
import os
import unittest

from harness import PIXEL, ROOT, TOKEN, FakeTikTok, Proxy, assert_nothing_raw, site_config

NATIONAL = "213-373-4253"
E164 = "+12133734253"
# Every way the raw number could show up in a file or a log line.
RAW = [NATIONAL, "2133734253", "213 373 4253", "373-4253", "3734253"]
EMAIL = "phone.probe@example.com"
UA = "Mozilla/5.0 (X11; Linux x86_64) scrubgate-phone-test"


def event(phone, event_id):
    return {"event": "Lead", "event_id": event_id, "consent": "granted",
            "user": {"email": EMAIL, "phone": phone}}


class PhoneTest(unittest.TestCase):
    def run_proxy(self, events, dry_run=False, **site_over):
        """Send events through a proxy on the advanced-matching rules; (proxy, fake, outbound)."""
        fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        site = site_config(fake.url, rules=os.path.join(ROOT, "rules", "advanced-matching.json"),
                           dest={"dry_run": dry_run}, **site_over)
        proxy = Proxy([site], limits={"flush_interval_ms": 20}).start()
        try:
            for ev in events:
                status, _, body = proxy.post(ev, headers={"User-Agent": UA})
                self.assertEqual(status, 202, body)
            proxy.wait_sync(len(events))
            out = [] if dry_run else fake.wait_events(len(events))
        finally:
            self.assertEqual(proxy.stop(), 0, proxy.stderr())
            fake.stop()
        return proxy, fake, out

    def test_national_number_with_phone_region_is_hashed_as_e164(self):
        proxy, fake, out = self.run_proxy(
            [event(NATIONAL, "p1"), event("+1 (213) 373-4253 ext. 12", "p2"),
             event("020 7946 0958", "p3")],  # a UK number is not a valid US one
            phone_region="US")
        by_id = {e["event_id"]: e for e in out}
        want = hashlib.sha256(E164.encode()).hexdigest()
        self.assertEqual(by_id["p1"]["user"]["phone"], want)
        self.assertEqual(by_id["p2"]["user"]["phone"], want)
        self.assertNotIn("phone", by_id["p3"]["user"])
        # Not the old digits-with-a-plus hash (an Algerian number).
        self.assertNotEqual(want, hashlib.sha256(b"+2133734253").hexdigest())
        for e in out:
            self.assertEqual(e["user"]["email"], hashlib.sha256(EMAIL.encode()).hexdigest())
        assert_nothing_raw(self, proxy, fake, RAW, [E164])

    def test_without_phone_region_a_national_number_never_leaves(self):
        proxy, fake, out = self.run_proxy(
            [event(NATIONAL, "n1"), event("0044 20 7946 0958", "n2")])
        by_id = {e["event_id"]: e for e in out}
        self.assertNotIn("phone", by_id["n1"]["user"])
        # The email still leaves: only the phone is dropped.
        self.assertEqual(by_id["n1"]["user"]["email"], hashlib.sha256(EMAIL.encode()).hexdigest())
        # A number with its own international prefix needs no region.
        self.assertEqual(by_id["n2"]["user"]["phone"],
                         hashlib.sha256(b"+442079460958").hexdigest())
        assert_nothing_raw(self, proxy, fake, RAW, [E164])

    def test_dry_run_log_shows_only_the_hash(self):
        proxy, fake, _ = self.run_proxy([event(NATIONAL, "d1")], dry_run=True, phone_region="US")
        log = proxy.wait_log("would POST")
        self.assertIn(hashlib.sha256(E164.encode()).hexdigest(), log)
        self.assertEqual(fake.requests, [])
        assert_nothing_raw(self, proxy, fake, RAW, [E164])


if __name__ == "__main__":
    unittest.main()
