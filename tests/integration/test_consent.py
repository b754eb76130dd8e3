"""Every consent signal through the real binary: what leaves, and what the sync log says.

Two sites: "shop" (default denied) and "open" (default granted: the site's legal decision),
so that a signal which cannot decide is seen to deny rather than fall back to a grant.
"""
import json
import unittest

import tcf
from harness import PIXEL, TOKEN, FakeTikTok, Proxy, site_config

VENDOR = 1234
CLICK = "E.C.P.c"
EVENT = {"event": "Purchase", "event_id": "c1", "user": {"ttp": "ttp-v"},
         "page": {"url": "https://shop.example.com/t?ttclid=%s&x=1" % CLICK,
                  "referrer": "https://ads.example/?ttclid=%s" % CLICK}}
# Issue 9's reject-all: 45 characters, its last field ends 6 bits into a byte.
REJECT_ALL = "CQlH_MAQlH_MAAKABAENCbFgAAAAAAAAAAYgAAAAIAAAA"
ADS = ("ad_storage", "ad_user_data", "ad_personalization")
ALL = ADS + ("analytics_storage",)


class ConsentSignalsTest(unittest.TestCase):
    def setUp(self):
        self.fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        tcf_conf = {"vendor_id": VENDOR}
        self.proxy = Proxy([
            site_config(self.fake.url, consent={
                "default": "denied", "honor_gpc": True, "tcf": tcf_conf}),
            site_config(self.fake.url, id="open", hosts=["open.example.com"], consent={
                "default": "granted", "honor_gpc": True, "tcf": tcf_conf}),
        ], limits={"flush_interval_ms": 20}).start()
        self.sent = 0

    def tearDown(self):
        self.assertEqual(self.proxy.stop(), 0, self.proxy.stderr())
        self.fake.stop()

    def send(self, consent=None, headers=None, site="shop", extra=None):
        ev = json.loads(json.dumps(EVENT))
        if consent is not None:
            ev["consent"] = consent
        ev.update(extra or {})
        self.fake.events.clear()
        status, _, body = self.proxy.post(ev, site=site, headers=headers)
        self.assertEqual(status, 202, body)
        self.sent += 1
        out = self.fake.wait_events(1)[0]
        line = self.proxy.wait_sync(self.sent)[self.sent - 1]
        return out, line

    def assert_click_ids(self, out, leave):
        """user.ttclid, user.ttp and a ttclid inside the page URLs: all leave, or none."""
        found = {"ttclid": out["user"].get("ttclid") == CLICK,
                 "ttp": "ttp" in out["user"],
                 "url": "ttclid" in out["page"]["url"],
                 "referrer": "ttclid" in out["page"].get("referrer", "")}
        self.assertEqual(found, dict.fromkeys(found, leave), out)

    def test_tcf_cookie_with_vendor_consent(self):
        s = tcf.encode(vendor_consents={VENDOR}, purposes={1, 7})
        out, line = self.send(headers={"Cookie": "euconsent-v2=" + s})
        self.assert_click_ids(out, True)                         # purposes 1 and 7
        self.assertIn("external_id", out["user"])                # ad_user_data: 1 and 7
        self.assertEqual(line["consent"]["ad_storage"], "tcf:granted")
        self.assertEqual(line["consent"]["ad_personalization"], "tcf:purpose_consent=no")
        self.assertEqual(line["consent"]["tcf"], "applied")

    def test_storage_consent_alone_sends_no_click_id(self):
        # TCF purpose 1 alone: storage, but no consent to measure ads (purpose 7).
        s = tcf.encode(vendor_consents={VENDOR}, purposes={1})
        out, line = self.send(headers={"Cookie": "euconsent-v2=" + s})
        self.assert_click_ids(out, False)
        self.assertEqual(line["consent"]["ad_storage"], "tcf:granted")
        self.assertEqual(line["consent"]["ad_user_data"], "tcf:purpose_consent=no")
        # The same through a Consent Mode object: ad_storage without ad_user_data.
        out, _ = self.send(consent={"ad_storage": "granted", "ad_user_data": "denied"})
        self.assert_click_ids(out, False)
        out, _ = self.send(consent={"ad_storage": "denied", "ad_user_data": "granted"})
        self.assert_click_ids(out, False)
        self.assertIn("external_id", out["user"])
        out, _ = self.send(consent={"ad_storage": "granted", "ad_user_data": "granted"})
        self.assert_click_ids(out, True)

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
        self.assert_click_ids(out, False)                        # ad_user_data is restricted
        self.assertNotIn("external_id", out["user"])
        self.assertEqual(line["consent"]["ad_storage"], "tcf:granted")
        self.assertEqual(line["consent"]["ad_user_data"], "tcf:publisher_restriction")

    def test_unusable_or_malformed_tcf_denies_even_on_a_granting_site(self):
        old = tcf.encode(vendor_consents={VENDOR}, purposes={1, 3, 4, 7, 8}, policy=2)
        glob = tcf.encode(vendor_consents={VENDOR}, purposes={1, 3, 4, 7, 8},
                          service_specific=False)
        for site in ("shop", "open"):
            for cookie, outcome, evidence in ((old, "unusable", "tcf:unusable"),
                                              (glob, "unusable", "tcf:unusable"),
                                              ("%%%not-base64", "malformed", "tcf:invalid"),
                                              (REJECT_ALL[:-1], "malformed", "tcf:invalid")):
                out, line = self.send(consent="granted", site=site,
                                      headers={"Cookie": "euconsent-v2=" + cookie})
                self.assertEqual(set(out["user"]), {"ip"}, (site, cookie))
                self.assert_click_ids(out, False)
                self.assertEqual(line["consent"]["tcf"], outcome)
                for p in ALL:
                    self.assertEqual(line["consent"][p], evidence, (site, cookie, p))
        # Without any TC string, the granting site's default stands.
        out, line = self.send(site="open")
        self.assert_click_ids(out, True)
        self.assertEqual(line["consent"]["ad_storage"], "default:granted")

    def test_bad_bytes_and_enormous_strings_deny(self):
        # Invalid UTF-8 in the cookie, and strings near and over the decoder's 8,192 cap (the
        # event one far over it): each is malformed, decided at once, and denies.
        for headers, consent in ((
                {"Cookie": "euconsent-v2=\xff\xfe" + REJECT_ALL}, "granted"),
                ({"Cookie": "euconsent-v2=C" + "_" * 7000}, "granted"),
                (None, {"tcf": "C" + "_" * 60000})):
            out, line = self.send(consent=consent, site="open", headers=headers)
            self.assertEqual(set(out["user"]), {"ip"})
            self.assertEqual(line["consent"]["tcf"], "malformed")
            self.assertEqual(line["consent"]["ad_user_data"], "tcf:invalid")

    def test_a_malformed_event_string_does_not_hide_the_cookie(self):
        grant = tcf.encode(vendor_consents={VENDOR}, purposes={1, 3, 4, 7, 8})
        # Malformed in the event, a refusal in the cookie: denied, by both.
        out, line = self.send(consent={"tcf": "garbage!"}, site="open",
                              headers={"Cookie": "euconsent-v2=" + REJECT_ALL})
        self.assertEqual(set(out["user"]), {"ip"})
        self.assertEqual(line["consent"]["tcf"], "malformed")
        # A grant in the event does not undo the cookie's reject-all, nor "granted".
        out, line = self.send(consent={"tcf": grant}, site="open",
                              headers={"Cookie": "euconsent-v2=" + REJECT_ALL})
        self.assertEqual(set(out["user"]), {"ip"})
        self.assertEqual(line["consent"]["ad_storage"], "tcf:vendor_consent=no")
        self.assertEqual(line["consent"]["tcf"], "applied")
        out, line = self.send(consent="granted", headers={"Cookie": "euconsent-v2=" + REJECT_ALL})
        self.assertEqual(set(out["user"]), {"ip"})
        self.assertEqual(line["consent"]["ad_user_data"], "tcf:vendor_consent=no")
        # Both grant: granted.
        out, line = self.send(consent={"tcf": grant}, headers={"Cookie": "euconsent-v2=" + grant})
        self.assert_click_ids(out, True)
        self.assertEqual(line["consent"]["ad_user_data"], "tcf:granted")

    def test_repeated_cookies_and_headers_cannot_hide_a_refusal(self):
        # A CMP that writes one cookie for the domain and one for a subdomain, two Cookie
        # headers, Sec-GPC twice or as a list: every copy counts, and copies that differ deny.
        grant = tcf.encode(vendor_consents={VENDOR}, purposes=set(range(1, 11)))
        for headers in ([("Cookie", "euconsent-v2=%s; euconsent-v2=%s" % (grant, REJECT_ALL))],
                        [("Cookie", "euconsent-v2=; euconsent-v2=" + REJECT_ALL)],
                        [("Cookie", "a=b"), ("Cookie", "euconsent-v2=" + REJECT_ALL)],
                        [("Cookie", "euconsent-v2 = " + REJECT_ALL)],
                        [("Cookie", "usprivacy=1YNN; usprivacy=1YYN")],
                        [("Cookie", "a=b"), ("Cookie", "usprivacy=1YYN")],
                        [("Sec-GPC", "0"), ("Sec-GPC", "1")],
                        [("Sec-GPC", "1, 1")]):
            with self.subTest(headers=headers):
                out, _ = self.send(headers=headers, site="open")
                self.assert_click_ids(out, False)
                self.assertNotIn("external_id", out["user"])
        out, line = self.send(headers=[("Cookie", "euconsent-v2=%s; euconsent-v2=%s" % (grant, grant))],
                              site="shop")
        self.assert_click_ids(out, True)  # the same value twice is one signal
        self.assertEqual(line["consent"]["tcf"], "applied")

    def test_later_segments_that_iab_refuses_deny(self):
        # A second core segment (IAB reads the refusal after the grant), an unknown segment
        # type, a cut-short vendors segment, '=' inside a segment: malformed, so denied.
        grant = tcf.encode(vendor_consents={VENDOR}, purposes=set(range(1, 11)))
        for s in (grant + "." + REJECT_ALL, grant + ".oAAA", grant + ".IPoP_", grant + ".A=B"):
            with self.subTest(tc=s[-12:]):
                out, line = self.send(headers={"Cookie": "euconsent-v2=" + s}, site="open")
                self.assert_click_ids(out, False)
                self.assertEqual(line["consent"]["tcf"], "malformed")
                self.assertEqual(line["consent"]["ad_storage"], "tcf:invalid")

    def test_gcs(self):
        out, line = self.send(consent={"gcs": "G110"})
        self.assert_click_ids(out, False)                        # ad_user_data: default denied
        self.assertNotIn("external_id", out["user"])
        self.assertEqual(line["consent"]["ad_storage"], "gcs:granted")
        out, line = self.send(consent={"gcs": "G1x0"}, site="open")
        self.assert_click_ids(out, False)
        self.assertIn("external_id", out["user"])                # gcs does not cover it
        self.assertEqual(line["consent"]["ad_storage"], "gcs:invalid")

    def test_us_privacy_cookie_opt_out(self):
        out, line = self.send(consent="granted", headers={"Cookie": "usprivacy=1YYN"})
        self.assertEqual(set(out["user"]), {"ip"})
        self.assertIs(out["limited_data_use"], True)
        self.assertEqual(line["consent"]["ad_user_data"], "usp:opt_out")
        out, line = self.send(consent="granted", headers={"Cookie": "usprivacy=garbled"})
        self.assertEqual(set(out["user"]), {"ip"})
        self.assertIs(out["limited_data_use"], True)
        self.assertEqual(line["consent"]["ad_user_data"], "usp:invalid")

    def test_gpc_beats_tcf(self):
        s = tcf.encode(vendor_consents={VENDOR}, purposes={1, 3, 4, 7})
        out, line = self.send(headers={"Cookie": "euconsent-v2=" + s, "Sec-GPC": "1"})
        self.assertEqual(set(out["user"]), {"ip"})
        self.assertEqual(line["consent"]["ad_storage"], "gpc")

    def test_event_gpc_field(self):
        out, line = self.send(consent="granted", extra={"gpc": True})
        self.assertEqual(set(out["user"]), {"ip"})
        self.assertIs(out["limited_data_use"], True)
        for p in ADS:
            self.assertEqual(line["consent"][p], "gpc")
        out, _ = self.send(consent="granted", extra={"gpc": False})
        self.assert_click_ids(out, True)
        ev = dict(EVENT, consent="granted", gpc="yes")
        status, _, body = self.proxy.post(ev)
        self.assertEqual(status, 400, body)
        self.assertIn(b"gpc", body)


if __name__ == "__main__":
    unittest.main()
