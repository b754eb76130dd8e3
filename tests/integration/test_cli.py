"""The command line: check, explain, version, and serve with the shipped config."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import BIN, ROOT, Proxy

ENV = dict(os.environ, SCRUBGATE_SHOP_SECRET="cli-test-secret-0123456789")
ENV.pop("SCRUBGATE_SHOP_INGEST_KEY", None)


def run(*args, stdin=None, env=ENV):
    return subprocess.run([BIN] + list(args), cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=30)


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


class CliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sg-cli-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_version(self):
        r = run("version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^scrubgate \d+\.\d+\.\d+")

    def test_unknown_command_and_missing_config(self):
        self.assertEqual(run("frobnicate").returncode, 2)
        self.assertEqual(run("check").returncode, 2)

    def test_check_shipped_config_prints_the_policy_matrix(self):
        r = run("check", "-c", "conf/scrubgate.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"outbound field +consent granted +consent denied +GPC +"
                                   r"no ad_storage +no ad_user_data +US opt-out\n")
        rows = {l.split()[0]: l.split()[1:] for l in r.stdout.splitlines()
                if l.startswith("  user.") or l.startswith("  page.") or
                l.startswith("  limited_data_use")}
        # Columns: granted, denied, GPC, all but ad_storage, all but ad_user_data, and
        # granted with a US Privacy opt-out (usprivacy=1YYN).
        self.assertEqual(rows["user.email"], ["dropped"] * 6)
        self.assertEqual(rows["user.ip"], ["keyed_hash"] * 6)
        self.assertEqual(rows["user.external_id"], ["keyed_hash(session)", "dropped", "dropped",
                                                    "keyed_hash(session)", "dropped", "dropped"])
        self.assertEqual(rows["user.user_agent"],
                         ["raw", "dropped", "dropped", "raw", "dropped", "dropped"])
        self.assertEqual(rows["user.locale"],
                         ["raw", "dropped", "dropped", "raw", "dropped", "dropped"])
        # A click id needs both ad_storage and ad_user_data, in the URLs too.
        self.assertEqual(rows["user.ttclid"], ["raw"] + ["dropped"] * 5)
        self.assertEqual(rows["user.ttp"], ["raw"] + ["dropped"] * 5)
        self.assertEqual(rows["page.*.ttclid"], ["kept"] + ["removed"] * 5)
        self.assertEqual(rows["page.url"], ["scrubbed"] * 6)
        self.assertEqual(rows["limited_data_use"],
                         ["false", "false", "true", "false", "false", "true"])

    def test_check_json_is_deterministic(self):
        a = run("check", "-c", "conf/scrubgate.json", "--json")
        b = run("check", "-c", "conf/scrubgate.json", "--json")
        self.assertEqual(a.returncode, 0)
        doc, other = json.loads(a.stdout), json.loads(b.stdout)
        # Equal but for the time the report was generated.
        other["generated"] = doc["generated"]
        self.assertEqual(doc, other)
        self.assertEqual(doc["sites"][0]["matrix"]["user.phone"],
                         {"granted": "dropped", "denied": "dropped", "gpc": "dropped",
                          "ad_storage_denied": "dropped", "ad_user_data_denied": "dropped",
                          "usp_opt_out": "dropped"})

    def matrix_for(self, rules):
        with open(os.path.join(ROOT, "conf", "scrubgate.json")) as f:
            cfg = json.load(f)
        cfg["sites"][0]["rules"] = rules
        r = run("check", "-c", write(self.tmp, "c.json", json.dumps(cfg)), "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)["sites"][0]["matrix"]

    def test_matrix_of_each_shipped_rule_set(self):
        states = ("granted", "denied", "gpc", "ad_storage_denied", "ad_user_data_denied",
                  "usp_opt_out")
        m = self.matrix_for("rules/strict.json")
        for state in states:
            self.assertEqual(m["user.external_id"][state], "dropped")
            self.assertEqual(m["user.user_agent"][state], "dropped")
            self.assertEqual(m["user.ip"][state], "truncated+keyed_hash")
            self.assertEqual(m["user.email"][state], "dropped")
        self.assertEqual(m["user.ttclid"]["granted"], "raw")
        m = self.matrix_for("rules/advanced-matching.json")
        self.assertEqual(m["user.email"], {"granted": "sha256", "denied": "dropped", "gpc": "dropped",
                                           "ad_storage_denied": "sha256",
                                           "ad_user_data_denied": "dropped",
                                           "usp_opt_out": "dropped"})
        self.assertEqual(m["user.phone"]["ad_user_data_denied"], "dropped")
        self.assertEqual(m["user.first_name"]["granted"], "dropped")
        m = self.matrix_for("rules/default.json")
        self.assertEqual(m["user.email"]["granted"], "dropped")
        self.assertEqual(m["user.ip"]["denied"], "keyed_hash")
        # Every shipped rule set: click ids only with both purposes granted.
        for rules in ("rules/default.json", "rules/strict.json", "rules/advanced-matching.json"):
            m = self.matrix_for(rules)
            for field, yes, no in (("user.ttclid", "raw", "dropped"), ("user.ttp", "raw", "dropped"),
                                   ("page.*.ttclid", "kept", "removed")):
                self.assertEqual(m[field], dict({s: no for s in states}, granted=yes),
                                 (rules, field))

    def test_check_reports_file_line_column(self):
        cfg = write(self.tmp, "bad.json", '{\n  "sites": [],\n  "lisen": "127.0.0.1:1"\n}\n')
        r = run("check", "-c", cfg)
        self.assertEqual(r.returncode, 2)
        self.assertIn("bad.json:3:3: lisen: unknown key", r.stderr)
        cfg = write(self.tmp, "syntax.json", '{\n  "sites": [\n}\n')
        r = run("check", "-c", cfg)
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"syntax\.json:3:\d+: ")

    def test_check_reports_rule_file_errors(self):
        rules = write(self.tmp, "rules.json",
                      '{"name": "x", "rules": [\n  {"id": "a", "why": "w", "action": "hash",\n'
                      '   "field": "user.ip", "method": "md5"}\n]}\n')
        with open(os.path.join(ROOT, "conf", "scrubgate.json")) as f:
            cfg = json.load(f)
        cfg["sites"][0]["rules"] = rules
        path = write(self.tmp, "c.json", json.dumps(cfg))
        r = run("check", "-c", path)
        self.assertEqual(r.returncode, 2)
        self.assertIn("rules.json:3:34: rules[0].method", r.stderr)

    def test_check_phone_region(self):
        with open(os.path.join(ROOT, "conf", "scrubgate.json")) as f:
            cfg = json.load(f)
        cfg["sites"][0]["phone_region"] = "US"
        r = run("check", "-c", write(self.tmp, "c.json", json.dumps(cfg)), "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["sites"][0]["phone_region"], "US")
        r = run("check", "-c", "conf/scrubgate.json", "--json")
        self.assertIsNone(json.loads(r.stdout)["sites"][0]["phone_region"])
        # An unknown region is a config error with its position, for check and serve alike.
        text = json.dumps(cfg, indent=2).replace('"phone_region": "US"', '"phone_region": "XY"')
        path = write(self.tmp, "bad.json", text)
        line = [i for i, l in enumerate(text.splitlines(), 1) if '"phone_region"' in l][0]
        for cmd in ("check", "serve"):
            r = run(cmd, "-c", path)
            self.assertEqual(r.returncode, 2)
            self.assertIn('bad.json:%d:23: sites[0].phone_region: "XY" is not a region' % line,
                          r.stderr)
        path = write(self.tmp, "lower.json", text.replace('"XY"', '"gb"'))
        r = run("check", "-c", path)
        self.assertEqual(r.returncode, 2)
        self.assertIn('lower.json:%d:23: sites[0].phone_region: a region code is upper case: "GB"'
                      % line, r.stderr)

    def test_explain_hashes_phone_under_phone_region(self):
        with open(os.path.join(ROOT, "conf", "scrubgate.json")) as f:
            cfg = json.load(f)
        cfg["sites"][0]["rules"] = "rules/advanced-matching.json"
        ev = json.dumps({"event": "Lead", "consent": "granted", "user": {"phone": "213-373-4253"}})
        args = ("--site", "shop", "--ip", "192.0.2.5", "--ua", "ExplainUA", "-")
        r = run("explain", "-c", write(self.tmp, "none.json", json.dumps(cfg)), *args, stdin=ev)
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertNotIn("phone", doc["event"]["user"])  # no region: dropped, never guessed
        self.assertIn({"rule": "hash-contact", "field": "user.phone", "action": "drop"},
                      doc["receipt"]["rules"])
        cfg["sites"][0]["phone_region"] = "US"
        r = run("explain", "-c", write(self.tmp, "us.json", json.dumps(cfg)), *args, stdin=ev)
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["event"]["user"]["phone"],
                         hashlib.sha256(b"+12133734253").hexdigest())
        self.assertNotIn("373-4253", r.stdout + r.stderr)

    def test_serve_refuses_invalid_config(self):
        cfg = write(self.tmp, "bad.json", '{"sites": [{"id": 1}]}')
        r = run("serve", "-c", cfg)
        self.assertEqual(r.returncode, 2)
        self.assertIn("bad.json:1:19: sites[0].id", r.stderr)

    def test_explain(self):
        ev = json.dumps({"event": "won", "event_id": "e1", "consent": "granted", "timestamp": 1763600000,
                         "user": {"email": "someone@example.com"},
                         "page": {"url": "https://shop.example.com/?email=someone%40example.com"}})
        r = run("explain", "-c", "conf/scrubgate.json", "--site", "shop", "--ip", "192.0.2.5",
                "--ua", "ExplainUA", "--header", "Cookie: sg_sid=" + "ab" * 16, "-", stdin=ev)
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        out = doc["event"]
        self.assertEqual(out["event"], "Purchase")
        self.assertEqual(out["user"]["user_agent"], "ExplainUA")
        self.assertEqual(out["page"]["url"], "https://shop.example.com/")
        self.assertNotIn("email", out["user"])
        self.assertEqual(doc["session"], "cookie")
        self.assertEqual(doc["destinations"][0]["reason"], "dry_run")
        rules = {(x["rule"], x["field"], x["action"]) for x in doc["receipt"]["rules"]}
        self.assertIn(("drop-raw-pii", "user.email", "drop"), rules)
        self.assertIn(("ip-keyed-hash", "user.ip", "hash:hmac_sha256"), rules)
        self.assertEqual(doc["receipt"]["consent"]["ad_user_data"],
                         {"state": "granted", "source": "event", "evidence": "event:granted"})
        # The receipt names rules and fields, never a value.
        self.assertNotIn("someone", json.dumps(doc["receipt"]))
        # Same input, same cookie: same output (explain is deterministic).
        r2 = run("explain", "-c", "conf/scrubgate.json", "--site", "shop", "--ip", "192.0.2.5",
                 "--ua", "ExplainUA", "--header", "Cookie: sg_sid=" + "ab" * 16, "-", stdin=ev)
        self.assertEqual(r.stdout, r2.stdout)

    def test_explain_gpc_and_invalid_event(self):
        r = run("explain", "-c", "conf/scrubgate.json", "--site", "shop", "--gpc", "--ip",
                "192.0.2.7", "-", stdin='{"event": "Lead", "consent": "granted"}')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIs(json.loads(r.stdout)["event"]["limited_data_use"], True)
        # No IP and no consented identifier: nothing TikTok could attribute, so not sent.
        r = run("explain", "-c", "conf/scrubgate.json", "--site", "shop", "--gpc", "-",
                stdin='{"event": "Lead", "consent": "granted"}')
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertIsNone(doc["event"])
        self.assertEqual(doc["destinations"][0]["reason"], "too_few_identifiers")
        self.assertEqual(doc["receipt"]["skipped"], "too_few_identifiers")
        r = run("explain", "-c", "conf/scrubgate.json", "--site", "shop", "-", stdin='{"x": 1}')
        self.assertEqual(r.returncode, 2)
        self.assertIn("event: required", r.stderr)
        r = run("explain", "-c", "conf/scrubgate.json", "--site", "nope", "-", stdin='{}')
        self.assertEqual(r.returncode, 2)

    def test_shipped_config_serves_without_credentials(self):
        # The shipped config as it is, but on a free port and a private state_dir.
        with open(os.path.join(ROOT, "conf", "scrubgate.json")) as f:
            cfg = json.load(f)
        p = Proxy(cfg["sites"], env={"SG_TEST_SECRET": ""})
        env = dict(p.env)
        env.pop("SCRUBGATE_SHOP_SECRET", None)
        env.pop("TIKTOK_ACCESS_TOKEN", None)
        p.env = env
        p.start()
        try:
            status, _, body = p.post({"event": "ViewContent", "event_id": "v1"})
            self.assertEqual(status, 202, body)
            line = p.wait_sync(1)[0]
            self.assertEqual((line["status"], line["reason"]), ("skipped", "dry_run"))
        finally:
            self.assertEqual(p.stop(), 0)
        self.assertIn("would POST 1 event(s)", p.stderr())
        self.assertRegex(p.stderr(), re.compile("no secret set; using a random per-process key"))


if __name__ == "__main__":
    unittest.main()
