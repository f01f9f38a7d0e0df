#!/usr/bin/python3
"""The starling command line contract, checked against the real executable.

Usage: cli_test.py PATH_TO_STARLING EXPECTED_VERSION
"""
import os
import subprocess
import sys
import tempfile
import unittest

STARLING = sys.argv[1] if len(sys.argv) > 1 else "starling"
VERSION = sys.argv[2] if len(sys.argv) > 2 else "0.1.0"


def run(args, env=None, cwd=None):
    # A clean environment: only what the test sets, so a STARLING_* variable
    # of whoever runs the tests cannot change the outcome.
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    base.update(env or {})
    return subprocess.run([STARLING, *args], env=base, cwd=cwd, capture_output=True,
                          text=True, timeout=30)


class CommandLine(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="starling-cli-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def assert_usage_error(self, result, flag):
        self.assertEqual(result.returncode, 2, result.stderr)
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 1, f"stderr is not one line: {result.stderr!r}")
        self.assertIn(flag, lines[0])
        self.assertEqual(result.stdout, "")

    def test_bad_value_exits_2_naming_the_flag(self):
        self.assert_usage_error(run(["--threads", "lots"], cwd=self.dir), "--threads")
        self.assert_usage_error(run(["--mqtt-listen", "0.0.0.0:99999"], cwd=self.dir),
                                "--mqtt-listen")

    def test_unknown_flag_exits_2_naming_it(self):
        self.assert_usage_error(run(["--no-such-flag"], cwd=self.dir), "--no-such-flag")

    def test_bad_environment_value_exits_2(self):
        result = run([], env={"STARLING_FSYNC": "sometimes"}, cwd=self.dir)
        self.assert_usage_error(result, "--fsync")
        self.assertIn("STARLING_FSYNC", result.stderr)

    def test_unknown_config_key_exits_2(self):
        config = os.path.join(self.dir, "starling.yaml")
        with open(config, "w") as f:
            f.write("threads: 2\nno-such-key: 1\n")
        result = run(["--config", config], cwd=self.dir)
        self.assert_usage_error(result, "--config")
        self.assertIn("no-such-key", result.stderr)

    def test_version(self):
        result = run(["--version"], cwd=self.dir)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout, f"starling {VERSION}\n")

    def test_help(self):
        result = run(["--help"], cwd=self.dir)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("--cluster-listen", result.stdout)

    def test_valid_flags_parse_then_exit_3_not_implemented(self):
        data = os.path.join(self.dir, "data")
        result = run(["--node-id", "n1", "--mqtt-listen", "127.0.0.1:0",
                      "--http-listen", "127.0.0.1:0", "--data-dir", data],
                     env={"STARLING_LOG_LEVEL": "debug"}, cwd=self.dir)
        self.assertEqual(result.returncode, 3, result.stderr)
        self.assertIn("starling: the MQTT broker is not implemented yet (issue 3); "
                      "configuration parsed OK", result.stderr)
        self.assertIn("n1", result.stderr)  # the banner shows the parsed settings
        self.assertFalse(os.path.exists(data), "nothing may be created yet")

    def test_secret_is_not_logged(self):
        result = run(["--cluster-secret", "hunter2"], cwd=self.dir)
        self.assertEqual(result.returncode, 3, result.stderr)
        self.assertNotIn("hunter2", result.stderr + result.stdout)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
