"""The fake TikTok is only useful if it is as strict as the real API: check it."""
import json
import time
import unittest
import urllib.request

from harness import FakeTikTok

HEX = "848a771458438fc2ec420560d769fb9b9b86851ee338ec56517baabd79d3bb4f"


class FakeTikTokTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = FakeTikTok(token="tok", pixel="PIX").start()

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def send(self, body, token="tok", path="/open_api/v1.3/event/track/"):
        req = urllib.request.Request(self.fake.url + path, data=json.dumps(body).encode(),
                                     headers={"Access-Token": token,
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req) as r:
                return json.loads(r.read())["code"]
        except urllib.error.HTTPError as e:
            return e.code

    def body(self, **ev):
        e = {"event": "Lead", "event_time": int(time.time()), "event_id": "x"}
        e.update(ev)
        return {"event_source": "web", "event_source_id": "PIX", "data": [e]}

    def test_valid_request(self):
        self.assertEqual(self.send(self.body(user={"email": HEX, "ip": "x"})), 0)

    def test_token_rules(self):
        self.assertEqual(self.send(self.body(), token="Bearer tok"), 40105)
        self.assertEqual(self.send(self.body(), token="other"), 40105)
        self.assertEqual(self.send(self.body(), token=""), 40104)

    def test_unhashed_pii(self):
        self.assertEqual(self.send(self.body(user={"email": "a@b.co"})), 40062)
        self.assertEqual(self.send(self.body(user={"phone": "+12133734253"})), 40062)

    def test_identifier_arrays_and_contents(self):
        self.assertEqual(self.send(self.body(user={"email": [HEX, HEX], "phone": [HEX],
                                                   "external_id": [HEX]})), 0)
        self.assertEqual(self.send(self.body(user={"phone": [HEX, "+12133734253"]})), 40062)
        self.assertEqual(self.send(self.body(user={"email": []})), 40002)
        self.assertEqual(self.send(self.body(user={"zip_code": [HEX]})), 40002)
        self.assertEqual(self.send(self.body(properties={"contents": {"content_id": "a"}})), 40002)
        self.assertEqual(self.send(self.body(properties={"contents": [{"quantity": True}]})), 40002)
        self.assertEqual(self.send(self.body(properties={"contents": [{"brand": 1}]})), 40002)
        self.assertEqual(self.send(self.body(properties={"contents": [{"content_id": "a",
                                                                       "price": 1.5, "quantity": 2}],
                                                         "content_ids": ["a"], "num_items": 2,
                                                         "content_type": "product"})), 0)

    def test_too_many_events(self):
        b = self.body()
        b["data"] = b["data"] * 1001
        self.assertEqual(self.send(b), 40061)

    def test_unknown_keys_and_types(self):
        self.assertEqual(self.send(self.body(context={})), 40002)
        self.assertEqual(self.send(self.body(user={"name": "x"})), 40002)
        self.assertEqual(self.send(self.body(properties={"content_id": 1})), 40002)
        self.assertEqual(self.send(self.body(properties={"order_id": 1})), 40002)
        self.assertEqual(self.send(self.body(properties={"contents": [{"content_id": 1}]})), 40002)
        self.assertEqual(self.send(self.body(event_time=int(time.time() * 1000))), 40002)
        self.assertEqual(self.send(self.body(event_time=int(time.time()) + 3600)), 40002)
        b = self.body()
        b["partner_name"] = "x"
        self.assertEqual(self.send(b), 40063)
        b = self.body()
        b["test_event_code"] = "T"
        b["data"] = b["data"] * 2
        self.assertEqual(self.send(b), 40002)

    def test_legacy_paths_are_not_served(self):
        self.assertEqual(self.send(self.body(), path="/open_api/v1.3/pixel/track/"), 404)
        self.assertEqual(self.send(self.body(), path="/open_api/v1.3/event/track"), 404)


if __name__ == "__main__":
    unittest.main()
