#!/usr/bin/python3
"""Malformed input closes only the offending connection; floods of broken
connections leak nothing.

Usage: test_bad_input.py PATH_TO_STARLING
"""
import socket
import struct
import time

from harness import *  # noqa: F401,F403
from harness import CONNACK, DISCONNECT, PUBREL, SUBSCRIBE, _bin, _packet, encode_props


class BadInput(BrokerTest):
    def setUp(self):
        super().setUp()
        # A healthy pair that must not notice anything.
        self.sub = self.connected("healthy-sub")
        self.sub.subscribe("bad/#", 1)
        self.pub = self.connected("healthy-pub", version=4)
        self.rounds = 0

    def assert_healthy(self):
        self.rounds += 1
        payload = f"still here {self.rounds}".encode()
        self.pub.publish("bad/health", payload, qos=1)
        self.sub.msgs.wait_until(lambda ms: any(m.payload == payload for m in ms), 5,
                                 what=payload.decode())
        self.assertIsNone(self.sub.disconnected)
        self.assertIsNone(self.pub.disconnected)

    def test_qos3_publish_v5_gets_0x81_and_only_that_connection_closes(self):
        self.assert_healthy()
        r = self.raw(version=5)
        r.connect("bad-qos3-v5")
        r.send(publish_packet("bad/t", b"evil", flags=0x06, packet_id=1))
        packets = r.read_until_closed(timeout=5)
        self.assertEqual([(p.type, p.reason) for p in packets], [(DISCONNECT, 0x81)])
        self.assert_healthy()
        self.assertNotIn(b"evil", self.sub.msgs.payloads())

    def test_misbehaviour_is_logged_once_per_connection_not_per_packet(self):
        # Many broken packets in one write: the connection ends at the first,
        # and the log has one line for it, naming the client and the reason.
        r = self.raw(version=5)
        r.connect("bad-logged-once")
        r.send(publish_packet("bad/t", b"evil", flags=0x06, packet_id=1) * 50)
        self.assertEqual([(p.type, p.reason) for p in r.read_until_closed(timeout=5)],
                         [(DISCONNECT, 0x81)])
        self.assert_healthy()
        lines = [l for l in self.broker.read_log().splitlines() if "bad-logged-once" in l]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("closed: Malformed Packet", lines[0])

    def test_qos3_publish_v311_closes_only_that_connection(self):
        r = self.raw(version=4)
        r.connect("bad-qos3-v311")
        r.send(publish_packet("bad/t", b"evil", flags=0x06, packet_id=1, version=4))
        self.assertEqual(r.read_until_closed(timeout=5), [])
        self.assert_healthy()
        self.assertNotIn(b"evil", self.sub.msgs.payloads())

    def test_malformed_packets_after_connect_v5(self):
        cases = [
            ("SUBSCRIBE with fixed-header flags 0",
             _packet(SUBSCRIBE, 0, struct.pack("!H", 1) + encode_props(None) +
                     _bin("bad/x") + b"\x01"), (0x81,)),
            ("SUBSCRIBE without a filter",
             _packet(SUBSCRIBE, 2, struct.pack("!H", 1) + encode_props(None)), (0x81, 0x82)),
            ("second CONNECT", connect_packet(5, "again"), (0x82,)),
            ("PUBREL with flags 0", _packet(PUBREL, 0, struct.pack("!H", 1)), (0x81,)),
            ("QoS 0 PUBLISH with DUP", publish_packet("bad/t", b"x", flags=0x08), (0x81,)),
            ("PUBLISH with wildcard topic", publish_packet("bad/+", b"x", qos=0),
             (0x81, 0x82, 0x90)),
            ("PUBLISH with invalid UTF-8 topic",
             _packet(3, 0, struct.pack("!H", 2) + b"\xff\xfe" + encode_props(None) + b"x"),
             (0x81,)),
            ("PUBLISH with topic alias 0", publish_packet("bad/t", b"x", props=[(35, 0)]),
             (0x81, 0x82, 0x94)),
            ("reserved packet type 0", b"\x00\x00", (0x81, 0x82)),
            ("remaining length of 5 bytes", b"\x30\xff\xff\xff\xff\x7f", (0x81,)),
            ("property length past the end",
             _packet(3, 0, _bin("bad/t") + b"\x20"), (0x81,)),
        ]
        for name, data, reasons in cases:
            with self.subTest(name):
                r = self.raw(version=5)
                r.connect("bad-" + name.replace(" ", "-"))
                r.send(data)
                packets = r.read_until_closed(timeout=5)
                self.assertEqual(len(packets), 1, f"{name}: {packets}")
                self.assertEqual(packets[0].type, DISCONNECT, f"{name}: {packets}")
                self.assertIn(packets[0].reason, reasons, f"{name}: {packets}")
                r.close()
        self.assert_healthy()
        self.assertEqual([m.payload for m in self.sub.msgs.messages
                          if not m.payload.startswith(b"still here")], [])

    def test_bad_first_packets_are_refused(self):
        cases = [
            ("PUBLISH before CONNECT", publish_packet("bad/t", b"x", version=4)),
            ("garbage", bytes(range(7, 200))),
            ("wrong protocol name",
             _packet(1, 0, _bin("MQTX") + bytes([4, 2]) + struct.pack("!H", 60) + _bin("x"))),
            ("CONNECT with reserved flag", _packet(1, 0, _bin("MQTT") + bytes([4, 3]) +
                                                  struct.pack("!H", 60) + _bin("x"))),
            ("CONNECT claiming 200 MB", b"\x10" + encode_varint(200 * 1024 * 1024) + b"\x00"),
        ]
        for name, data in cases:
            with self.subTest(name):
                r = self.raw(version=4)
                r.send(data)
                packets = r.read_until_closed(timeout=5)
                self.assertTrue(all(p.type == CONNACK and p.reason != 0 for p in packets),
                                f"{name}: {packets}")
                r.close()
        # An unsupported protocol level gets a refusal (3.1.1: 0x01, 5: 0x84) or a close.
        r = self.raw(version=4)
        r.send(_packet(1, 0, _bin("MQTT") + bytes([9, 2]) + struct.pack("!H", 60) + _bin("v9")))
        packets = r.read_until_closed(timeout=5)
        self.assertTrue(all(p.type == CONNACK and p.reason in (0x01, 0x84) for p in packets),
                        packets)
        self.assert_healthy()

    def test_10000_broken_connections_leak_nothing(self):
        # Leaks of memory show as a LeakSanitizer report when the ASan build of the
        # broker exits (the harness fails the test on it); descriptors are counted.
        self.assert_healthy()
        baseline = self.broker.fd_count()
        full = connect_packet(4, "flood", keepalive=60)
        opened = 0
        started = time.monotonic()
        for batch in range(50):
            socks = []
            try:
                for i in range(200):
                    n = batch * 200 + i
                    s = socket.create_connection((self.broker.host, self.broker.port),
                                                 timeout=5)
                    socks.append(s)
                    kind = n % 4
                    if kind == 1:
                        s.sendall(full[:7])                         # half a CONNECT
                    elif kind >= 2:
                        s.sendall(connect_packet(4, f"flood-{n}", keepalive=60))
                    opened += 1
                for n, s in enumerate(socks):
                    if n % 4 == 3:
                        # Read the CONNACK on some, so those sessions fully existed.
                        p = read_packet(s, timeout=5, version=4)
                        self.assertIsNotNone(p)
                        self.assertEqual((p.type, p.reason), (CONNACK, 0))
            finally:
                for n, s in enumerate(socks):
                    if n % 2:
                        # RST instead of FIN
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
                    s.close()
        self.assertEqual(opened, 10000)
        self.assertTrue(self.broker.alive(), "broker died")
        wait_until(lambda: self.broker.fd_count() <= baseline + 20, 15,
                   message=f"fd count back near {baseline} (now {self.broker.fd_count()})")
        # A new client is served, and the old ones never noticed.
        newcomer = self.connected("after-flood")
        newcomer.subscribe("bad/new", 1)
        self.pub.publish("bad/new", b"welcome", qos=1)
        self.assertEqual(newcomer.msgs.wait_for(1)[0].payload, b"welcome")
        self.assert_healthy()
        self.assertLess(time.monotonic() - started, 100)


if __name__ == "__main__":
    main()
