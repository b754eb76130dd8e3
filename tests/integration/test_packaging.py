"""Packaging: cmake --install lays out a tree whose binary checks its own config from any
working directory; the systemd unit verifies (systemd-analyze, where present) and is
sandboxed; the Dockerfile builds and runs as a non-root user (where Docker works)."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import BIN, ROOT

CMAKE = os.environ.get("SG_CMAKE") or shutil.which("cmake")
BUILD_DIR = os.environ.get("SG_BUILD_DIR") or os.path.dirname(BIN)


class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sg-install-")
        cls.prefix = os.path.join(cls.tmp, "prefix")
        r = subprocess.run([CMAKE, "--install", BUILD_DIR, "--prefix", cls.prefix],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError("cmake --install failed:\n" + r.stdout + r.stderr)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.prefix, *parts)

    def test_layout(self):
        self.assertTrue(os.access(self.path("bin", "scrubgate"), os.X_OK))
        for name in ("default.json", "strict.json", "advanced-matching.json"):
            self.assertTrue(os.path.isfile(self.path("share", "scrubgate", "rules", name)), name)
        with open(os.path.join(BUILD_DIR, "sg.min.js"), "rb") as a, \
                open(self.path("share", "scrubgate", "sg.js"), "rb") as b:
            self.assertEqual(a.read(), b.read())
        self.assertTrue(os.path.isfile(self.path("etc", "scrubgate", "scrubgate.json")))
        self.assertTrue(os.path.isfile(self.path("lib", "systemd", "system", "scrubgate.service")))

    def test_installed_binary_checks_the_installed_config_from_root(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SCRUBGATE_", "TIKTOK_"))}
        conf = self.path("etc", "scrubgate", "scrubgate.json")
        r = subprocess.run([self.path("bin", "scrubgate"), "check", "-c", conf], cwd="/",
                           env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("%s: ok" % conf, r.stdout)
        self.assertIn(os.path.join("share", "scrubgate", "rules", "default.json"), r.stdout)
        r = subprocess.run([self.path("bin", "scrubgate"), "--version"], cwd="/",
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^scrubgate \d+\.\d+\.\d+$")

    def test_unit_is_sandboxed_and_points_into_the_prefix(self):
        with open(self.path("lib", "systemd", "system", "scrubgate.service")) as f:
            unit = f.read()
        self.assertIn("ExecStart=%s serve -c %s" % (self.path("bin", "scrubgate"),
                                                    self.path("etc", "scrubgate", "scrubgate.json")),
                      unit)
        self.assertNotIn("/usr/local/", unit)
        for line in ("DynamicUser=yes", "ProtectSystem=strict", "StateDirectory=scrubgate",
                     "NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectHome=yes",
                     "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID"):
            self.assertRegex(unit, "(?m)^" + re.escape(line) + "$")
        self.assertRegex(unit, r"(?m)^RestrictAddressFamilies=.*AF_INET6")
        self.assertRegex(unit, r"(?m)^EnvironmentFile=-?/")
        with open(self.path("etc", "scrubgate", "scrubgate.json")) as f:
            self.assertIn('"state_dir": "/var/lib/scrubgate"', f.read())

    def test_systemd_analyze_verify(self):
        tool = shutil.which("systemd-analyze")
        if not tool:
            self.skipTest("systemd-analyze is not installed: the unit is not verified here")
        r = subprocess.run([tool, "verify",
                            self.path("lib", "systemd", "system", "scrubgate.service")],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # It exits 0 over unknown keys and bad values, but says so.
        self.assertEqual((r.stdout + r.stderr).strip(), "")


class DockerTest(unittest.TestCase):
    def test_dockerfile_shape(self):
        with open(os.path.join(ROOT, "Dockerfile")) as f:
            text = f.read()
        self.assertRegex(text, r"(?m)^FROM debian:bookworm AS build$")
        self.assertRegex(text, r"(?m)^FROM debian:bookworm-slim$")
        self.assertRegex(text, r"(?m)^USER scrubgate$")
        self.assertRegex(text, r"(?m)^EXPOSE 8080$")
        self.assertRegex(text, r"(?m)^VOLUME /var/lib/scrubgate$")
        runtime = text.split("FROM debian:bookworm-slim", 1)[1]
        self.assertNotRegex(runtime, r"-dev\b")  # only run-time libraries in the final image

    def test_docker_build_and_run(self):
        docker = shutil.which("docker")
        if not docker or subprocess.run([docker, "info"], capture_output=True,
                                        timeout=60).returncode != 0:
            self.skipTest("Docker is not available or not working (docker info failed): "
                          "the image is not built here")
        tag = "scrubgate-test:%d" % os.getpid()
        r = subprocess.run([docker, "build", "-t", tag, ROOT], capture_output=True, text=True,
                           timeout=1500)
        self.assertEqual(r.returncode, 0, r.stdout[-4000:] + r.stderr[-4000:])
        try:
            r = subprocess.run([docker, "run", "--rm", tag, "--version"], capture_output=True,
                               text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stdout, r"^scrubgate \d")
            r = subprocess.run([docker, "run", "--rm", "--entrypoint", "id", tag, "-u"],
                               capture_output=True, text=True, timeout=120)
            self.assertNotEqual(r.stdout.strip(), "0")
            r = subprocess.run([docker, "run", "--rm", tag, "check", "-c",
                                "/opt/scrubgate/etc/scrubgate/scrubgate.json"],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
        finally:
            subprocess.run([docker, "rmi", "-f", tag], capture_output=True, timeout=120)


if __name__ == "__main__":
    unittest.main()
