#!/usr/bin/python3
"""Graceful shutdown: on SIGTERM/SIGINT the node says 503 on /readyz at once,
keeps accepting for --drain-delay seconds, then tells every MQTT 5 client
"Server shutting down" (DISCONNECT 0x8B), and exits 0 within --shutdown-timeout;
a second signal exits at once; what a persistent session holds survives.

Usage: test_shutdown.py PATH_TO_STARLING
"""
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from paho.mqtt.reasoncodes import ReasonCodes

from harness import *  # noqa: F401,F403
import harness
from harness import DISCONNECT, PUBACK, SUBACK

SERVER_SHUTTING_DOWN = 0x8B


def readyz(port):
    return http_json(port, "GET", "/readyz", timeout=2)


class ShutdownTest(unittest.TestCase):
    def node(self, *args, data_dir=None):
        """A node with the HTTP listener; stopped (if the test has not) and checked
        at the end."""
        b = Broker(*args, http=True, data_dir=data_dir).start()

        def stop():
            problems = b.stop()
            if problems:
                raise AssertionError("; ".join(problems))
        self.addCleanup(stop)
        return b

    def paho(self, client_id, version=5):
        c = MqttClient(client_id, version=version)
        self.addCleanup(c.close)
        return c

    def raw(self, broker, client_id, version=5):
        r = RawClient(broker, version)
        self.addCleanup(r.close)
        r.connect(client_id)
        return r


class Drain(ShutdownTest):
    def test_sigterm_drain_sequence(self):
        drain, timeout = 3.0, 10.0
        b = self.node("--drain-delay", "3", "--shutdown-timeout", "10")
        self.assertEqual(readyz(b.http_port), (200, {"ready": True}))
        v5 = self.paho("paho-v5")
        v5.connect(b)
        v311 = self.paho("paho-v311", version=4)
        v311.connect(b)
        raw5 = self.raw(b, "raw-v5")
        raw311 = self.raw(b, "raw-v311", version=4)

        b.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        # /readyz turns 503 at once.
        code, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(
            readyz(b.http_port)), 1.0, interval=0.01, message="/readyz 503")
        self.assertLess(time.monotonic() - signalled, drain)
        self.assertEqual(body["ready"], False)
        self.assertIsInstance(body["reasons"], list)
        self.assertGreaterEqual(len(body["reasons"]), 1)
        self.assertTrue(body["reasons"][0].startswith("draining"), body)
        code, node = http_json(b.http_port, "GET", "/api/v1/node")
        self.assertEqual((code, node["draining"]), (200, True))
        self.assertEqual(http_json(b.http_port, "GET", "/healthz")[0], 200)

        # Still accepting during the drain delay: a new client connects, and the
        # clients already there still work.
        late = self.raw(b, "late-v5")
        late_paho = self.paho("late-paho")
        late_paho.connect(b)
        v5.subscribe("drain/t", 1)
        v5.publish("drain/t", b"still served", qos=1)
        self.assertEqual(v5.msgs.wait_for(1, timeout=2)[0].payload, b"still served")
        self.assertLess(time.monotonic() - signalled, drain,
                        "the checks during the drain delay took too long to mean anything")

        # Then every MQTT 5 client is told the server is shutting down...
        for r in (raw5, late):
            packets = r.read_until_closed(timeout=drain + 5)
            self.assertEqual([(p.type, p.reason) for p in packets],
                             [(DISCONNECT, SERVER_SHUTTING_DOWN)])
        told = time.monotonic() - signalled
        self.assertGreaterEqual(told, drain - 0.3,
                                f"clients were told to go {told:.2f}s after SIGTERM, "
                                f"before the {drain}s drain delay ended")
        for c in (v5, late_paho):
            rc, _, server_sent = c.wait_disconnected(5)
            self.assertEqual((rc, server_sent), (139, True), c.client_id)
        # ... and 3.1.1 clients are just disconnected.
        self.assertEqual(raw311.read_until_closed(timeout=5), [])
        v311.wait_disconnected(5)

        status = b.wait_exit(timeout)
        exited = time.monotonic() - signalled
        self.assertEqual(status, 0)
        self.assertLess(exited, timeout)
        self.assertLess(exited, drain + 3.0, f"exit took {exited:.2f}s")
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", b.port), timeout=2).close()

    def test_sigint_drains_too(self):
        b = self.node()
        r = self.raw(b, "int-v5")
        b.send_signal(signal.SIGINT)
        signalled = time.monotonic()
        self.assertEqual([(p.type, p.reason) for p in r.read_until_closed(5)],
                         [(DISCONNECT, SERVER_SHUTTING_DOWN)])
        self.assertEqual(b.wait_exit(10), 0)
        self.assertLess(time.monotonic() - signalled, 5.0)

    def test_second_signal_exits_at_once(self):
        b = self.node("--drain-delay", "20", "--shutdown-timeout", "30")
        r = self.raw(b, "second")
        b.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        wait_until(lambda: readyz(b.http_port)[0] == 503, 1.0, interval=0.01,
                   message="/readyz 503")
        b.send_signal(signal.SIGTERM)
        status = b.wait_exit(5)
        exited = time.monotonic() - signalled
        self.assertNotEqual(status, 0)
        self.assertLess(exited, 3.0, f"exit took {exited:.2f}s after the first signal")
        r.close()

    def test_shutdown_timeout_bounds_the_exit(self):
        # A subscriber that never reads: the node's writes to it back up, so its
        # DISCONNECT can never be delivered; the node exits anyway, on time.
        b = self.node("--shutdown-timeout", "3", "--max-inflight", "1000")
        stuck = RawClient(b, 5)
        self.addCleanup(stuck.close)
        stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect("stuck", keepalive=0)
        stuck.send(subscribe_packet(1, [("big/#", 1)]))
        stuck.expect(SUBACK)
        idle = self.paho("idle")               # one that just stays connected
        idle.connect(b)
        pub = self.raw(b, "big-pub")
        payload = b"x" * (256 * 1024)
        # Up to 10 MiB the subscriber never reads; once its connection is backed
        # up the node holds the publisher back (up to 1 s an acknowledgement):
        # enough then.
        for i in range(40):
            sent = time.monotonic()
            pub.send(publish_packet(f"big/{i}", payload, qos=1, packet_id=i + 1))
            self.assertEqual(pub.expect(PUBACK).packet_id, i + 1)
            if time.monotonic() - sent > 0.5:
                break
        b.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        status = b.wait_exit(10)
        exited = time.monotonic() - signalled
        self.assertEqual(status, 0)
        self.assertLess(exited, 4.0, f"exit took {exited:.2f}s with --shutdown-timeout 3")
        rc, _, _ = idle.wait_disconnected(5)
        self.assertNotEqual(rc, 0)


