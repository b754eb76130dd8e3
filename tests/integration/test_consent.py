"""Every consent signal through the real binary: what leaves, and what the sync log says."""
import json
import unittest

import tcf
from harness import PIXEL, TOKEN, FakeTikTok, Proxy, site_config

VENDOR = 1234
EVENT = {"event": "Purchase", "event_id": "c1", "user": {"ttp": "ttp-v"},
         "page": {"url": "https://shop.example.com/t?ttclid=E.C.P.c"}}


class ConsentSignalsTest(unittest.TestCase):
    def setUp(self):
        self.fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        self.proxy = Proxy([site_config(self.fake.url, consent={
            "default": "denied", "honor_gpc": True, "tcf": {"vendor_id": VENDOR}})],
            limits={"flush_interval_ms": 20}).start()

    def tearDown(self):
        self.assertEqual(self.proxy.stop(), 0, self.proxy.stderr())
        self.fake.stop()

    def send(self, consent=None, headers=None):
        ev = dict(EVENT)
        if consent is not None:
            ev["consent"] = consent
        status, _, body = self.proxy.post(ev, headers=headers)
        self.assertEqual(status, 202, body)
        out = self.fake.wait_events(1)[0]
        line = self.proxy.wait_sync(1)[0]
        return out, line

    def test_tcf_cookie_with_vendor_consent(self):
        s = tcf.encode(vendor_consents={VENDOR}, purposes={1, 7})
        out, line = self.send(headers={"Cookie": "euconsent-v2=" + s})
        self.assertEqual(out["user"]["ttclid"], "E.C.P.c")       # ad_storage: purpose 1
        self.assertIn("external_id", out["user"])                # ad_user_data: 1 and 7
        self.assertEqual(line["consent"]["ad_storage"], "tcf:granted")
        self.assertEqual(line["consent"]["ad_personalization"], "tcf:purpose_consent=no")
        self.assertEqual(line["consent"]["tcf"], "applied")

    def test_tcf_in_event_without_vendor_consent(self):
        s = tcf.encode(vendor_consents={99}, purposes={1, 3, 4, 7}, max_vendor=VENDOR)
        out, line = self.send(consent={"tcf": s, "ad_storage": "granted"})
        self.assertEqual(set(out["user"]), {"ip"})
        self.assertEqual(line["consent"]["ad_storage"], "tcf:vendor_consent=no")
        self.assertNotIn(s, json.dumps(line))
        self.assertNotIn(s, self.proxy.stderr())

    def test_publisher_restriction(self):
        s = tcf.encode(vendor_consents={VENDOR}, purposes={1, 7}, restrictions=[(7, 0, VENDOR)])
        out, line = self.send(headers={"Cookie": "euconsent-v2=" + s})
        self.assertEqual(out["user"]["ttclid"], "E.C.P.c")
        self.assertNotIn("external_id", out["user"])
        self.assertEqual(line["consent"]["ad_user_data"], "tcf:publisher_restriction")

    def test_malformed_or_old_tcf_decides_nothing(self):
        old = tcf.encode(vendor_consents={VENDOR}, purposes={1, 7}, policy=2)
        out, line = self.send(consent="granted", headers={"Cookie": "euconsent-v2=" + old})
        self.assertIn("external_id", out["user"])                # the event's grant stands
        self.assertEqual(line["consent"]["tcf"], "unusable")
        self.fake.events.clear()
        out, line = self.send_again(headers={"Cookie": "euconsent-v2=%%%not-base64"})
        self.assertEqual(set(out["user"]), {"ip"})               # default: denied
        self.assertEqual(line["consent"]["tcf"], "malformed")

    def send_again(self, headers):
        before = len(self.proxy.sync_log())
        status, _, body = self.proxy.post(EVENT, headers=headers)
        self.assertEqual(status, 202, body)
        out = self.fake.wait_events(1)[0]
        return out, self.proxy.wait_sync(before + 1)[before]

    def test_gcs(self):
        out, line = self.send(consent={"gcs": "G110"})
        self.assertEqual(out["user"]["ttclid"], "E.C.P.c")
        self.assertNotIn("external_id", out["user"])
        self.assertEqual(line["consent"]["ad_storage"], "gcs:granted")

    def test_us_privacy_cookie_opt_out(self):
        out, line = self.send(consent="granted", headers={"Cookie": "usprivacy=1YYN"})
        self.assertEqual(set(out["user"]), {"ip"})
        self.assertIs(out["limited_data_use"], True)
        self.assertEqual(line["consent"]["ad_user_data"], "usp:opt_out")

    def test_gpc_beats_tcf(self):
        s = tcf.encode(vendor_consents={VENDOR}, purposes={1, 3, 4, 7})
        out, line = self.send(headers={"Cookie": "euconsent-v2=" + s, "Sec-GPC": "1"})
        self.assertEqual(set(out["user"]), {"ip"})
        self.assertEqual(line["consent"]["ad_storage"], "gpc")


if __name__ == "__main__":
    unittest.main()
