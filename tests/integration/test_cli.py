"""The command line: usage and help, check, explain, test-connection parsing, version, serve with
the shipped config from any working directory, and the log_format/log_level settings."""
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import BIN, ROOT, Proxy, free_port, shipped_config

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
        cfg = shipped_config()
        cfg["sites"][0]["rules"] = os.path.join(ROOT, rules)
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
        cfg = shipped_config()
        cfg["sites"][0]["rules"] = rules
        path = write(self.tmp, "c.json", json.dumps(cfg))
        r = run("check", "-c", path)
        self.assertEqual(r.returncode, 2)
        self.assertIn("rules.json:3:34: rules[0].method", r.stderr)

    def test_check_phone_region(self):
        cfg = shipped_config()
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
        cfg = shipped_config()
        cfg["sites"][0]["rules"] = os.path.join(ROOT, "rules", "advanced-matching.json")
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

    # ---- usage ----

    def test_version_forms(self):
        for args in (("version",), ("--version",)):
            r = run(*args)
            self.assertEqual((r.returncode, r.stderr), (0, ""), args)
            self.assertRegex(r.stdout, r"^scrubgate \d+\.\d+\.\d+\n$")
        r = run("version", "--json")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--json", r.stderr)

    def test_help_overview_and_per_command(self):
        for args in (("--help",), ("-h",), ("help",)):
            r = run(*args)
            self.assertEqual(r.returncode, 0, args)
            for cmd in ("serve", "check", "explain", "test-connection", "replay", "version"):
                self.assertIn("scrubgate " + cmd, r.stdout)
        usages = {"serve": "-c FILE", "check": "[--format md|html|csv|json] [-o FILE]",
                  "explain": "--site ID [--ip A]", "test-connection": "-c FILE --site ID [--json]",
                  "replay": "[--since TIME]", "version": ""}
        for cmd, part in usages.items():
            for flag in ("-h", "--help"):
                # Help wins wherever it stands, even after other (or missing) options.
                r = run(cmd, "-c", "conf/scrubgate.json", flag) if cmd != "version" else run(cmd, flag)
                self.assertEqual(r.returncode, 0, (cmd, flag, r.stderr))
                self.assertTrue(r.stdout.startswith("usage: scrubgate %s" % cmd), r.stdout)
                self.assertIn(part, r.stdout)
                self.assertEqual(r.stderr, "")
            r = run("help", cmd)
            self.assertEqual(r.returncode, 0)
            self.assertTrue(r.stdout.startswith("usage: scrubgate %s" % cmd))
        r = run("explain", "--help")
        self.assertNotIn("usage: scrubgate check", r.stdout)

    def test_bad_usage_names_the_option_and_prints_the_commands_usage(self):
        cases = [
            (("check", "-c", "conf/scrubgate.json", "--site", "shop"), "--site", "check"),
            (("check", "-c", "conf/scrubgate.json", "--gpc"), "--gpc", "check"),
            (("serve", "-c", "conf/scrubgate.json", "--json"), "--json", "serve"),
            (("replay", "-c", "conf/scrubgate.json", "--ip", "1.2.3.4"), "--ip", "replay"),
            (("explain", "-c", "conf/scrubgate.json", "--site", "shop", "--format", "md"),
             "--format", "explain"),
            (("check", "-c", "conf/scrubgate.json", "--frobnicate"), "--frobnicate", "check"),
            (("check", "-c", "conf/scrubgate.json", "extra.json"), "extra.json", "check"),
            (("test-connection", "-c", "conf/scrubgate.json", "--site", "shop", "--ip", "1.2.3.4"),
             "--ip", "test-connection"),
        ]
        for args, name, cmd in cases:
            r = run(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(name, r.stderr.splitlines()[0], args)
            self.assertIn("usage: scrubgate %s" % cmd, r.stderr, args)
            self.assertEqual(r.stdout, "", args)
        # A missing option argument.
        for args, name in ((("check", "-c"), "-c"), (("explain", "-c", "conf/scrubgate.json",
                                                      "--site"), "--site"),
                           (("check", "-c", "conf/scrubgate.json", "-o"), "-o")):
            r = run(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn("the option %s needs an argument" % name, r.stderr)
        # A missing required option.
        r = run("explain", "-c", "conf/scrubgate.json", "-", stdin="{}")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--site ID is required", r.stderr)
        r = run("check")
        self.assertIn("-c FILE is required", r.stderr)

    def test_check_format_and_output_are_parsed(self):
        r = run("check", "-c", "conf/scrubgate.json", "--format", "pdf")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--format takes md, html, csv or json", r.stderr)
        r = run("check", "-c", "conf/scrubgate.json", "--json", "--format", "csv")
        self.assertEqual(r.returncode, 2)
        # --format json is --json (one fixed time: two runs may straddle a second).
        fixed = dict(ENV, SOURCE_DATE_EPOCH="1764115200")
        a = run("check", "-c", "conf/scrubgate.json", "--format", "json", env=fixed)
        b = run("check", "-c", "conf/scrubgate.json", "--json", env=fixed)
        self.assertEqual((a.returncode, a.stdout), (0, b.stdout))
        for fmt in ("md", "html", "csv"):
            r = run("check", "-c", "conf/scrubgate.json", "--format", fmt, "-o",
                    os.path.join(self.tmp, "report." + fmt))
            self.assertEqual(r.returncode, 0, r.stderr)

    def test_test_connection_parsing(self):
        r = run("test-connection", "-c", "conf/scrubgate.json")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--site ID is required", r.stderr)
        r = run("test-connection", "-c", "conf/scrubgate.json", "--site", "nope")
        self.assertEqual(r.returncode, 2)
        self.assertIn('no site "nope"', r.stderr)
        bad = write(self.tmp, "bad.json", '{"sites": [{"id": 1}]}')
        r = run("test-connection", "-c", bad, "--site", "shop", "--json")
        self.assertEqual(r.returncode, 2)
        self.assertIn("bad.json:1:19: sites[0].id", r.stderr)

    # ---- explain input ----

    def test_explain_unreadable_event_file(self):
        missing = os.path.join(self.tmp, "no-such-event.json")
        r = run("explain", "-c", "conf/scrubgate.json", "--site", "shop", missing)
        self.assertEqual(r.returncode, 2)
        self.assertIn(missing, r.stderr)
        self.assertIn("No such file or directory", r.stderr)
        self.assertNotIn("line -1", r.stderr)
        r = run("explain", "-c", "conf/scrubgate.json", "--site", "shop", self.tmp)
        self.assertEqual(r.returncode, 2)
        self.assertIn("Is a directory", r.stderr)
        self.assertNotIn("line -1", r.stderr)
        bad = write(self.tmp, "ev.json", '{\n  "event": "Lead",\n  "consent": \n}\n')
        r = run("explain", "-c", "conf/scrubgate.json", "--site", "shop", bad)
        self.assertEqual(r.returncode, 2)
        self.assertIn("%s: line 4 column 1: " % bad, r.stderr)

    # ---- configuration ----

    def test_no_secret_warning_only_from_serve(self):
        env = dict(ENV)
        env.pop("SCRUBGATE_SHOP_SECRET")
        for args in (("check", "-c", "conf/scrubgate.json"),
                     ("explain", "-c", "conf/scrubgate.json", "--site", "shop", "-")):
            r = run(*args, env=env, stdin='{"event": "Lead"}')
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotIn("per-process key", r.stderr, args)

    def test_missing_env_var_is_named_never_its_value(self):
        cfg = shipped_config()
        cfg["sites"][0]["destinations"][0]["dry_run"] = False
        path = write(self.tmp, "live.json", json.dumps(cfg))
        env = dict(ENV)
        env.pop("TIKTOK_ACCESS_TOKEN", None)
        r = run("check", "-c", path, env=env)
        self.assertEqual(r.returncode, 2)
        self.assertIn("the access token's environment variable TIKTOK_ACCESS_TOKEN is not set",
                      r.stderr)
        env = dict(env, TIKTOK_ACCESS_TOKEN="tok-value-never-printed")
        env.pop("SCRUBGATE_SHOP_SECRET")
        r = run("check", "-c", path, env=env)
        self.assertEqual(r.returncode, 2)
        self.assertIn("the site secret's environment variable SCRUBGATE_SHOP_SECRET is not set",
                      r.stderr)
        self.assertNotIn("tok-value-never-printed", r.stderr + r.stdout)

    def test_identifiers_are_restricted(self):
        cfg = shipped_config()
        cfg["sites"][0]["id"] = 'sh"op x'
        text = json.dumps(cfg, indent=2)
        line = [i for i, l in enumerate(text.splitlines(), 1) if '"id": "sh' in l][0]
        r = run("check", "-c", write(self.tmp, "ids.json", text))
        self.assertEqual(r.returncode, 2)
        self.assertIn("ids.json:%d:13: sites[0].id: must be 1 to 64 characters" % line, r.stderr)
        cfg = shipped_config()
        dests = cfg["sites"][0]["destinations"]
        dests.append(dict(dests[0]))
        r = run("check", "-c", write(self.tmp, "dup.json", json.dumps(cfg)))
        self.assertEqual(r.returncode, 2)
        self.assertIn('duplicate destination id "tiktok:CABCDEFGH1234567890"', r.stderr)
        dests[1]["id"] = "tiktok-eu"
        r = run("check", "-c", write(self.tmp, "two.json", json.dumps(cfg)), "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        ids = [d["id"] for d in json.loads(r.stdout)["sites"][0]["destinations"]]
        self.assertEqual(ids, ["tiktok:CABCDEFGH1234567890", "tiktok-eu"])

    def test_paths_resolve_against_the_config_directory(self):
        # check from another working directory, with the shipped config as it is.
        r = subprocess.run([BIN, "check", "-c", os.path.join(ROOT, "conf", "scrubgate.json")],
                           cwd="/", env=ENV, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        # serve from / with a copy of the shipped layout (conf/ beside rules/): the state_dir
        # "../var" lands beside conf/, not in the working directory.
        os.mkdir(os.path.join(self.tmp, "conf"))
        os.symlink(os.path.join(ROOT, "rules"), os.path.join(self.tmp, "rules"))
        with open(os.path.join(ROOT, "conf", "scrubgate.json")) as f:
            cfg = json.load(f)
        cfg["listen"] = "127.0.0.1:0"
        path = write(os.path.join(self.tmp, "conf"), "scrubgate.json", json.dumps(cfg))
        p = Proxy(cfg["sites"])
        p.config, p.state_dir, p.cwd = path, os.path.join(self.tmp, "var"), "/"
        p.start()
        try:
            status, _, body = p.post({"event": "ViewContent", "event_id": "v1"})
            self.assertEqual(status, 202, body)
            self.assertEqual(p.wait_sync(1)[0]["status"], "skipped")
        finally:
            self.assertEqual(p.stop(), 0)
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "var", "sync-log.jsonl")))

    # ---- logging ----

    def serve_with(self, extra, name="log.json"):
        cfg = shipped_config()
        port = free_port()
        cfg.update(extra, listen="127.0.0.1:%d" % port, state_dir=os.path.join(self.tmp, "var"))
        path = write(self.tmp, name, json.dumps(cfg))
        env = dict(ENV)
        env.pop("SCRUBGATE_SHOP_SECRET")  # the dry-run site runs on a per-process key: a warning
        proc = subprocess.Popen([BIN, "serve", "-c", path], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        return proc, path, cfg

    def test_json_log_lines_and_level(self):
        # A file name that needs escaping: the reload line names it.
        proc, path, cfg = self.serve_with({"log_format": "json", "log_level": "debug"},
                                          name='log "q"\\\t.json')
        try:
            port = int(cfg["listen"].rsplit(":", 1)[1])
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/v1/events?site=shop",
                         json.dumps({"event": "ViewContent", "event_id": "v1"}),
                         {"Content-Type": "application/json", "User-Agent": "LogTest"})
            self.assertEqual(conn.getresponse().status, 202)
            conn.close()
            time.sleep(1)  # the dry-run destination logs its would-be request from its worker
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=15)
        self.assertEqual(proc.returncode, 0, err)
        lines = [json.loads(l) for l in err.splitlines()]
        would = [d for d in lines if "would POST" in d["msg"]]
        self.assertTrue(would, err)
        self.assertIsInstance(would[0]["worker"], int)
        self.assertTrue(lines)
        for doc in lines:
            self.assertTrue({"ts", "level", "msg"} <= set(doc), doc)
            self.assertRegex(doc["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(doc["level"], ("debug", "info", "warn", "error"))
        msgs = " ".join(d["msg"] for d in lines)
        self.assertIn("listening on", msgs)
        self.assertIn('SIGHUP: reloading %s' % path, msgs)
        # The per-process-key warning: once at start, once per reload.
        self.assertEqual(sum("per-process key" in d["msg"] for d in lines), 2)
        # warn: no info lines, the warnings stay.
        proc, path, cfg = self.serve_with({"log_level": "warn"})
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        self.assertNotIn(" info: ", err)
        self.assertIn(" warn: ", err)
        self.assertIn("per-process key", err)

    def test_reload_switches_log_format(self):
        proc, path, cfg = self.serve_with({})
        try:
            cfg["log_format"] = "json"
            with open(path, "w") as f:
                json.dump(cfg, f)
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=15)
        lines = err.splitlines()
        self.assertRegex(lines[0], r"^\d{4}-\d\d-\d\dT[0-9:.]+Z \w+: ")
        self.assertEqual(json.loads(lines[-1])["level"], "info")
        self.assertTrue(any(l.startswith("{") and "per-process key" in json.loads(l)["msg"]
                            for l in lines))


    def test_shipped_config_serves_without_credentials(self):
        # The shipped config as it is, but on a free port and a private state_dir.
        cfg = shipped_config()
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