class Durability(ShutdownTest):
    def test_queued_messages_survive_a_drained_restart(self):
        tmp = tempfile.TemporaryDirectory(prefix="starling-shutdown-")
        self.addCleanup(tmp.cleanup)
        data = os.path.join(tmp.name, "data")
        b = self.node("--drain-delay", "1", "--shutdown-timeout", "5", data_dir=data)
        sub = self.paho("durable")
        sub.connect(b, clean_start=True, session_expiry=3600)
        sub.subscribe("d/#", 1)
        sub.disconnect()
        online = self.paho("online-durable")     # still connected when the drain comes
        online.connect(b, clean_start=True, session_expiry=3600)
        online.subscribe("o/#", 1)
        pub = self.paho("d-pub")
        pub.connect(b)
        payloads = [f"m{i}".encode() for i in range(5)]
        for p in payloads:
            pub.publish("d/x", p, qos=1)
        code, d = http_json(b.http_port, "GET", "/api/v1/clients/durable")
        self.assertEqual((code, d["queued"], d["connected"]), (200, 5, False))

        b.send_signal(signal.SIGTERM)
        self.assertEqual(b.wait_exit(10), 0)
        self.assertEqual(b.stop(), [])

        b2 = self.node(data_dir=data)
        code, d = http_json(b2.http_port, "GET", "/api/v1/clients/durable")
        self.assertEqual((code, d["queued"], d["connected"], d["subscription_count"]),
                         (200, 5, False, 1))
        code, d = http_json(b2.http_port, "GET", "/api/v1/clients/online-durable")
        self.assertEqual((code, d["connected"], d["subscription_count"]), (200, False, 1))
        again = self.paho("durable")
        session_present, rc, _ = again.connect(b2, clean_start=False, session_expiry=3600)
        self.assertEqual(session_present, 1)
        msgs = again.msgs.wait_for(5, timeout=5)
        self.assertEqual([(m.topic, m.payload, m.qos) for m in msgs],
                         [("d/x", p, 1) for p in payloads])


class Flags(unittest.TestCase):
    def test_drain_delay_must_be_below_shutdown_timeout(self):
        with tempfile.TemporaryDirectory(prefix="starling-shutdown-") as tmp:
            for drain, timeout in (("5", "5"), ("6", "5"), ("31", None)):
                args = [harness.STARLING, "--mqtt-listen", "127.0.0.1:0", "--http-listen", "off",
                        "--data-dir", os.path.join(tmp, "data"), "--drain-delay", drain]
                if timeout is not None:
                    args += ["--shutdown-timeout", timeout]
                result = subprocess.run(args, capture_output=True, text=True, timeout=30,
                                        cwd=tmp, stdin=subprocess.DEVNULL,
                                        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
                self.assertEqual(result.returncode, 2, f"{args}: {result.stderr}")
                lines = result.stderr.splitlines()
                self.assertEqual(len(lines), 1, f"stderr is not one line: {result.stderr!r}")
                self.assertIn("--drain-delay", lines[0])


if __name__ == "__main__":
    main()
