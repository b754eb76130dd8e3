"""Privacy is the product: prove that raw personal data and secrets reach no
log line, no error reply, no sync log line and no file under state_dir."""
import json
import os
import unittest

from harness import (INGEST_KEY, PIXEL, SECRET, TOKEN, FakeTikTok, Proxy, session_from,
                     site_config)

EMAIL = "privacy.probe.7731@example.org"
PHONE_DIGITS = "4155550199"
PHONE = "+1 (415) 555-0199"
NAME = "Quixotelle"
PEER_IP = "198.51.100.231"
UA = "PrivacyProbeUA/9.9"
TTCLID = "E.C.P.probeclick"
TTP = "probe-ttp-cookie"
SID = "feedfacefeedfacefeedfacefeedface"

RAW = [EMAIL, "privacy.probe.7731", PHONE_DIGITS, "555-0199", NAME, PEER_IP, UA, TTCLID, TTP,
       SID, INGEST_KEY, TOKEN, SECRET]


class PrivacyTest(unittest.TestCase):
    def run_traffic(self, dry_run):
        fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        proxy = Proxy([site_config(fake.url, dest={"dry_run": dry_run})],
                      limits={"flush_interval_ms": 20, "max_field_bytes": 512}).start()
        replies = []
        try:
            headers = {"User-Agent": UA, "X-Forwarded-For": PEER_IP, "Sec-GPC": "0",
                       "Cookie": "sg_sid=%s; _ttp=%s" % (SID, TTP)}
            good = {"event": "Purchase", "consent": "granted",
                    "page": {"url": "https://shop.example.com/t?ttclid=%s&e=%s&phone=%s&name=%s"
                                    % (TTCLID, EMAIL, PHONE_DIGITS, NAME),
                             "referrer": "https://shop.example.com/u/%s" % EMAIL},
                    "user": {"email": EMAIL, "phone": PHONE, "first_name": NAME,
                             "last_name": NAME, "external_id": NAME},
                    "properties": {"description": "ship to %s, call %s" % (EMAIL, PHONE),
                                   "contents": [{"content_name": EMAIL}]}}
            bad = [{"event": EMAIL * 10},                       # too long a name
                   {"event": "Lead", "user": {"email": [EMAIL] * 6}},  # over 5 values
                   {"event": "Lead", "user": {"phone": {"n": PHONE}}},  # wrong type
                   {"event": "Lead", "consent": EMAIL},            # bad consent
                   {"event": "Lead", "timestamp": EMAIL},          # bad time
                   {"event": "Lead", "page": {"url": EMAIL * 40}}]  # over the field limit
            # Malformed JSON whose offending token is personal data: the 400 must not quote it.
            for body in ([good], [good] + bad, bad, '{"event": "%s"' % EMAIL,
                         '{"event": "Lead", "user": {"email" "%s"}}' % EMAIL,
                         '[{"event": "Lead"} %s]' % PHONE_DIGITS):
                replies.append(proxy.post(body, headers=headers))
            replies.append(proxy.post(good, headers=dict(headers, Authorization="Bearer " + EMAIL)))
            replies.append(proxy.post(dict(good, ip=PEER_IP, user_agent=UA),
                                      headers=dict(headers, Authorization="Bearer " + INGEST_KEY)))
            self.assertEqual([r[0] for r in replies], [202, 202, 400, 400, 400, 400, 401, 202])
            proxy.wait_sync(3)
            if not dry_run:
                sent = fake.wait_events(3)
                self.assertEqual(len(sent), 3)
        finally:
            self.assertEqual(proxy.stop(), 0)
            fake.stop()
        return proxy, replies

    def assert_clean(self, where, text):
        for raw in RAW:
            self.assertNotIn(raw, text, "%s leaked into %s" % (raw, where))

    def check(self, dry_run):
        proxy, replies = self.run_traffic(dry_run)
        self.assert_clean("the process log", proxy.stderr())
        for status, headers, body in replies:
            self.assert_clean("a %d reply" % status, body.decode("utf-8", "replace"))
        files = 0
        for root, _, names in os.walk(proxy.state_dir):
            for n in names:
                with open(os.path.join(root, n), "rb") as f:
                    self.assert_clean(n, f.read().decode("utf-8", "replace"))
                files += 1
        self.assertGreaterEqual(files, 1)
        lines = proxy.sync_log()
        self.assertEqual(len(lines), 3)
        for line in lines:
            self.assertEqual(set(line), {"ts", "site", "destination", "event", "event_id",
                                         "status", "reason", "http_status", "code", "request_id",
                                         "attempts", "rules", "rule_set", "consent"})

    def test_nothing_raw_leaves_into_logs_replies_or_files(self):
        self.check(dry_run=False)

    def test_dry_run_log_shows_no_raw_values(self):
        self.check(dry_run=True)


if __name__ == "__main__":
    unittest.main()
