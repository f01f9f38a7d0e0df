#!/usr/bin/python3
"""starling-bench (bench/starling_bench.cpp) against a real starling: each scenario
runs briefly, and its JSON result line must show every message delivered exactly
once, a positive rate and ordered latency percentiles.

Usage: test_bench_tool.py PATH_TO_STARLING PATH_TO_STARLING_BENCH [unittest args...]
"""
import json
import os
import subprocess
import sys
import unittest

import harness
from harness import Broker

BENCH = "starling-bench"   # replaced from the command line


def run_bench(broker, *args, timeout=20):
    """Runs starling-bench against broker; returns (exit status, JSON result, output)."""
    cmd = [BENCH, "--host", broker.host, "--port", str(broker.port), *[str(a) for a in args]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [l for l in proc.stdout.splitlines() if l.startswith('{"scenario":')]
    result = json.loads(lines[-1]) if lines else None
    return proc.returncode, result, proc.stdout + proc.stderr


class BenchToolTest(unittest.TestCase):
    def check_clean(self, broker, *args):
        rc, r, out = run_bench(broker, *args)
        self.assertEqual(rc, 0, out)
        self.assertIsNotNone(r, out)
        self.assertGreater(r["sent"], 0, out)
        self.assertEqual(r["received"], r["expected"], out)
        self.assertEqual(r["lost"], 0, out)
        self.assertEqual(r["duplicated"], 0, out)
        self.assertEqual(r["connect_errors"], 0, out)
        self.assertEqual(r["errors"], 0, out)
        self.assertGreater(r["msgs_per_s"], 0, out)
        lat = r["latency_us"]
        self.assertLessEqual(lat["p50"], lat["p99"], out)
        self.assertLessEqual(lat["p99"], lat["p999"], out)
        self.assertLessEqual(lat["p999"], lat["max"], out)
        self.assertGreater(lat["max"], 0, out)
        return r

    def test_fanin_qos1(self):
        # Paced: open loop outruns one subscriber and the broker drops from its
        # queue (--max-queued), which the tool reports as lost, as it should.
        with Broker() as b:
            r = self.check_clean(b, "--scenario", "fanin", "--publishers", 2, "--subscribers", 1,
                                 "--qos", 1, "--rate", 1000, "--duration", 2, "--warmup", 0)
            self.assertEqual(r["expected"], r["sent"])
            self.assertEqual(r["out_of_order"], 0)

    def test_p2p_qos0(self):
        with Broker() as b:
            r = self.check_clean(b, "--scenario", "p2p", "--publishers", 3, "--qos", 0,
                                 "--rate", 500, "--duration", 1, "--warmup", 0.5)
            self.assertEqual(r["subscribers"], 3)
            self.assertEqual(r["expected"], r["sent"])
            self.assertEqual(r["out_of_order"], 0)

    def test_fanout_qos2_mqtt5(self):
        with Broker() as b:
            r = self.check_clean(b, "--scenario", "fanout", "--subscribers", 3, "--qos", 2,
                                 "--mqtt", 5, "--rate", 500, "--duration", 1, "--warmup", 0)
            self.assertEqual(r["publishers"], 1)
            self.assertEqual(r["mqtt"], "5.0")
            self.assertEqual(r["expected"], 3 * r["sent"])
            self.assertEqual(r["out_of_order"], 0)

    def test_open_loop_window(self):
        # Open loop, QoS 1 with a bounded window, one pair: the broker's per-session
        # limits are never reached, so nothing is lost.
        with Broker() as b:
            self.check_clean(b, "--scenario", "p2p", "--publishers", 1, "--qos", 1,
                             "--window", 8, "--duration", 1, "--warmup", 0)

    def test_sharedsub_qos1(self):
        with Broker() as b:
            r = self.check_clean(b, "--scenario", "sharedsub", "--publishers", 2, "--subscribers", 3,
                                 "--qos", 1, "--mqtt", 5, "--rate", 300, "--duration", 1,
                                 "--warmup", 0)
            self.assertEqual(r["expected"], r["sent"])   # each message once, to one member

    def test_pingpong(self):
        with Broker() as b:
            r = self.check_clean(b, "--scenario", "pingpong", "--publishers", 2, "--qos", 1,
                                 "--duration", 1, "--warmup", 0)
            self.assertEqual(r["expected"], r["sent"])
            self.assertEqual(r["out_of_order"], 0)

    def test_conns(self):
        with Broker() as b:
            rc, r, out = run_bench(b, "--scenario", "conns", "--connections", 300,
                                   "--source-addresses", 2, "--duration", 1)
            self.assertEqual(rc, 0, out)
            self.assertEqual(r["connections"], 300, out)
            self.assertEqual(r["open_at_end"], 300, out)
            self.assertEqual(r["connect_errors"], 0, out)
            self.assertGreater(r["connect_rate"], 0, out)

    def test_broker_resources(self):
        # --broker-pid: the broker's CPU time and resident memory, next to the
        # tool's own CPU time; --subscribe-each gives every idle connection a
        # subscription.
        with Broker() as b:
            r = self.check_clean(b, "--scenario", "fanin", "--publishers", 2, "--qos", 1,
                                 "--rate", 2000, "--duration", 1, "--warmup", 0.5,
                                 "--broker-pid", b.pid)
            out = json.dumps(r)
            self.assertEqual(r["broker_pid"], b.pid, out)
            self.assertEqual(r["deliveries_per_s"], r["msgs_per_s"], out)
            self.assertGreater(r["sent_per_s"], 0, out)
            # Paced, not overloaded: what arrived in the window is about what was sent in it.
            self.assertGreater(r["received_in_window_per_s"], 0.5 * r["msgs_per_s"], out)
            self.assertLess(r["received_in_window_per_s"], 1.5 * r["msgs_per_s"], out)
            for k in ("bench_cpu_s", "broker_cpu_s"):
                self.assertGreater(r[k], 0, out)
                self.assertLess(r[k], 10, out)          # at most a few cores for 1 s
            for k in ("bench_cpu_pct", "broker_cpu_pct"):
                self.assertGreater(r[k], 0, out)
                self.assertLess(r[k], 1000, out)
            self.assertLessEqual(r["bench_cpu_pct"], 110, out)   # one thread
            start, peak, end = r["broker_rss_kb_start"], r["broker_rss_kb_peak"], r["broker_rss_kb_end"]
            self.assertGreater(start, 1000, out)        # a real process holds over 1 MB
            self.assertLessEqual(start, peak, out)
            self.assertLessEqual(end, peak, out)
            self.assertLessEqual(peak, r["broker_rss_kb_hwm"], out)

            rc, r, out = run_bench(b, "--scenario", "conns", "--connections", 500, "--mqtt", 5,
                                   "--subscribe-each", "--duration", 1, "--broker-pid", b.pid)
            self.assertEqual(rc, 0, out)
            self.assertTrue(r["subscribe_each"], out)
            self.assertEqual(r["open_at_end"], 500, out)
            self.assertEqual(r["connect_errors"], 0, out)
            # Taken while the 500 connections are held: the broker grew.
            self.assertGreater(r["broker_rss_kb_end"], r["broker_rss_kb_start"], out)
            self.assertIsNotNone(r["broker_cpu_pct"], out)

        # Without --broker-pid the broker fields are null; the tool's own CPU is there.
        with Broker() as b:
            r = self.check_clean(b, "--scenario", "p2p", "--publishers", 1, "--rate", 500,
                                 "--duration", 0.5, "--warmup", 0)
            for k in ("broker_pid", "broker_cpu_s", "broker_cpu_pct", "broker_rss_kb_start",
                      "broker_rss_kb_peak", "broker_rss_kb_end"):
                self.assertIn(k, r)
                self.assertIsNone(r[k], k)
            self.assertIsNotNone(r["bench_cpu_s"])
            self.assertIsNotNone(r["bench_cpu_pct"])

    def test_connect_failure_exits_1(self):
        with Broker() as b:
            port = b.port
        # The broker is gone: nothing listens on its port any more.
        proc = subprocess.run([BENCH, "--port", str(port), "--duration", "1"],
                              capture_output=True, text=True, timeout=20)
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        line = [l for l in proc.stdout.splitlines() if l.startswith('{"scenario":')][-1]
        self.assertGreater(json.loads(line)["connect_errors"], 0)


if __name__ == "__main__":
    # A relative path (build/x/broker/starling) must survive the broker's own cwd.
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-") and os.sep in sys.argv[1]:
        sys.argv[1] = os.path.abspath(sys.argv[1])
    if len(sys.argv) > 2 and not sys.argv[2].startswith("-"):
        BENCH = os.path.abspath(sys.argv.pop(2)) if os.sep in sys.argv[2] else sys.argv.pop(2)
    harness.main()
