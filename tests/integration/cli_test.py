#!/usr/bin/python3
"""The starling command line contract, checked against the real executable.

Usage: cli_test.py PATH_TO_STARLING EXPECTED_VERSION
"""
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
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

    def start_then_stop(self, args, env=None, while_running=None):
        """Starts starling, waits for its MQTT listener, calls while_running (if
        any), stops it with SIGTERM."""
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        base.update(env or {})
        log_path = os.path.join(self.dir, "starling.log")
        with open(log_path, "w") as log:
            proc = subprocess.Popen([STARLING, *args], env=base, cwd=self.dir,
                                    stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10
            port = None
            while port is None and time.monotonic() < deadline and proc.poll() is None:
                with open(log_path) as f:
                    m = re.search(r"listener mqtt bound to 127\.0\.0\.1:(\d+)", f.read())
                port = int(m.group(1)) if m else None
                time.sleep(0.05)
            self.assertIsNotNone(port, "no listener line in the log")
            self.assertNotEqual(port, 0)
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass  # it accepts connections
            if while_running:
                while_running()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        with open(log_path) as f:
            return code, f.read()

    def test_valid_flags_start_the_broker_and_sigterm_stops_it(self):
        data = os.path.join(self.dir, "data")
        code, log = self.start_then_stop(
            ["--node-id", "n1", "--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
             "--data-dir", data], env={"STARLING_LOG_LEVEL": "debug"})
        self.assertEqual(code, 0, log)
        self.assertIn("n1", log)  # the banner shows the parsed settings

    def test_secret_is_not_logged(self):
        code, log = self.start_then_stop(["--mqtt-listen", "127.0.0.1:0", "--http-listen", "off",
                                          "--cluster-secret", "hunter2"])
        self.assertEqual(code, 0, log)
        self.assertNotIn("hunter2", log)

    def test_port_in_use_exits_1_naming_the_address(self):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            result = run(["--mqtt-listen", f"127.0.0.1:{port}", "--http-listen", "off"], cwd=self.dir)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn(f"127.0.0.1:{port}", result.stderr.splitlines()[-1])


    # -- the data directory (--data-dir): problems exit 2 at start-up, with the
    # directory named on the last line, and leave it as it was.

    def node_args(self, data):
        return ["--mqtt-listen", "127.0.0.1:0", "--http-listen", "off", "--data-dir", data]

    def assert_data_dir_error(self, result, *expected):
        self.assertEqual(result.returncode, 2, result.stderr)
        last = result.stderr.splitlines()[-1]
        self.assertTrue(last.startswith("starling: "), last)
        for text in expected:
            self.assertIn(text, last)
        self.assertNotIn("listener mqtt bound", result.stderr)  # refused before serving

    @staticmethod
    def snapshot(directory):
        files = {}
        for root, _, names in os.walk(directory):
            for name in names:
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    files[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
        return files

    def test_data_dir_is_created_and_reused(self):
        data = os.path.join(self.dir, "deeper", "data")
        for _ in range(2):
            code, log = self.start_then_stop(self.node_args(data))
            self.assertEqual(code, 0, log)
            self.assertIn(f"data directory {data} opened", log)
        self.assertTrue(os.path.exists(os.path.join(data, "CURRENT")))
        self.assertFalse(os.path.exists(os.path.join(data, "LOG")))  # RocksDB's log goes to ours

    def test_data_dir_that_cannot_be_created_exits_2(self):
        blocker = os.path.join(self.dir, "a-file")
        open(blocker, "w").close()
        data = os.path.join(blocker, "data")
        self.assert_data_dir_error(run(self.node_args(data), cwd=self.dir), data)

    def test_data_dir_in_use_by_another_node_exits_2(self):
        data = os.path.join(self.dir, "data")
        second = []
        code, log = self.start_then_stop(
            self.node_args(data), while_running=lambda: second.append(run(self.node_args(data), cwd=self.dir)))
        self.assertEqual(code, 0, log)
        self.assert_data_dir_error(second[0], data, "in use")

    def test_damaged_data_dir_exits_2_and_is_left_untouched(self):
        data = os.path.join(self.dir, "data")
        code, log = self.start_then_stop(self.node_args(data))
        self.assertEqual(code, 0, log)
        current = os.path.join(data, "CURRENT")
        # CURRENT names a manifest that is not there.
        with open(current, "w") as f:
            f.write("MANIFEST-999999\n")
        before = self.snapshot(data)
        self.assert_data_dir_error(run(self.node_args(data), cwd=self.dir), data)
        self.assertEqual(self.snapshot(data), before)
        # No CURRENT at all: not taken for an empty directory and created afresh.
        os.remove(current)
        before = self.snapshot(data)
        self.assert_data_dir_error(run(self.node_args(data), cwd=self.dir), data, "no CURRENT")
        self.assertEqual(self.snapshot(data), before)

    def test_full_data_dir_exits_2(self):
        # A full file system: a 64 KiB tmpfs, filled. Mounting needs root.
        mount = os.path.join(self.dir, "small")
        os.mkdir(mount)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mount],
                                 capture_output=True, text=True)
        if mounted.returncode != 0:
            self.skipTest(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
        try:
            try:
                with open(os.path.join(mount, "filler"), "wb") as f:
                    f.write(b"x" * (1 << 20))
            except OSError:
                pass  # full, as wanted
            data = os.path.join(mount, "data")
            self.assert_data_dir_error(run(self.node_args(data), cwd=self.dir), data)
        finally:
            subprocess.run(["umount", mount], capture_output=True)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
