"""Issue 10 end to end: identifier arrays, GA4/Segment contents, limited_data_use, locale.

The real binary against the strict fake TikTok. Expected hashes are computed here with hashlib,
independently of the C code. The raw email and phone numbers must reach no file under
state_dir, no log line and no request to TikTok.
"""
import hashlib
import json
import os
import unittest

from harness import PIXEL, ROOT, TOKEN, FakeTikTok, Proxy, assert_nothing_raw, site_config

PHONES = ["(213) 373-4253", "202-555-0100"]
E164 = ["+12133734253", "+12025550100"]
EMAILS = ["Array.Probe@Example.com", "second.probe@example.org"]
RAW = PHONES + E164 + ["2133734253", "2025550100", "373-4253", "555-0100"] + \
    [e.lower() for e in EMAILS] + EMAILS
UA = "Mozilla/5.0 (X11; Linux x86_64) scrubgate-contents-test"


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


class ContentsTest(unittest.TestCase):
    def run_proxy(self, events, rules="default.json", **site_over):
        fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        site = site_config(fake.url, rules=os.path.join(ROOT, "rules", rules), **site_over)
        proxy = Proxy([site], limits={"flush_interval_ms": 20}).start()
        try:
            for ev in events:
                status, _, body = proxy.post(ev, headers={"User-Agent": UA})
                self.assertEqual(status, 202, body)
            proxy.wait_sync(len(events))
            out = fake.wait_events(len(events))
        finally:
            self.assertEqual(proxy.stop(), 0, proxy.stderr())
            fake.stop()
        for req in fake.requests:
            self.assertEqual(req["code"], 0, req)
        return proxy, fake, {e["event_id"]: e for e in out}

    def test_phone_and_email_arrays_arrive_as_arrays_of_hashes(self):
        proxy, fake, out = self.run_proxy(
            [{"event": "Lead", "event_id": "arr1", "consent": "granted",
              "user": {"phone": PHONES, "email": EMAILS}},
             {"event": "Lead", "event_id": "arr2", "consent": "granted",
              "user": {"phone_number": [PHONES[0]],
                       "email": [sha(EMAILS[1].lower()).upper()]}}],
            rules="advanced-matching.json", phone_region="US")
        u = out["arr1"]["user"]
        self.assertEqual(u["phone"], [sha(E164[0]), sha(E164[1])])
        self.assertEqual(u["email"], [sha(EMAILS[0].lower()), sha(EMAILS[1].lower())])
        # One value leaves as a string; an upper-case digest is lower-cased, not re-hashed.
        self.assertEqual(out["arr2"]["user"]["phone"], sha(E164[0]))
        self.assertEqual(out["arr2"]["user"]["email"], sha(EMAILS[1].lower()))
        assert_nothing_raw(self, proxy, fake, RAW)

    def test_six_values_refuse_the_event_not_the_batch(self):
        fake = FakeTikTok(token=TOKEN, pixel=PIXEL).start()
        site = site_config(fake.url, rules=os.path.join(ROOT, "rules", "advanced-matching.json"),
                           phone_region="US")
        proxy = Proxy([site], limits={"flush_interval_ms": 20}).start()
        try:
            six = ["+1202555010%d" % i for i in range(6)]
            status, _, body = proxy.post(
                [{"event": "Lead", "event_id": "six", "user": {"phone": six}},
                 {"event": "Lead", "event_id": "ok", "consent": "granted"}],
                headers={"User-Agent": UA})
            self.assertEqual(status, 202, body)
            reply = json.loads(body)
            self.assertEqual(reply["accepted"], 1)
            self.assertIn("user.phone: more than 5 values", json.dumps(reply))
            for p in six:
                self.assertNotIn(p, body if isinstance(body, str) else body.decode())
        finally:
            self.assertEqual(proxy.stop(), 0, proxy.stderr())
            fake.stop()

    def test_hostile_properties_never_fail_the_batch_nor_leak(self):
        # A card number sent as a JSON number (as a content id, an order id) is scrubbed like
        # the same digits in a string; a negative num_items would make TikTok refuse the whole
        # request, so it is not sent; a name with spaces around it is the name.
        card = 4111111111111111
        proxy, fake, out = self.run_proxy(
            [{"event": "Purchase", "event_id": "h1", "properties": {"num_items": 2}},
             {"event": "Purchase", "event_id": "h2", "properties": {
                 "num_items": -3, "order_id": card,
                 "contents": [{"content_id": card, "price": 1, "quantity": 1}]}},
             {"event": " Purchase ", "event_id": "h3", "properties": {"content_ids": [card, 123]}}])
        self.assertEqual(sorted(out), ["h1", "h2", "h3"])
        self.assertEqual(out["h2"]["properties"]["num_items"], 1)  # derived, not the -3
        self.assertEqual(out["h3"]["event"], "Purchase")
        self.assertEqual(out["h3"]["properties"]["content_ids"], ["[redacted]", "123"])
        for req in fake.requests:
            self.assertNotIn(str(card), json.dumps(req))
        for line in proxy.sync_log():
            self.assertEqual(line["status"], "accepted", line)

    def test_ga4_items_become_contents(self):
        proxy, fake, out = self.run_proxy(
            [{"event": "Purchase", "event_id": "ga4", "consent": "granted", "locale": "en-US",
              "properties": {"value": "30.50", "currency": "usd", "query": "mugs",
                             "items": [{"item_id": "SKU_1", "item_name": "Mug",
                                        "item_category": "Kitchen", "item_brand": "Acme",
                                        "price": "10.25", "quantity": "2", "index": 0},
                                       {"item_id": 42, "price": 10}]}},
             {"event": "AddToCart", "event_id": "seg", "consent": "denied", "locale": "en-US",
              "limited_data_use": True,
              "properties": {"products": {"product_id": "p-9", "name": "Shirt", "quantity": 3}}}])
        p = out["ga4"]["properties"]
        self.assertEqual(p["contents"], [
            {"content_id": "SKU_1", "content_name": "Mug", "content_category": "Kitchen",
             "brand": "Acme", "price": 10.25, "quantity": 2},
            {"content_id": "42", "price": 10}])
        self.assertEqual(p["content_ids"], ["SKU_1", "42"])
        self.assertEqual(p["num_items"], 3)
        self.assertEqual(p["content_type"], "product")
        self.assertEqual(p["search_string"], "mugs")
        self.assertNotIn("query", p)
        self.assertEqual(p["value"], 30.5)
        self.assertEqual(p["currency"], "USD")
        self.assertEqual(out["ga4"]["user"]["locale"], "en-US")  # consent granted
        self.assertFalse(out["ga4"]["limited_data_use"])
        s = out["seg"]
        self.assertEqual(s["properties"]["contents"],
                         [{"content_id": "p-9", "content_name": "Shirt", "quantity": 3}])
        self.assertEqual(s["properties"]["num_items"], 3)
        self.assertNotIn("locale", s.get("user", {}))  # consent denied
        self.assertTrue(s["limited_data_use"])  # the event asked for it


if __name__ == "__main__":
    unittest.main()
