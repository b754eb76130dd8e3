"""The audit report: check --format json|md|html|csv [-o FILE], through the real binary.

Every format is parsed the way its reader would parse it (json, csv, html.parser, and the
HTML also in real Chromium, headless); the report must hold the mixed consent states, the
rules with their why, and nothing of the probe's raw personal data or the site secret.
"""
import csv
import hashlib
import html.parser
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import BIN, ROOT

SECRET = "report-test-secret-0123456789"
ENV = dict(os.environ, SCRUBGATE_SHOP_SECRET=SECRET)
ENV.pop("SCRUBGATE_SHOP_INGEST_KEY", None)
ENV.pop("SOURCE_DATE_EPOCH", None)
CHROMIUM = "/usr/bin/chromium"

# The probe's synthetic personal data (report.c): none of it may appear in a report.
PROBE_RAW = ("probe@example.com", "probe%40example.com", "+12025550100", "2025550100",
             "192.0.2.1", "probe-click", "probe-ttp", "Mozilla/5.0 (probe)")
INJECTED = 'Attack <script>alert("x")</script> & <b>bold</b> | pipe'
STATES = ("granted", "denied", "gpc", "ad_storage_denied", "ad_user_data_denied", "usp_opt_out")


def run(*args, env=ENV):
    return subprocess.run([BIN] + list(args), cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


class Cells(html.parser.HTMLParser):
    """Start tags, and the text of every table row as a list of cell texts."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.rows, self.attrs = [], [], []
        self.row, self.cell = None, None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)
        if tag == "tr":
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.row.append(self.cell)
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.rows.append(self.row)
            self.row = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def parse_html(text):
    p = Cells()
    p.feed(text)
    p.close()
    return p


class ReportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sg-report-")
        with open(os.path.join(ROOT, "rules", "default.json")) as f:
            rules = json.load(f)
        rules["rules"][0]["why"] = INJECTED
        cls.rules = os.path.join(cls.tmp, "rules.json")
        with open(cls.rules, "w") as f:
            json.dump(rules, f, indent=2)
        with open(os.path.join(ROOT, "conf", "scrubgate.json")) as f:
            cfg = json.load(f)
        cfg["sites"][0]["rules"] = cls.rules
        cls.config = os.path.join(cls.tmp, "c.json")
        with open(cls.config, "w") as f:
            json.dump(cfg, f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def report(self, fmt, *extra):
        r = run("check", "-c", self.config, "--format", fmt, *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        for raw in PROBE_RAW + (SECRET,):
            self.assertNotIn(raw, r.stdout, (fmt, raw))
        return r.stdout

    def test_json_holds_rules_policy_and_mixed_states(self):
        doc = json.loads(self.report("json"))
        self.assertRegex(doc["generated"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertRegex(doc["scrubgate_version"], r"^\d+\.\d+\.\d+")
        self.assertEqual(doc["config"], self.config)
        self.assertEqual([s["key"] for s in doc["consent_states"]], list(STATES))
        site = doc["sites"][0]
        self.assertEqual(site["id"], "shop")
        with open(self.rules, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        self.assertEqual(site["rule_set"]["sha256"], digest)
        self.assertEqual(site["rule_set"]["version"], "sha256:" + digest[:12])
        self.assertEqual(site["rule_set"]["path"], self.rules)
        rules = {r["id"]: r for r in site["rules"]}
        self.assertEqual(rules["drop-bots"]["why"], INJECTED)
        self.assertEqual(rules["drop-bots"]["condition"], {"bot": True})
        self.assertEqual(rules["drop-bots"]["options"], {"reason": "bot"})
        self.assertEqual(rules["click-ids-with-consent"]["fields"], ["user.ttclid", "user.ttp"])
        self.assertEqual(rules["click-ids-with-consent"]["action"], "allow")
        self.assertIsNone(rules["scrub-urls"]["condition"])
        self.assertEqual(site["consent"]["default"], "denied")
        self.assertTrue(site["consent"]["honor_gpc"])
        self.assertEqual(site["consent"]["tcf"]["vendor_id"], 1234)
        self.assertEqual(set(site["consent"]["tcf"]["purposes"]),
                         {"ad_storage", "ad_user_data", "ad_personalization", "analytics_storage"})
        self.assertEqual(site["consent"]["tcf"]["purposes"]["ad_storage"], [1])
        dest = site["destinations"][0]
        self.assertEqual(dest["events"],
                         ["Purchase", "AddToCart", "ViewContent", "Lead", "InitiateCheckout"])
        self.assertTrue(dest["dry_run"])
        self.assertFalse(dest["test"])
        self.assertEqual(site["event_map"]["won"]["to"], ["Purchase"])
        m = site["matrix"]
        for row in m.values():
            self.assertEqual(set(row), set(STATES))
        # Mixed states: ad_storage without ad_user_data, and the reverse.
        self.assertEqual(m["user.external_id"]["ad_storage_denied"], "keyed_hash(session)")
        self.assertEqual(m["user.external_id"]["ad_user_data_denied"], "dropped")
        self.assertEqual(m["user.ttclid"]["ad_storage_denied"], "dropped")
        self.assertEqual(m["user.ttclid"]["ad_user_data_denied"], "dropped")
        self.assertEqual(m["page.*.ttclid"], dict({s: "removed" for s in STATES}, granted="kept"))
        # GPC and a US Privacy opt-out restrict and set limited_data_use.
        self.assertEqual(m["limited_data_use"]["gpc"], "true")
        self.assertEqual(m["limited_data_use"]["usp_opt_out"], "true")
        self.assertEqual(m["limited_data_use"]["granted"], "false")
        self.assertEqual(m["user.user_agent"]["usp_opt_out"], "dropped")
        self.assertEqual(doc["snippet"]["path"], "/sg.js")
        self.assertTrue(doc["snippet"]["integrity"].startswith("sha384-"))

    def test_json_flag_is_the_json_format(self):
        a = json.loads(run("check", "-c", self.config, "--json").stdout)
        b = json.loads(self.report("json"))
        b["generated"] = a["generated"]
        self.assertEqual(a, b)

    def test_csv_rows_per_site_field_and_state(self):
        text = self.report("csv")
        raw = subprocess.run([BIN, "check", "-c", self.config, "--format", "csv"], cwd=ROOT,
                             env=ENV, capture_output=True, timeout=60).stdout
        self.assertTrue(raw.endswith(b"\r\n"))
        self.assertEqual(raw.count(b"\r\n"), raw.count(b"\n"))  # RFC 4180 line ends
        text = raw.decode()
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        doc = json.loads(self.report("json"))
        matrix = doc["sites"][0]["matrix"]
        self.assertEqual(len(rows), len(matrix) * len(STATES))
        got = {(r["site"], r["outbound_field"], r["consent_state"]): r["outcome"] for r in rows}
        for field, row in matrix.items():
            for state, outcome in row.items():
                self.assertEqual(got[("shop", field, state)], outcome)
        self.assertEqual(got[("shop", "user.external_id", "ad_storage_denied")],
                         "keyed_hash(session)")
        self.assertEqual(got[("shop", "page.*.ttclid", "granted")], "kept")
        titles = {r["consent_state"]: r["consent_state_title"] for r in rows}
        self.assertEqual(titles["usp_opt_out"], "US opt-out")
        self.assertTrue(all(r["rule_set_sha256"] == doc["sites"][0]["rule_set"]["sha256"]
                            for r in rows))

    def test_markdown_tables(self):
        text = self.report("md")
        self.assertTrue(text.startswith("# scrubgate audit report\n"))
        self.assertIn("## Site shop", text)
        self.assertRegex(text, r"\| outbound field \| consent granted \| consent denied \| GPC \| "
                               r"no ad_storage \| no ad_user_data \| US opt-out \|\n\|---\|")
        self.assertIn("| `user.external_id` | keyed_hash(session) | dropped | dropped | "
                      "keyed_hash(session) | dropped | dropped |", text)
        self.assertIn("| `page.*.ttclid` | kept | removed | removed | removed | removed | "
                      "removed |", text)
        self.assertIn("| id | dry run | test events | events allowed |", text)
        self.assertIn("| `tiktok:CABCDEFGH1234567890` | yes | no | Purchase, AddToCart, "
                      "ViewContent, Lead, InitiateCheckout |", text)
        self.assertIn("| TCF vendor id | 1234 |", text)
        # The injected why: no raw markup, and the pipe does not open a new cell.
        self.assertNotIn("<script>", text)
        self.assertIn("Attack &lt;script&gt;alert(\"x\")&lt;/script&gt; &amp; &lt;b&gt;bold"
                      "&lt;/b&gt; \\| pipe |", text)
        for line in text.splitlines():
            if line.startswith("| 1 | `drop-bots`"):
                self.assertEqual(len(re.findall(r"(?<!\\)\|", line)), 8, line)
                break
        else:
            self.fail("rule drop-bots not in the rules table")

    def check_html_cells(self, rows, text):
        cells = [c.strip() for row in rows for c in row]
        self.assertIn(INJECTED, cells)
        by_first = {row[0].strip(): row for row in rows if row}
        self.assertEqual([c.strip() for c in by_first["user.external_id"][1:]],
                         ["keyed_hash(session)", "dropped", "dropped", "keyed_hash(session)",
                          "dropped", "dropped"])
        self.assertEqual([c.strip() for c in by_first["limited_data_use"][1:]],
                         ["false", "false", "true", "false", "false", "true"])
        self.assertEqual(by_first["outbound field"][1:],
                         ["consent granted", "consent denied", "GPC", "no ad_storage",
                          "no ad_user_data", "US opt-out"])
        self.assertIn("<h2>Site <code>shop</code></h2>", text)

    def test_html_is_self_contained_and_escaped(self):
        text = self.report("html")
        p = parse_html(text)
        self.assertNotIn("script", p.tags)
        self.assertNotIn("b", p.tags)
        for tag in ("link", "img", "iframe", "object", "embed", "base", "meta-refresh"):
            self.assertNotIn(tag, p.tags)
        self.assertFalse([a for a in p.attrs if a[0] in ("src", "href") or a[0].startswith("on")])
        self.assertNotRegex(text, r"@import|url\(|https?://(?!shop\.example\.com)")
        self.assertIn("style", p.tags)
        self.assertIn("&lt;script&gt;", text)
        self.check_html_cells(p.rows, text)
        self.assertIn("Generated (UTC)", [r[0] for r in p.rows])

    def test_html_in_chromium(self):
        if not os.access(CHROMIUM, os.X_OK):
            if os.environ.get("CI"):
                self.fail(CHROMIUM + " is missing (scripts/packages.txt lists chromium)")
            self.skipTest(CHROMIUM + " not installed; the Chromium check of the HTML report "
                          "needs Debian's chromium package")
        out = os.path.join(self.tmp, "report.html")
        r = run("check", "-c", self.config, "--format", "html", "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "")
        profile = tempfile.mkdtemp(prefix="sg-chromium-", dir=self.tmp)
        d = subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                            "--user-data-dir=" + profile, "--no-first-run",
                            "--dump-dom", "file://" + out],
                           capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, HOME=profile))
        self.assertEqual(d.returncode, 0, d.stderr[-2000:])
        dom = d.stdout
        self.assertIn('data-site="shop"', dom)
        p = parse_html(dom)
        # The injected why is text in the DOM: Chromium built no script or b element from it.
        self.assertNotIn("script", p.tags)
        self.assertNotIn("b", p.tags)
        self.check_html_cells(p.rows, dom)

    def test_output_file_is_written_atomically(self):
        out = os.path.join(self.tmp, "out", "report.md")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        r = run("check", "-c", self.config, "--format", "md", "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertEqual(os.listdir(os.path.dirname(out)), ["report.md"])
        with open(out) as f:
            self.assertIn("## Site shop", f.read())
        self.assertEqual(os.stat(out).st_mode & 0o777, 0o644)
        # A directory that does not exist: runtime failure, and nothing half-written.
        r = run("check", "-c", self.config, "--format", "md", "-o",
                os.path.join(self.tmp, "nope", "r.md"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("nope", r.stderr)
        # A directory as the file: a clear error, and no temporary file left beside it.
        before = sorted(os.listdir(self.tmp))
        r = run("check", "-c", self.config, "--format", "md", "-o", os.path.join(self.tmp, "out"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("is a directory", r.stderr)
        self.assertEqual(sorted(os.listdir(self.tmp)), before)

    def test_bad_format_is_usage_error(self):
        r = run("check", "-c", self.config, "--format", "pdf")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--format", r.stderr)

    def test_shipped_example_is_up_to_date(self):
        """docs/audit-report-example.md is what check writes for conf/scrubgate.json (but for
        the generated time); regenerate it with the command in docs/OPERATIONS.md."""
        env = dict(ENV)
        env.pop("SCRUBGATE_SHOP_SECRET")
        r = run("check", "-c", "conf/scrubgate.json", "--format", "md", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(ROOT, "docs", "audit-report-example.md")) as f:
            shipped = f.read()
        strip = re.compile(r"^\| Generated \(UTC\) \| .* \|$", re.M)
        self.assertEqual(strip.sub("", shipped), strip.sub("", r.stdout),
                         "docs/audit-report-example.md is stale: run SOURCE_DATE_EPOCH=... "
                         "build/scrubgate check -c conf/scrubgate.json --format md "
                         "-o docs/audit-report-example.md (docs/OPERATIONS.md)")

    def test_source_date_epoch_fixes_the_generated_time(self):
        r = run("check", "-c", self.config, "--format", "json",
                env=dict(ENV, SOURCE_DATE_EPOCH="1767225600"))
        self.assertEqual(json.loads(r.stdout)["generated"], "2026-01-01T00:00:00Z")


if __name__ == "__main__":
    unittest.main()
